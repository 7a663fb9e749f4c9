"""`keyledger replay`: rebuild the projections from the log.

`--check` verifies the hash chain and compares the rebuilt tables with the
live ones over one read snapshot (exit 1 on any difference or chain break);
`--until SEQ|TIME` shows every key as it was after that record or moment,
in the shape `projections.replay.state_view` builds (shared with
`forensics at`).
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
from keyledger.store import Store
from keyledger.service import to_us
from keyledger.projections import replay as rp



def check_ledger(store: Store) -> rp.Report:
    """projections.replay.check over one consistent snapshot."""
    with store.snapshot() as snap:
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


key_view = rp.key_view  # the shared shape lives in projections.replay (forensics at prints it too)


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
        from keyledger.cli.audit import open_readonly  # an auditor needs read access only
        with open_readonly() as store:
            report = check_ledger(store)
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
    view = rp.state_view(tables, region=region, account=account, until_seq=seq, until_time=time)
    if opts.output == "text" and not opts.query:
        click.echo(keys_table(view["Keys"]) if view["Keys"] else "no keys")
        return
    show(view)


from keyledger.cli.replay_prove import prove_decryptable  # noqa: E402

replay.add_command(prove_decryptable)

COMMANDS = [replay]
