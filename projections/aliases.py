"""Aliases: alias name -> the key it points at."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import AliasState


def evolve(state: AliasState | None, record: ev.Record) -> AliasState | None:
    e = record.event
    match e:
        case ev.AliasCreated() | ev.AwsManagedKeyCreated():
            return AliasState(e.alias_name, e.key_id, record.time, record.time)
        case ev.AliasUpdated() if state is not None:
            return replace(state, key_id=e.key_id, updated=record.time)
        case ev.AliasDeleted():
            return None
    return state
