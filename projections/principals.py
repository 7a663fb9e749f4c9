"""IAM principals (users, roles) and their identity-based policies."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import PrincipalState


def evolve(state: PrincipalState | None, record: ev.Record) -> PrincipalState | None:
    e = record.event
    match e:
        case ev.PrincipalCreated():
            return PrincipalState(e.principal, e.kind, record.time)
    if state is None:
        return None
    match e:
        case ev.PrincipalPolicyPut():
            return replace(state, policies={**state.policies, e.policy_name: e.policy})
        case ev.PrincipalPolicyDeleted():
            return replace(state, policies={k: v for k, v in state.policies.items() if k != e.policy_name})
        case ev.AccessKeyCreated():
            return replace(state, access_keys=state.access_keys + (e.access_key_id,))
        case ev.AccessKeyDeleted():
            return replace(state, access_keys=tuple(k for k in state.access_keys if k != e.access_key_id))
    return state
