"""Key state: metadata, lifecycle, rotation settings, versions, tags, aliases."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import KeyState, VersionInfo


def _version(material: ev.WrappedMaterial, created: int, rotation_type: str | None) -> VersionInfo:
    return VersionInfo(material.version, created, rotation_type, material.wrapped, material.kcv,
                       material.public_key)


def evolve(state: KeyState | None, record: ev.Record, key_id: str) -> KeyState | None:
    """Fold one record into the state of key `key_id`. Pure and total."""
    e, t = record.event, record.time
    match e:
        case ev.KeyCreated():
            return KeyState(
                key_id=e.key_id, created=t, description=e.description,
                key_usage=e.key_usage, key_spec=e.key_spec, origin=e.origin,
                state="Enabled", state_changed=t, versions=(_version(e.material, t, None),),
                tags=dict(e.tags), policy=e.policy)
    if state is None:
        return None
    match e:
        case ev.KeyPolicyPut():
            return replace(state, policy=e.policy)
        case ev.KeyDescriptionUpdated():
            return replace(state, description=e.description)
        case ev.KeyEnabled():
            return state if state.state == "Enabled" else replace(state, state="Enabled", state_changed=t)
        case ev.KeyDisabled():
            return state if state.state == "Disabled" else replace(state, state="Disabled", state_changed=t)
        case ev.KeyDeletionScheduled():
            return replace(state, state="PendingDeletion", state_changed=t,
                           deletion_date=e.deletion_date, pending_window_days=e.pending_window_days)
        case ev.KeyDeletionCancelled():
            return replace(state, state="Disabled", state_changed=t, deletion_date=None, pending_window_days=None)
        case ev.KeyDeleted():
            return replace(state, state="Deleted", state_changed=t, deleted=t, aliases=())
        case ev.KeyTagged():
            return replace(state, tags={**state.tags, **e.tags})
        case ev.KeyUntagged():
            return replace(state, tags={k: v for k, v in state.tags.items() if k not in e.tag_keys})
        case ev.KeyRotationEnabled():
            # Re-enabling (or changing the period) keeps an existing anchor,
            # so the next date is last automatic rotation + new period, as in AWS.
            anchor = state.rotation_anchor if state.rotation_enabled and state.rotation_anchor is not None else t
            return replace(state, rotation_enabled=True, rotation_period_days=e.rotation_period_days,
                           rotation_anchor=anchor)
        case ev.KeyRotationDisabled():
            return replace(state, rotation_enabled=False, rotation_anchor=None)
        case ev.KeyRotated():
            versions = state.versions + (_version(e.material, e.rotation_date, e.rotation_type),)
            if e.rotation_type == "AUTOMATIC":
                return replace(state, versions=versions, rotation_anchor=e.rotation_date)
            return replace(state, versions=versions, on_demand_rotations=state.on_demand_rotations + 1)
        case ev.AliasCreated():
            return replace(state, aliases=tuple(sorted({*state.aliases, e.alias_name})))
        case ev.AliasUpdated():
            if e.key_id == key_id:  # a set: UpdateAlias to the key it names already is a no-op
                return replace(state, aliases=tuple(sorted({*state.aliases, e.alias_name})))
            return replace(state, aliases=tuple(a for a in state.aliases if a != e.alias_name))
        case ev.AliasDeleted():
            return replace(state, aliases=tuple(a for a in state.aliases if a != e.alias_name))
    return state
