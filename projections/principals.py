"""IAM principals (users, roles) and their identity-based policies."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import HeldAccessKey, PrincipalState


def _account_root(principal: str) -> bool:
    return principal.startswith("arn:aws:iam::") and principal.endswith(":root")


def evolve(state: PrincipalState | None, record: ev.Record) -> PrincipalState | None:
    e = record.event
    match e:
        case ev.PrincipalCreated():
            return PrincipalState(e.principal, e.kind, record.time, trust_policy=e.trust_policy,
                                  max_session_duration=e.max_session_duration, unique_id=e.unique_id,
                                  description=e.description)
        case ev.AccessKeyCreated(held=True) if state is None and _account_root(e.principal):
            # the account root is no user; its row appears with the first key the ledger holds for it
            state = PrincipalState(e.principal, "root", record.time)
    if state is None:
        return None
    match e:
        case ev.PrincipalPolicyPut():
            return replace(state, policies={**state.policies, e.policy_name: e.policy})
        case ev.RoleTrustPolicyUpdated():
            return replace(state, trust_policy=e.trust_policy)
        case ev.RoleUpdated():
            return replace(state, description=state.description if e.description is None else e.description or None,
                           max_session_duration=e.max_session_duration or state.max_session_duration)
        case ev.PrincipalTagged():  # IAM: a key differing only by case is the same tag
            kept = {k: v for k, v in state.tags.items() if k.lower() not in {n.lower() for n in e.tags}}
            return replace(state, tags={**kept, **e.tags})
        case ev.PrincipalUntagged():
            gone = {k.lower() for k in e.tag_keys}
            return replace(state, tags={k: v for k, v in state.tags.items() if k.lower() not in gone})
        case ev.PrincipalPolicyDeleted():
            return replace(state, policies={k: v for k, v in state.policies.items() if k != e.policy_name})
        case ev.AccessKeyCreated():
            held = {**state.held_keys, e.access_key_id: HeldAccessKey(record.time)} if e.held else state.held_keys
            return replace(state, access_keys=state.access_keys + (e.access_key_id,), held_keys=held)
        case ev.AccessKeyStatusChanged():
            found = state.held_keys.get(e.access_key_id)
            if found is None:  # a credentials file's key: the file holds its status
                return state
            return replace(state, held_keys={**state.held_keys, e.access_key_id: replace(found, status=e.status)})
        case ev.PrincipalDeleted():
            return None
        case ev.AccessKeyDeleted():
            return replace(state, access_keys=tuple(k for k in state.access_keys if k != e.access_key_id),
                           held_keys={k: v for k, v in state.held_keys.items() if k != e.access_key_id})
    return state
