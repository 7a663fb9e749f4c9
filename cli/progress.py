"""Progress for long reads of the log: a one-line counter on stderr, shown
only when stderr is a terminal (quiet when piped)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

PROGRESS_EVERY = 10_000


class Progress:
    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, total
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, seq: int) -> None:
        if self.enabled:
            click.echo(f"\r{self.what}: {seq:,} / {self.total:,} records", err=True, nl=False)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo("\r\033[K", err=True, nl=False)


class Counted:
    """A snapshot whose record stream reports progress; everything else is
    the snapshot's own."""

    def __init__(self, snapshot: Any, progress: Progress) -> None:
        self._snapshot, self._progress = snapshot, progress

    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        for raw in self._snapshot.raw_records(start, stop):
            if raw.seq % PROGRESS_EVERY == 0:
                self._progress(raw.seq)
            yield raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._snapshot, name)
