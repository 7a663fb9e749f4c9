# Register: main.add_command(cli.forensics.forensics)   (the `keyledger forensics ...` group)
"""`keyledger forensics`: what happened to a ciphertext, a key, every key at
a moment, and who could use a key at a moment.

    ciphertext   the key, version and record that produced a ciphertext, and every later use
    key KEY      a key's timeline: lifecycle, rotations, aliases, usage by principal and month
    at TIME      every key's state at a moment (or after a record seq)
    who-can      who could perform an action on a key at a moment

All of it reads the LMDB file read-only (no root key), so it runs on a copy.
The answers come from `ledger.forensics` (`who-can`: `who_can`, which
replays policies, principals and grants to the moment and evaluates every
principal that could matter with `ledger.policy`).
"""

from __future__ import annotations

import click

from keyledger.cli import params
from keyledger.cli.audit import Identity, iso, open_readonly, parse_point, resolve_key
from keyledger.cli.output import Failure, LedgerCommand, show
from keyledger import forensics as forensics_
from keyledger.commands import key_arn
from keyledger.errors import InvalidCiphertextException
from keyledger.projections import key_row


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


@forensics.command("who-can", cls=LedgerCommand, output_options=True)
@click.option("--key-id", required=True, help="The key: key id, key ARN, alias name or alias ARN (aliases "
                                              "resolve to the key they name now).")
@click.option("--action", default="kms:Decrypt", show_default=True, help="The action, e.g. kms:Decrypt.")
@click.option("--at", "point", default=None, metavar="TIME",
              help="The moment, an ISO 8601 time (UTC unless it says otherwise; default: now).")
@click.option("--encryption-context", default=None, metavar="CONTEXT",
              help="Evaluate conditions with this encryption context (k=v,k2=v2 or a JSON object).")
def who_can(key_id: str, action: str, point: str | None, encryption_context: str | None) -> None:
    """Who could perform ACTION on a key at a moment: the key policy, IAM
    policies and grants replayed to then, and every principal that could
    matter evaluated as the service would. Whether the key's state let the
    call succeed is shown apart (key_state)."""
    seq, time = parse_point(point, "--at") if point is not None else (None, None)
    if seq is not None:
        raise click.BadParameter("expected an ISO 8601 time", param_hint="--at")
    context = params.string_map("--encryption-context", encryption_context)
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        key = resolve_key(snap, key_id, identity)
        found = forensics_.who_can(snap, key, action, account=identity.account, region=identity.region,
                                   until_time=time, encryption_context=context)
    found["key_arn"] = key_arn(identity.region, identity.account, key)
    show(found)


COMMANDS = [forensics]
