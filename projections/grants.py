"""Grants on keys: who may use a key for which operations, and how."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import GrantState


def evolve(state: GrantState | None, record: ev.Record) -> GrantState | None:
    e = record.event
    match e:
        case ev.GrantCreated():
            return GrantState(e.key_id, e.grant_id, e.grantee_principal, tuple(e.operations), record.time,
                              record.principal, e.retiring_principal, e.name, e.context_equals,
                              e.context_subset, e.grantee_service_principal, e.retiring_service_principal,
                              e.source_arn)
        case ev.GrantRetired() | ev.GrantRevoked():
            return None
        case ev.GrantPrincipalDeleted() if state is not None:
            def gone(name: str | None) -> str | None:
                return e.unique_id if name == e.principal else name
            return replace(state, grantee_principal=gone(state.grantee_principal),
                           retiring_principal=gone(state.retiring_principal))
    return state
