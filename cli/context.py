"""The global options, and opening the ledger they name (lazily, per command).

Every command acts as one principal (`--principal` / KEYLEDGER_PRINCIPAL;
None: the ledger's account root), passed to the service as its caller.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

import keyledger
from keyledger.service import Clock

PRINCIPAL_ENV = "KEYLEDGER_PRINCIPAL"
# An IAM identity: arn:aws:iam::<account>:user/NAME, :role/NAME, :root, or an STS session.
_PRINCIPAL_RE = re.compile(r"^arn:aws:(iam|sts)::\d{12}:(root|[\w+=,.@-]+/[\w+=,.@/-]+)$")


def check_principal(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--principal: refuse what cannot be a caller (a typo would only be denied later)."""
    if value is not None and not _PRINCIPAL_RE.match(value):
        raise click.BadParameter("expected an IAM principal ARN: arn:aws:iam::ACCOUNT:user/NAME, "
                                 ":role/NAME or :root")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path | None = None  # None: keyledger.default_home()
    region: str | None = None  # the request region (None: the ledger's initial region); init: the initial one
    account: str | None = None
    durability: str = "durable"
    output: str | None = None  # None: the command's own default (json for operations)
    query: str | None = None
    principal: str | None = None  # None: the account root, arn:aws:iam::<account>:root

    @property
    def ledger_home(self) -> Path:
        return self.home if self.home is not None else keyledger.default_home()

    @contextmanager
    def open(self, *, home: Path | None = None, clock: Clock | None = None,
             create: bool = False) -> Iterator[keyledger.KeyLedger]:
        """The ledger for one command, closed when it is done. Only `init`
        and `demo` pass `create`: any other command on a missing ledger
        fails naming the path, never starts a new one."""
        kms = keyledger.open(home or self.ledger_home, create=create, region=self.region, account=self.account,
                             durability=self.durability, clock=clock, caller=self.principal)
        with kms:
            yield kms


def settings() -> Settings:
    """The settings of the command being run."""
    ctx = click.get_current_context()
    obj = ctx.find_object(Settings)
    return obj if obj is not None else Settings()
