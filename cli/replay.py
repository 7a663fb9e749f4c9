"""`keyledger replay`: rebuild the projections from the log.

`--check` verifies the hash chain and compares the rebuilt tables with the
live ones over one read snapshot (exit 1 on any difference or chain break);
`--until SEQ|TIME` shows every key as it was after that record or moment.
Progress goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import click

from keyledger.cli.context import settings
from keyledger.cli.output import Failure, LedgerGroup, format_json, show
from keyledger.cli.progress import Counted, Progress
from keyledger.service import KeyLedger
from keyledger.commands import key_arn
from keyledger.service import from_us, to_us
from keyledger.projections import replay as rp
from keyledger.projections.state import KeyState



def check_ledger(kms: KeyLedger) -> rp.Report:
    """projections.replay.check over one consistent snapshot."""
    with kms.store.snapshot() as snap:
        progress = Progress("replaying", snap.head().seq)
        try:
            return rp.check(Counted(snap, progress))
        finally:
            progress.done()


def verdict_lines(report: rp.Report) -> list[str]:
    lines = [f"records checked: {report.records}"]
    if report.chain_error is None:
        lines.append("hash chain:      ok")
    else:
        lines.append(f"hash chain:      BROKEN at seq {report.chain_error.seq}: {report.chain_error.reason}")
    if report.chain_error is not None:
        lines.append("projections:     not compared (the log is not trustworthy past the break)")
    elif report.differences:
        lines.append(f"projections:     {len(report.differences)} difference(s) from the log")
        lines.extend(f"  {d}" for d in report.differences)
    else:
        lines.append("projections:     match the log")
    lines.append(f"verdict:         {'OK' if report.ok else 'FAILED'}")
    return lines


def _report_json(report: rp.Report) -> dict[str, Any]:
    out: dict[str, Any] = {"RecordsChecked": report.records, "ChainOk": report.chain_error is None}
    if report.chain_error is not None:
        out["ChainError"] = {"Seq": report.chain_error.seq, "Reason": report.chain_error.reason}
    out["Differences"] = report.differences
    out["Ok"] = report.ok
    return out


def parse_until(value: str) -> tuple[int | None, int | None]:
    """(seq, time in µs): an integer is a seq, anything else an ISO 8601
    time (UTC unless it says otherwise)."""
    if re.fullmatch(r"\d+", value.strip()):
        return int(value), None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter("expected a record seq (an integer) or an ISO 8601 time",
                                 param_hint="--until") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return None, to_us(when)


def _iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat().replace("+00:00", "Z")


def key_view(state: KeyState, arn: str) -> dict[str, Any]:
    """One key's state, AWS-style names; absent members left out."""
    view: dict[str, Any] = {
        "KeyId": state.key_id, "Arn": arn, "KeyState": state.state, "Description": state.description,
        "CreationDate": _iso(state.created), "DeletionDate": _iso(state.deletion_date),
        "Versions": [{"Version": v.version, "CreationDate": _iso(v.created),
                      **({"RotationType": v.rotation_type} if v.rotation_type else {})}
                     for v in state.versions],
        "KeyRotationEnabled": state.rotation_enabled,
        "RotationPeriodInDays": state.rotation_period_days if state.rotation_enabled else None,
        "NextRotationDate": _iso(state.next_rotation),
        "OnDemandRotations": state.on_demand_rotations,
        "Aliases": list(state.aliases),
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in sorted(state.tags.items())],
    }
    return {k: v for k, v in view.items() if v is not None}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def keys_table(keys: list[dict[str, Any]]) -> str:
    rows = [["KEY ID", "STATE", "VERSIONS", "ROTATION", "ALIASES", "TAGS"]]
    for k in keys:
        rotation = (f"every {k['RotationPeriodInDays']}d, next {k.get('NextRotationDate', '-')}"
                    if k["KeyRotationEnabled"] else "off")
        rows.append([k["KeyId"], k["KeyState"], str(len(k["Versions"])), rotation,
                     ",".join(k["Aliases"]) or "-",
                     ",".join(f"{t['TagKey']}={t['TagValue']}" for t in k["Tags"]) or "-"])
    return _table(rows)


@click.group("replay", cls=LedgerGroup, output_options=True, invoke_without_command=True)
@click.option("--check", "check_", is_flag=True,
              help="Rebuild every projection from the log, verify the hash chain, report any difference "
                   "(exit 1 if there is one).")
@click.option("--until", default=None, metavar="SEQ|TIME",
              help="Show every key's state after record SEQ, or at an ISO 8601 TIME (UTC if no offset).")
@click.pass_context
def replay(ctx: click.Context, check_: bool, until: str | None) -> None:
    """Replay the log: check the projections against it, or show the state
    of every key at a past point (--until); `replay prove-decryptable`
    proves every issued ciphertext can still be opened."""
    if ctx.invoked_subcommand is not None:
        if check_ or until is not None:
            raise click.UsageError("--check and --until do not go with a subcommand")
        return
    if check_ == (until is not None):
        raise click.UsageError("give exactly one of --check or --until")
    opts = settings()
    if check_:
        with opts.open() as kms:
            report = check_ledger(kms)
        if opts.output == "json":
            click.echo(format_json(_report_json(report)))
        else:
            click.echo("\n".join(verdict_lines(report)))
        if not report.ok:
            click.get_current_context().exit(1)
        return

    seq, time = parse_until(until)  # type: ignore[arg-type]
    with opts.open() as kms:
        with kms.store.snapshot() as snap:
            progress = Progress("replaying", snap.head().seq)
            try:
                tables, report = rp.state_at(Counted(snap, progress), until_seq=seq, until_time=time)
            finally:
                progress.done()
        region, account = kms.region, kms.account
    broken = report.chain_error
    # records before the break are verified; a time bound cannot tell
    # whether the unverifiable record falls before it, so it must refuse
    if broken is not None and (seq is None or seq >= broken.seq):
        raise Failure(f"the hash chain breaks at seq {broken.seq} ({broken.reason}); the state there "
                      f"cannot be trusted (--until {broken.seq - 1} shows the state before the break)"
                      if broken.seq > 0 else
                      f"the hash chain breaks at seq 0 ({broken.reason}); no state can be trusted")
    states = sorted(tables.rows["keys"].values(), key=lambda s: (s.created, s.key_id))
    keys = [key_view(s, key_arn(region, account, s.key_id)) for s in states]
    if opts.output == "text" and not opts.query:
        click.echo(keys_table(keys) if keys else "no keys")
        return
    show({"Until": {"Seq": seq} if seq is not None else {"Time": _iso(time)}, "Keys": keys})


from keyledger.cli.replay_prove import prove_decryptable  # noqa: E402

replay.add_command(prove_decryptable)

COMMANDS = [replay]
