# Register: main.add_command(cli.forensics.forensics)   (the `keyledger forensics ...` group)
"""`keyledger forensics`: what happened to a ciphertext, a key, every key at
a moment, and who could use a key at a moment.

    ciphertext   the key, version and record that produced a ciphertext, and every later use
    key KEY      a key's timeline: lifecycle, rotations, aliases, usage by principal and month
    at TIME      every key's state at a moment (or after a record seq)
    who-can      who could perform an action on a key at a moment

All of it reads the LMDB file read-only (no root key), so it runs on a copy.
The answers come from `ledger.forensics`; `who-can` replays policies,
principals and grants with `projections.replay.state_at` and asks
`ledger.policy` about each principal that could matter.
"""

from __future__ import annotations

from typing import Any

import click

from cli import params
from cli.audit import Identity, iso, open_readonly, parse_point, resolve_key
from cli.output import Failure, LedgerCommand, show
from ledger import events as ev
from ledger import forensics as forensics_
from ledger import policy as authz
from ledger.commands import key_arn, parse_key_id
from ledger.errors import InvalidCiphertextException
from ledger.service import from_us
from ledger.store import Snapshot
from projections import alias_row, key_row, replay
from projections.state import KeyState

DATA_PLANE = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
              "kms:GenerateDataKeyWithoutPlaintext"}


@click.group("forensics")
def forensics() -> None:
    """Forensics over the trail: ciphertexts, keys, and every key at a past
    moment. Read-only; runs on a copy of a ledger without the root key."""


@forensics.command("ciphertext", cls=LedgerCommand, output_options=True)
@click.option("--ciphertext-blob", required=True, metavar="BLOB",
              help="The ciphertext: fileb://PATH (raw bytes) or base64 text.")
def ciphertext(ciphertext_blob: str) -> None:
    """Name the key and version a ciphertext is under, the record that
    produced it (who, when, which request), and every later Decrypt or
    ReEncrypt of it, found through the ciphertext digest index."""
    blob = params.base64_blob("--ciphertext-blob", ciphertext_blob)
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        try:
            found = forensics_.ciphertext_history(snap, blob)  # type: ignore[arg-type]
        except InvalidCiphertextException:
            raise click.BadParameter("not a keyledger ciphertext", param_hint="--ciphertext-blob") from None
    found["key_arn"] = key_arn(identity.region, identity.account, found["key_id"])
    show(found)


@forensics.command("key", cls=LedgerCommand, output_options=True)
@click.argument("key")
def key(key: str) -> None:
    """KEY's timeline (key id, key ARN, alias name or alias ARN): lifecycle,
    rotations, aliases pointing at it, refused requests, and its usage by
    principal and by month."""
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        key_id = resolve_key(snap, key, identity)
        if snap.get("keys", key_row(key_id)) is None:
            raise Failure(f"no key {key_id} in this ledger")
        found = forensics_.key_timeline(snap, key_id)
    found["key_arn"] = key_arn(identity.region, identity.account, key_id)
    show(found)


@forensics.command("at", cls=LedgerCommand, output_options=True)
@click.argument("point", metavar="SEQ|TIME")
def at(point: str) -> None:
    """Every key's state at an ISO 8601 TIME (UTC unless it says otherwise),
    or after record SEQ, replayed from the log."""
    seq, time = parse_point(point, "SEQ|TIME")
    with open_readonly() as store, store.snapshot() as snap:
        keys = forensics_.keys_at(snap, until_seq=seq, until_time=time)
    show({"at": {"seq": seq} if seq is not None else {"time": iso(time)}, "keys": keys})


# -- who could use a key (issue 4 will move this into ledger/forensics.py) ---------------

def _candidates(state: KeyState, policy: authz.Policy, tables: Any, grants: list[authz.Grant],
                account: str) -> list[str]:
    """Everyone whose access to the key could differ: the account root, every
    IAM principal, everyone the key policy names, every grantee, and "*"
    (anyone at all) if the key policy names it."""
    found = {authz.root_of(account)}
    found.update(p.principal for p in tables.rows["principals"].values())
    for s in policy.statements:
        for name in (*(s.principals or ()), *(s.not_principals or ())):
            if name == "*" or name.startswith("arn:"):
                found.add(name)
            elif name.isdigit():
                found.add(authz.root_of(name))
    found.update(g.grantee for g in grants)
    return sorted(found)


def _conditions(principal: str, state: KeyState, now: int, context: dict[str, str] | None) -> dict[str, Any]:
    """The condition keys the service sets for a request on this key."""
    out: dict[str, Any] = {"aws:principalarn": principal, "aws:currenttime": from_us(now),
                           "kms:calleraccount": authz.account_of(principal) or "",
                           "kms:keyspec": state.key_spec, "kms:keyusage": state.key_usage,
                           "kms:keyorigin": state.origin, "kms:resourcealiases": list(state.aliases)}
    for k, v in state.tags.items():
        out["aws:resourcetag/" + k.lower()] = v
    if context is not None:
        out["kms:encryptionalgorithm"] = "SYMMETRIC_DEFAULT"
        out["kms:encryptioncontextkeys"] = list(context)
        for k, v in context.items():
            out["kms:encryptioncontext:" + k.lower()] = v
    return out


def who_can_at(snap: Snapshot, key: str, action: str, *, until_seq: int | None, until_time: int | None,
               encryption_context: dict[str, str] | None) -> dict[str, Any]:
    identity = Identity(snap.meta())
    tables, report = replay.state_at(snap, until_seq=until_seq, until_time=until_time)
    broken = report.chain_error
    if broken is not None and (until_seq is None or until_seq >= broken.seq):
        raise Failure(f"the hash chain breaks at seq {broken.seq} ({broken.reason}): the state there "
                      "cannot be trusted")
    kind, ident = parse_key_id(key, identity.region, identity.account)
    if kind == "alias":  # the alias as it was at that moment
        alias = tables.rows["aliases"].get(alias_row(ident))
        if alias is None:
            raise Failure(f"alias {ident} did not exist at that moment")
        ident = alias.key_id
    state: KeyState | None = tables.rows["keys"].get(key_row(ident))
    if state is None:
        raise Failure(f"key {ident} did not exist at that moment")
    if until_time is not None:
        now = until_time
    else:
        last = min(until_seq, snap.head().seq - 1) if until_seq is not None else snap.head().seq - 1
        now = ev.decode(snap.raw_record(last).body).time
    policy = authz.parse(state.policy or authz.default_key_policy(identity.account))
    grants = [authz.Grant(g.grant_id, g.grantee_principal, tuple(g.operations), g.context_equals,
                          g.context_subset)
              for g in tables.rows["grants"].values() if g.key_id == state.key_id]
    if encryption_context is None and action in DATA_PLANE:
        encryption_context = {}  # what a data-plane call without a context presents
    allowed, refused = [], []
    for principal in _candidates(state, policy, tables, grants, identity.account):
        known = tables.rows["principals"].get(principal.encode())
        iam = [authz.parse(doc, key_policy=False) for doc in known.policies.values()] if known else []
        request = authz.Request(principal, action, key_arn(identity.region, identity.account, state.key_id),
                                _conditions(principal, state, now, encryption_context), encryption_context)
        decision = authz.evaluate(request, key_policy=policy, iam_policies=iam, grants=grants)
        (allowed if decision.allowed else refused).append({"principal": principal, "reason": decision.reason})
    op = action.split(":", 1)[-1]
    allowed_names = {a["principal"] for a in allowed}
    constrained = [{"grant_id": g.grant_id, "grantee": g.grantee, "encryption_context_equals": g.context_equals,
                    "encryption_context_subset": g.context_subset}
                   for g in grants if op in g.operations and g.grantee not in allowed_names
                   and (g.context_equals is not None or g.context_subset is not None)]
    return {"key_id": state.key_id, "key_arn": key_arn(identity.region, identity.account, state.key_id),
            "key_state": state.state, "action": action, "at": iso(now),
            "encryption_context": encryption_context, "allowed": allowed, "not_allowed": refused,
            "grants_needing_another_context": constrained}


@forensics.command("who-can", cls=LedgerCommand, output_options=True)
@click.option("--key-id", required=True, help="The key: key id, key ARN, alias name or alias ARN (an alias "
                                              "resolves as it was at that moment).")
@click.option("--action", default="kms:Decrypt", show_default=True, help="The action, e.g. kms:Decrypt.")
@click.option("--at", "point", default=None, metavar="SEQ|TIME",
              help="The moment: after record SEQ, or an ISO 8601 TIME (default: now).")
@click.option("--encryption-context", default=None, metavar="CONTEXT",
              help="Decide for a request with this encryption context (k=v,k2=v2 or JSON); grants "
                   "constrained to another context are listed apart.")
def who_can(key_id: str, action: str, point: str | None, encryption_context: str | None) -> None:
    """Who could perform ACTION on a key at a moment: key policy, IAM
    policies and grants replayed to then, every principal that could matter
    asked. Whether the key's state let the call succeed is shown apart
    (key_state)."""
    seq, time = parse_point(point, "--at") if point is not None else (None, None)
    context = params.string_map("--encryption-context", encryption_context)
    with open_readonly() as store, store.snapshot() as snap:
        found = who_can_at(snap, key_id, action, until_seq=seq, until_time=time, encryption_context=context)
    show(found)


COMMANDS = [forensics]
