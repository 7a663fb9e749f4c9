"""The global options, and opening the ledger they name (lazily, per command)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

import ledger
from ledger.service import Clock


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path | None = None  # None: ledger.default_home()
    region: str | None = None  # only used when the ledger is created
    account: str | None = None
    durability: str = "durable"
    output: str | None = None  # None: the command's own default (json for operations)
    query: str | None = None

    @property
    def ledger_home(self) -> Path:
        return self.home if self.home is not None else ledger.default_home()

    @contextmanager
    def open(self, *, home: Path | None = None, clock: Clock | None = None) -> Iterator[ledger.KeyLedger]:
        """The ledger for one command, closed when it is done."""
        kms = ledger.open(home or self.ledger_home, region=self.region, account=self.account,
                          durability=self.durability, clock=clock)
        with kms:
            yield kms


def settings() -> Settings:
    """The settings of the command being run."""
    ctx = click.get_current_context()
    obj = ctx.find_object(Settings)
    return obj if obj is not None else Settings()
