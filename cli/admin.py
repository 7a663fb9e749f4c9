"""Running the ledger itself: init, and the rotation/deletion sweep."""

from __future__ import annotations

import dataclasses
import os

import click

from cli.context import settings
from cli.output import command, show


@command("init", output_options=True)
@click.option("--region", default=None, help="The ledger's region (default us-east-1).")
@click.option("--account", default=None, help="The ledger's account id (default 111122223333).")
def init(region: str | None, account: str | None) -> None:
    """Create the ledger (and its root key file, mode 0600) in the home
    directory, and print its home, region and account. On an existing
    ledger it only prints them (a different --region/--account is an error)."""
    opts = settings()
    opts = dataclasses.replace(opts, region=region or opts.region, account=account or opts.account)
    with opts.open() as kms:
        show({"Home": os.path.abspath(kms.store.path), "Region": kms.region, "Account": kms.account})


@command("rotate-due", output_options=True)
def rotate_due() -> None:
    """Append every automatic rotation and key deletion that has fallen due,
    for all keys (the sweep a server runs on a timer), and print the counts."""
    with settings().open() as kms:
        counts = kms.rotate_due()
    show({"Rotated": counts["rotated"], "Deleted": counts["deleted"]})


COMMANDS = [init, rotate_due]
