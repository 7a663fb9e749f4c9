# Register: main.add_command(cli.audit.audit)   (the `keyledger audit ...` group)
"""`keyledger audit`: the verifiable trail.

    public-key          the checkpoint verifier key (what an auditor keeps)
    checkpoint          sign and store a checkpoint of the log as it is now
    verify              recompute the chain and the Merkle tree, check checkpoints
    prove SEQ           inclusion proof of a record in a checkpointed tree
    prove-consistency   consistency proof between two checkpoints
    verify-proof FILE   check a proof with only its checkpoint(s) and the key
    log                 query the trail through its indexes

Everything except `checkpoint` opens the LMDB file read-only and needs no
root key, so it runs on a copy of a ledger (`--home` / `KEYLEDGER_HOME`
naming the copy's directory). The logic is in `ledger.audit`,
`projections.query` and `projections.cloudtrail`; this module parses,
calls, prints. The helpers at the top (read-only open, SEQ|TIME points, key
id resolution, progress) are shared by `cli.forensics`, `cli.bill` and
`cli.replay_prove`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from keyledger.cli.context import settings
from keyledger.cli.output import Failure, LedgerCommand, format_json
from keyledger.cli.progress import Counted, Progress
from keyledger import audit as audit_
from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger import forensics as forensics_
from keyledger.commands import parse_key_id
from keyledger.service import from_us, to_us
from keyledger.store import Snapshot, Store
from keyledger.projections import alias_row, cloudtrail
from keyledger.projections.query import Filter, query
from keyledger.projections.state import AliasState

LOG_FORMATS = ("jsonl", "table", "cloudtrail")


# -- shared helpers -------------------------------------------------------------

@contextmanager
def open_readonly() -> Iterator[Store]:
    """The ledger's LMDB file opened read-only: no root key needed, nothing
    written (LMDB may create its lock file next to a copy)."""
    home = settings().ledger_home
    store = Store(str(home), readonly=True)  # a missing, damaged or cut ledger: a LedgerError in words
    try:
        yield store
    finally:
        store.close()


class Identity:
    """What a snapshot's meta says about the ledger."""

    def __init__(self, meta: dict[str, bytes]) -> None:
        self.region = meta["region"].decode()
        self.account = meta["account"].decode()
        self.origin = meta["origin"].decode() if "origin" in meta else None
        self.public = meta.get("checkpoint_public")

    @property
    def verifier(self) -> tuple[str, bytes] | None:
        return (self.origin, self.public) if self.origin and self.public else None


def parse_point(value: str, param: str) -> tuple[int | None, int | None]:
    """(seq, time in µs): an integer is a record seq, anything else an ISO
    8601 time (UTC unless it gives an offset; a trailing Z is accepted)."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text), None
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise click.BadParameter("expected a record seq (an integer) or an ISO 8601 time",
                                 param_hint=param) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return None, to_us(when)


def iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat().replace("+00:00", "Z")


class KeyRef:
    """A KeyId argument resolved for the read-only commands: the key id and
    the regions (names) it is meant in. A key ARN names its region, an alias
    (name or ARN) resolves in its region (an alias name in the request
    region, `--region`, as AWS resolves it); a bare key id names the key in
    whichever region(s) it exists (a multi-Region key in each region of its
    set). `pinned` says whether the argument named one region."""

    def __init__(self, key_id: str, regions: list[str], pinned: bool) -> None:
        self.key_id, self.regions, self.pinned = key_id, regions, pinned

    def main_region(self, request_region: str) -> str:
        """The region to show first: the request region if the key is there."""
        return request_region if request_region in self.regions else self.regions[0]


def request_region(identity: Identity) -> str:
    """The request region: `--region`, else the ledger's initial region."""
    return settings().region or identity.region


def resolve_key_ref(snap: Snapshot, value: str, identity: Identity, region: str | None = None) -> KeyRef:
    """Resolve any KeyId form (see KeyRef); `region` is the request region
    (default: `--region` or the initial region). Aliases resolve through the
    live aliases table (what the alias names now, not what it named then).
    A key that exists in no region it is looked for in is a Failure."""
    from keyledger import forensics as forensics_
    from keyledger.projections import key_row

    asked = region or request_region(identity)
    arn_region = value.split(":", 5)[3] if value.startswith("arn:") and value.count(":") >= 5 else None
    kind, ident = parse_key_id(value, arn_region or asked, identity.account)
    where = arn_region or asked
    scope = "" if where == identity.region else where
    if kind == "alias":
        alias: AliasState | None = snap.get("aliases", alias_row(ident, scope))
        if alias is None:
            raise Failure(f"alias {ident} does not exist now in {where} (aliases resolve through the live "
                          "aliases table of the request region; give the key id to query a deleted alias's key)")
        return KeyRef(alias.key_id, [where], True)
    if arn_region is not None:
        if snap.get("keys", key_row(ident, scope)) is None:
            raise Failure(f"no key {ident} in {where} in this ledger")
        return KeyRef(ident, [where], True)
    scopes = forensics_.key_scopes(snap, ident)
    if not scopes:
        raise Failure(f"no key {ident} in this ledger")
    return KeyRef(ident, [s or identity.region for s in scopes], False)


def resolve_key(snap: Snapshot, value: str, identity: Identity) -> str:
    """A bare key id from any KeyId form (see `resolve_key_ref`)."""
    return resolve_key_ref(snap, value, identity).key_id


def _read_verifier(public_key: str | None, public_key_file: str | None) -> tuple[str, bytes] | None:
    if public_key is not None and public_key_file is not None:
        raise click.UsageError("give --public-key or --public-key-file, not both")
    text = public_key if public_key is not None else \
        Path(public_key_file).read_text().strip() if public_key_file is not None else None
    if text is None:
        return None
    try:
        return cp.parse_verifier_key(text)
    except cp.CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-key") from None


public_key_options = [
    click.option("--public-key", default=None, metavar="VKEY",
                 help="The checkpoint verifier key (name+hash+base64), as `audit public-key` printed it."),
    click.option("--public-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
                 help="A file holding the verifier key."),
]


_F = TypeVar("_F", bound=Callable[..., Any])


def _with(options: list[Any]) -> Callable[[_F], _F]:
    def apply(fn: _F) -> _F:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply


def _exit(code: int) -> None:
    click.get_current_context().exit(code)


# -- the group ------------------------------------------------------------------

@click.group("audit")
def audit() -> None:
    """The verifiable audit trail: signed checkpoints, verification of a
    ledger (or a copy of one) without the root key, inclusion and
    consistency proofs, and queries over the trail."""


@audit.command("public-key", cls=LedgerCommand)
def public_key() -> None:
    """Print the checkpoint verifier key. Keep it apart from the ledger: an
    auditor checks checkpoints and proofs against their own copy."""
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
    if identity.verifier is None:
        raise Failure("this ledger has no checkpoint key")
    click.echo(cp.verifier_key(*identity.verifier))


@audit.command("checkpoint", cls=LedgerCommand)
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False, writable=True),
              help="Write the signed note to this file (default: stdout).")
def checkpoint(out: str | None) -> None:
    """Sign a checkpoint (C2SP tlog-checkpoint note: origin, tree size,
    Merkle root) of the log as it is now, and store it. Refused if the log
    no longer extends the last stored checkpoint."""
    with settings().open() as kms:
        signed = kms.checkpoint()
    if out is None:
        click.echo(signed.note.decode(), nl=False)
    else:
        Path(out).write_bytes(signed.note)
        click.echo(f"checkpoint of size {signed.size} written to {out}", err=True)


@audit.command("verify", cls=LedgerCommand, list_options=["--checkpoint"])
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE...", help="Checkpoints kept elsewhere (several, space-separated or repeated); "
                                      "the stored ones are checked too.")
@_with(public_key_options)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(checkpoint_files: tuple[str, ...], public_key: str | None, public_key_file: str | None,
           as_json: bool) -> None:
    """Verify the ledger read-only, without the root key: recompute the hash
    chain and the Merkle root from the record bytes, check every checkpoint
    (stored and given), and name the first bad seq. Fold the log into the
    projections and check the state against each checkpoint that commits
    to one, against the live tables (naming the first differing row) and
    the KEK rows against the keys' lifecycle. Hashes print in base64, as in
    the checkpoint notes. Without --public-key the
    ledger's own recorded key is used, which proves nothing against someone
    who could rewrite the file: an auditor passes their own copy. Exit 1 on
    any failure."""
    given = _read_verifier(public_key, public_key_file)
    notes = [Path(f).read_bytes() for f in checkpoint_files]
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        progress = Progress("verifying", snap.head().seq)
        try:
            report = audit_.verify(Counted(snap, progress), extra_checkpoints=notes, verifier=given)
        finally:
            progress.done()
    verifier = given or identity.verifier
    vkey = cp.verifier_key(*verifier) if verifier else None
    source = "given" if given else "ledger" if verifier else None
    if as_json:
        click.echo(format_json({**report.to_json(), "Verifier": {"Key": vkey, "Source": source}}))
    else:
        if source == "ledger":
            click.echo(f"verifier key: {vkey} (recorded in the ledger itself; pass --public-key to "
                       "check against your own copy)")
        elif source == "given":
            click.echo(f"verifier key: {vkey}")
        click.echo("\n".join(report.lines()))
    if not report.ok:
        _exit(1)


# -- proofs -----------------------------------------------------------------------

def _own_checkpoint(note: bytes, identity: Identity, where: str) -> cp.Checkpoint:
    """A checkpoint signed by this ledger's key (a proof against anything
    else could never verify)."""
    if identity.verifier is None:
        raise Failure("this ledger has no checkpoint key")
    try:
        return cp.verify(note, *identity.verifier)
    except cp.CheckpointError as exc:
        raise Failure(f"{where}: {exc}") from None


def _stored(snap: Snapshot) -> dict[int, bytes]:
    out = {}
    for note in snap.checkpoints():
        try:
            out[cp.parse(note)[0].size] = note
        except cp.CheckpointError:
            continue  # `audit verify` reports it
    return out


def _check_covered(snap: Snapshot, c: cp.Checkpoint) -> None:
    n = snap.head().seq
    if c.size > n:
        raise Failure(f"the log has {n} records, fewer than the checkpoint of size {c.size}: it was "
                      "truncated or rolled back (run `keyledger audit verify`)")


def _checked(proof: dict[str, Any], identity: Identity) -> dict[str, Any]:
    ok, reason = audit_.verify_proof(proof, identity.verifier)  # type: ignore[arg-type]
    if not ok:
        raise Failure(f"the log no longer matches the checkpoint ({reason}); run `keyledger audit verify`")
    return proof


@audit.command("prove", cls=LedgerCommand)
@click.argument("seq", type=click.IntRange(min=0))
@click.option("--checkpoint", "checkpoint_file", default=None, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE", help="Prove against this checkpoint (default: the newest stored one).")
def prove(seq: int, checkpoint_file: str | None) -> None:
    """Print an inclusion proof (JSON) of record SEQ in a checkpointed tree:
    the record's bytes, the audit path and the signed checkpoint. Anyone
    with the verifier key checks it with `audit verify-proof`."""
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        if checkpoint_file is not None:
            c = _own_checkpoint(Path(checkpoint_file).read_bytes(), identity, checkpoint_file)
        else:
            stored = _stored(snap)
            if not stored:
                raise Failure("no stored checkpoint: run `keyledger audit checkpoint` or give --checkpoint FILE")
            c = _own_checkpoint(stored[max(stored)], identity, "the newest stored checkpoint")
        if seq >= c.size:
            raise Failure(f"record {seq} is not in the checkpointed tree of size {c.size} "
                          "(sign a newer checkpoint with `keyledger audit checkpoint`)")
        _check_covered(snap, c)
        proof = _checked(audit_.prove_inclusion(snap, seq, c), identity)
    click.echo(format_json(proof))


@audit.command("prove-consistency", cls=LedgerCommand)
@click.argument("old", type=click.IntRange(min=1), required=False)
@click.argument("new", type=click.IntRange(min=1), required=False)
@click.option("--old-checkpoint", default=None, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The older checkpoint, from a file (instead of OLD).")
@click.option("--new-checkpoint", default=None, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The newer checkpoint, from a file (instead of NEW).")
def prove_consistency(old: int | None, new: int | None, old_checkpoint: str | None,
                      new_checkpoint: str | None) -> None:
    """Print a consistency proof (JSON) that the log of the NEW checkpoint
    extends the log of the OLD one. OLD and NEW are the tree sizes of two
    stored checkpoints; or give the checkpoints as files."""
    if (old is None) == (old_checkpoint is None) or (new is None) == (new_checkpoint is None):
        raise click.UsageError("give OLD NEW (sizes of stored checkpoints), or --old-checkpoint FILE "
                               "and --new-checkpoint FILE")
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        stored = _stored(snap)

        def pick(size: int | None, path: str | None, which: str) -> cp.Checkpoint:
            if path is not None:
                return _own_checkpoint(Path(path).read_bytes(), identity, path)
            if size not in stored:
                sizes = ", ".join(str(s) for s in sorted(stored)) or "none"
                raise Failure(f"no stored checkpoint of size {size} (stored sizes: {sizes})")
            return _own_checkpoint(stored[size], identity, f"the stored checkpoint of size {size}")

        a, b = pick(old, old_checkpoint, "old"), pick(new, new_checkpoint, "new")
        if a.size > b.size:
            raise click.UsageError(f"the old checkpoint (size {a.size}) is larger than the new one ({b.size})")
        _check_covered(snap, b)
        proof = _checked(audit_.prove_consistency(snap, a, b), identity)
    click.echo(format_json(proof))


@audit.command("verify-proof", cls=LedgerCommand)
@click.argument("proof_file", metavar="FILE", type=click.File("r"))
@_with(public_key_options)
def verify_proof(proof_file: Any, public_key: str | None, public_key_file: str | None) -> None:
    """Check an inclusion or consistency proof (FILE, or - for stdin) with
    nothing but the checkpoint(s) it carries and the verifier key: no
    ledger needed. Exit 1 if it does not verify."""
    verifier = _read_verifier(public_key, public_key_file)
    if verifier is None:
        raise click.UsageError("give the verifier key: --public-key VKEY or --public-key-file FILE")
    try:
        proof = json.loads(proof_file.read())
    except ValueError:
        proof = None
    if not isinstance(proof, dict):
        click.echo("FAILED: the proof is not a JSON object")
        _exit(1)
    ok, reason = audit_.verify_proof(proof, verifier)
    click.echo(f"{'OK' if ok else 'FAILED'}: {reason}")
    if not ok:
        _exit(1)


# -- the trail ----------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Builtins for JSON: bytes as base64 (digests, wrapped material, KCVs),
    the one encoding hashes are printed in (as in the checkpoint notes)."""
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value) | ({"type": type(value).__name__}
                                                  if isinstance(value, ev.EVENT_TYPES) else {})
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def record_json(record: ev.Record) -> dict[str, Any]:
    """One record as JSON: its own field names, times in ISO 8601."""
    event = _plain(record.event)
    return {"seq": record.seq, "time": iso(record.time), "request_id": record.request_id,
            "principal": record.principal, "operation": record.operation,
            **({"region": record.region} if isinstance(record.region, str) else {}),  # not the initial region
            **({"source": record.source} if isinstance(record.source, str) else {}),  # came over the network
            **({"access_key": record.access_key} if isinstance(record.access_key, str) else {}),  # signed with
            "event": {"type": event.pop("type"), **event}}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _table_row(record: ev.Record) -> list[str]:
    e = record.event
    keys = ",".join(ev.key_ids_of(e)) or "-"
    outcome = e.error_code if isinstance(e, ev.RequestDenied) else "ok"
    return [str(record.seq), from_us(record.time).strftime("%Y-%m-%dT%H:%M:%SZ"), record.principal,
            record.operation, type(e).__name__, keys, outcome]


@audit.command("log", cls=LedgerCommand)
@click.option("--key-id", default=None, help="Only records about this key: key id, key ARN, alias name or "
                                             "alias ARN (aliases resolve to the key they name now).")
@click.option("--principal", default=None, help="Only records made by this principal ARN "
                                                "(kms.amazonaws.com: the service's own events).")
@click.option("--event-name", default=None, help="Only this operation (CloudTrail eventName), e.g. Decrypt.")
@click.option("--source-ip", default=None, metavar="ADDRESS|CIDR",
              help="Only requests that came over the network from this address or network (10.0.0.0/8).")
@click.option("--access-key-id", default=None, metavar="AKIA...|ASIA...",
              help="Only requests signed with this access key (a user's, or a role session's): "
                   "what a leaked key did (read through its owner's index).")
@click.option("--since", default=None, metavar="SEQ|TIME", help="From this record seq or ISO 8601 time (inclusive).")
@click.option("--until", default=None, metavar="SEQ|TIME", help="Up to this record seq or ISO 8601 time (inclusive).")
@click.option("--errors-only", is_flag=True, help="Only denied and failed requests.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many records.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--region", "in_region", default=None, metavar="REGION",
              help="Only requests made in this region (default: every region of the account).")
@click.option("--format", "fmt", type=click.Choice(LOG_FORMATS), default="jsonl", show_default=True,
              help="jsonl: one record per line as JSON; table: one line per record for people; "
                   "cloudtrail: one JSON document {\"Records\": [...]} as in CloudTrail's log files, "
                   "one record per line inside the list.")
def log(key_id: str | None, principal: str | None, event_name: str | None, source_ip: str | None,
        access_key_id: str | None, since: str | None, until: str | None, errors_only: bool, limit: int | None,
        oldest_first: bool, in_region: str | None, fmt: str) -> None:
    """Query the trail through the indexes kept in the append transaction:
    the cost grows with the answer, not with the log. Read-only."""
    since_seq, since_time = parse_point(since, "--since") if since is not None else (None, None)
    until_seq, until_time = parse_point(until, "--until") if until is not None else (None, None)
    try:
        source = None if source_ip is None else ipaddress.ip_network(source_ip.strip(), strict=False)
    except ValueError:
        raise click.BadParameter(f"not an IP address or CIDR network: {source_ip!r}",
                                 param_hint="--source-ip") from None
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        region = in_region or settings().region  # `audit log --region R` or `--region R audit log`
        ref = resolve_key_ref(snap, key_id, identity, region) if key_id is not None else None
        if region is None and ref is not None and ref.pinned:
            region = ref.regions[0]  # a key ARN or an alias names the key of one region: its records
        if access_key_id is not None and principal is None and ref is None:
            # a key signs only for its owner: read the owner's index, not the whole log
            principal = forensics_.access_key_lifecycle(snap, access_key_id)[0]
        f = Filter(key_id=ref.key_id if ref is not None else None,
                   principal=principal, operation=event_name, errors_only=errors_only,
                   since_seq=since_seq, until_seq=until_seq, since_time=since_time, until_time=until_time,
                   region=None if region is None else "" if region == identity.region else region, source=source,
                   access_key=access_key_id)
        records = query(snap, f, limit=limit, newest_first=not oldest_first)
        if fmt == "jsonl":
            for record in records:
                click.echo(json.dumps(record_json(record), ensure_ascii=False))
        elif fmt == "cloudtrail":
            # each user's and role's id as of each record, and when each session was issued, from the
            # records that made them (the operation index)
            incarnations = cloudtrail.Incarnations(
                made for operation in ("CreateUser", "CreateRole", "AssumeRole")
                for made in query(snap, Filter(operation=operation), newest_first=False))
            click.echo('{"Records": [', nl=False)
            first = True
            for record in records:
                rendered = cloudtrail.render(record, region=identity.region, account=identity.account,
                                             origin=identity.origin or "keyledger", incarnations=incarnations)
                click.echo(("\n" if first else ",\n") + json.dumps(rendered, ensure_ascii=False), nl=False)
                first = False
            click.echo("\n]}")
        else:
            rows = [_table_row(r) for r in records]
            if rows:
                click.echo(_table([["SEQ", "TIME", "PRINCIPAL", "EVENT NAME", "EVENT", "KEY", "RESULT"], *rows]))
            else:
                click.echo("no matching records")


COMMANDS = [audit]
