"""`keyledger demo`: the main job, end to end, on a ledger of its own.

The demo jumps its clock a year forward so that automatic rotation fires;
so that no real ledger gets future-dated records, it runs on a fresh
temporary home, removed at the end, unless `--home` is given on the command
line (KEYLEDGER_HOME does not count: it names the user's real ledger). On a
given home its clock starts at max(now, the ledger's last record time), so
it can be rerun there too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from click.core import ParameterSource

import keyledger
from keyledger.cli.context import settings
from keyledger.cli.output import Failure, command
from keyledger.cli.replay import check_ledger
from keyledger.service import from_us

JUMP = timedelta(days=366)
MESSAGES = [  # (plaintext, encryption context): demo data, never printed
    (b"order 1001: 3 widgets to Lisbon", {"purpose": "orders", "order": "1001"}),
    (b"order 1002: 1 gadget to Osaka", {"purpose": "orders", "order": "1002"}),
    (b"order 1003: 12 sprockets to Quito", {"purpose": "orders", "order": "1003"}),
    (b"order 1004: 2 flanges to Tromso", {"purpose": "orders", "order": "1004"}),
    (b"order 1005: 7 grommets to Accra", {"purpose": "orders", "order": "1005"}),
]


class DemoClock:
    """Real time passing from a chosen start, plus the jumps the demo makes."""

    def __init__(self) -> None:
        self._origin = datetime.now(timezone.utc)
        self._start = self._origin
        self._jumped = timedelta(0)

    def start_at(self, when: datetime) -> None:
        self._origin, self._start = datetime.now(timezone.utc), when

    def jump(self, delta: timedelta) -> None:
        self._jumped += delta

    def __call__(self) -> datetime:
        return self._start + (datetime.now(timezone.utc) - self._origin) + self._jumped


@contextmanager
def demo_home() -> Iterator[tuple[Path, bool]]:
    """(home, temporary): --home if it was given on the command line, else
    a fresh temporary directory that is removed when the demo ends."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    given = settings().home
    if root.get_parameter_source("home") == ParameterSource.COMMANDLINE and given is not None:
        yield given, False
        return
    with tempfile.TemporaryDirectory(prefix="keyledger-demo-") as tmp:
        yield Path(tmp) / "ledger", True


def _iso(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _short(key_id: str) -> str:
    return key_id[:8]


def _versions(kms: keyledger.KeyLedger, key_id: str) -> list[str]:
    """Each version's origin: ORIGINAL, then each rotation's type."""
    rotations = kms.list_key_rotations(key_id, limit=1000).rotations
    return ["ORIGINAL"] + [r.rotation_type for r in rotations if r.rotation_type is not None]


@command("demo")
def demo() -> None:
    """Run the main job on a dedicated demo ledger: create a key and an
    alias, encrypt, rotate on demand and (by jumping the clock a year)
    automatically, rotate manually by re-pointing the alias to a new key,
    decrypt every earlier ciphertext, check the log by replay, and print a
    summary. Runs on a fresh temporary ledger, removed at the end, unless
    --home is given (then it creates or reuses that ledger)."""
    with demo_home() as (home, temporary):
        _run(home, temporary)


def _run(home: Path, temporary: bool) -> None:
    clock = DemoClock()
    say = click.echo
    with settings().open(home=home, clock=clock, create=True) as kms:
        head = kms.store.head()
        clock.start_at(max(datetime.now(timezone.utc), from_us(head.time)))
        first_seq = head.seq
        where = f"a temporary ledger {home} (removed at the end; --home DIR keeps one)" if temporary else home
        say(f"keyledger demo on {where} (region {kms.region}, account {kms.account})")
        say(f"demo clock starts at {_iso(clock())}")
        say("")

        key_a = kms.create_key(description="demo: orders (first key)",
                               tags=[{"TagKey": "app", "TagValue": "demo"}]).key_metadata.key_id
        alias = f"alias/demo-{_short(key_a)}"
        kms.create_alias(alias, key_a)
        say(f" 1. created key A {key_a} and {alias} pointing at it")

        sealed: list[tuple[bytes, dict[str, str], str, int, bytes]] = []  # blob, context, key, version, plaintext

        def encrypt(n: int, key_label: str, version: int) -> None:
            for plaintext, context in MESSAGES[len(sealed):len(sealed) + n]:
                blob = kms.encrypt(alias, plaintext, encryption_context=context).ciphertext_blob
                sealed.append((blob, context, key_label, version, plaintext))

        encrypt(2, "A", 1)
        say(f" 2. encrypted 2 messages through {alias}, each with its encryption context (key A version 1)")

        kms.enable_key_rotation(key_a)
        kms.rotate_key_on_demand(key_a)
        versions_a = _versions(kms, key_a)
        say(f" 3. enabled automatic rotation (every 365 days) and rotated on demand: "
            f"key A now has {len(versions_a)} versions")
        encrypt(1, "A", len(versions_a))
        say(f" 4. encrypted 1 message (key A version {len(versions_a)})")

        clock.jump(JUMP)
        swept = kms.rotate_due()
        versions_a = _versions(kms, key_a)
        say(f" 5. jumped the clock {JUMP.days} days to {_iso(clock())}; the rotation sweep appended "
            f"{swept['rotated']} automatic rotation(s): key A now has {len(versions_a)} versions")
        encrypt(1, "A", len(versions_a))
        say(f" 6. encrypted 1 message (key A version {len(versions_a)})")

        key_b = kms.create_key(description="demo: orders (second key, manual rotation)",
                               tags=[{"TagKey": "app", "TagValue": "demo"}]).key_metadata.key_id
        kms.update_alias(alias, key_b)
        say(f" 7. manual rotation: created key B {key_b} and pointed {alias} at it")
        encrypt(1, "B", 1)
        say(f" 8. encrypted 1 message through {alias} (key B version 1)")

        opened = 0
        for blob, context, _, _, plaintext in sealed:
            if kms.decrypt(blob, encryption_context=context).plaintext == plaintext:
                opened += 1
        say(f" 9. decrypted all {len(sealed)} ciphertexts (no key id given: each names its key and version): "
            f"{opened} match their original")

        try:
            kms.decrypt(sealed[0][0], encryption_context={"purpose": "orders", "order": "9999"})
            refused = "NOT refused"
        except keyledger.KMSError as exc:
            refused = f"refused with {exc.code}"
        say(f"10. decrypting with the wrong encryption context: {refused}")

        report = check_ledger(kms.store)
        say(f"11. replay --check: {report.records} records re-verified and folded: "
            f"{'projections match the log' if report.ok else 'FAILED'}")
        records = kms.store.head().seq

    used = ", ".join(f"key {k} v{v}" for _, _, k, v, _ in sealed)
    say("")
    say("summary")
    say(f"  keys          A {_short(key_a)} ({len(versions_a)} versions: {', '.join(versions_a)}), "
        f"B {_short(key_b)} (1 version)")
    say(f"  alias         {alias} -> key B")
    say(f"  ciphertexts   {len(sealed)} encrypted ({used}); {opened}/{len(sealed)} decrypted")
    say(f"  log           {records} records ({records - first_seq} from this run)")
    verdict = "OK" if report.ok else "FAILED"
    chain = "intact" if report.chain_error is None else f"broken at seq {report.chain_error.seq}"
    say(f"  replay check  {verdict}: hash chain {chain}, {len(report.differences)} difference(s)")
    if not (report.ok and opened == len(sealed) and refused.startswith("refused")):
        raise Failure("the demo did not end as expected (see above)")


COMMANDS = [demo]
