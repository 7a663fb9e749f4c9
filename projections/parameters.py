"""The parameter store's projection: one row per parameter, its versions, labels and tags."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import ParameterState, ParameterVersion

#: SSM keeps the last 100 versions of a parameter
MAX_VERSIONS = 100


def evolve(state: ParameterState | None, record: ev.Record) -> ParameterState | None:
    e = record.event
    match e:
        case ev.ParameterPut():
            version = ParameterVersion(e.version, e.parameter_type, record.time, record.principal, e.value,
                                       e.ciphertext, e.requested_key_id, e.description, e.allowed_pattern, e.tier,
                                       e.data_type)
            if state is None:
                return ParameterState(e.name, (version,), dict(e.tags))
            versions = state.versions + (version,)
            return replace(state, versions=versions[-MAX_VERSIONS:])
        case ev.ParameterDeleted():
            return None
        case ev.ParameterLabeled():
            if state is None:
                return None
            moved = set(e.labels)
            versions = tuple(
                replace(v, labels=v.labels + tuple(label for label in e.labels if label not in v.labels))
                if v.version == e.version else
                (replace(v, labels=tuple(label for label in v.labels if label not in moved))
                 if moved & set(v.labels) else v)
                for v in state.versions)
            return replace(state, versions=versions)
        case ev.ParameterUnlabeled():
            if state is None:
                return None
            gone = set(e.labels)
            return replace(state, versions=tuple(
                replace(v, labels=tuple(label for label in v.labels if label not in gone))
                if v.version == e.version else v for v in state.versions))
        case ev.ParameterTagged():
            return None if state is None else replace(state, tags={**state.tags, **e.tags})
        case ev.ParameterUntagged():
            if state is None:
                return None
            gone = set(e.tag_keys)
            return replace(state, tags={k: v for k, v in state.tags.items() if k not in gone})
    return state
