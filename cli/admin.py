"""Running the ledger itself: init, and the rotation/deletion sweep."""

from __future__ import annotations

import dataclasses
import os

import click

import keyledger
from keyledger.cli.context import settings
from keyledger.cli.output import command, show


@command("init", output_options=True)
@click.option("--region", default=None, help="The ledger's initial (default) region (default us-east-1).")
@click.option("--account", default=None, help="The ledger's account id (default 111122223333).")
def init(region: str | None, account: str | None) -> None:
    """Create the ledger in the home directory (mode 0700; its files, the
    root and checkpoint keys among them, mode 0600), and print its home,
    initial (default) region and account. On an existing ledger it only
    prints them (a different --region/--account is an error). The only
    command that creates a ledger: every other one refuses a home that has
    none. A ledger serves every region of its account: other commands'
    --region picks the region of their request."""
    opts = settings()
    opts = dataclasses.replace(opts, region=region or opts.region, account=account or opts.account)
    with opts.open(create=True) as kms:
        if opts.region is not None and opts.region != kms.home_region:
            raise keyledger.LedgerError(f"this ledger's initial region is {kms.home_region}; it cannot be "
                                       f"changed (--region {opts.region} on other commands makes requests there)")
        show({"Home": os.path.abspath(kms.store.path), "Region": kms.home_region, "Account": kms.account})


@command("rotate-due", output_options=True)
def rotate_due() -> None:
    """Append every automatic rotation and key deletion that has fallen due,
    for all keys (the sweep a server runs on a timer), sign a checkpoint of
    the log, and print the counts and the checkpoint's tree size."""
    with settings().open() as kms:
        counts = kms.rotate_due()
        checkpoint = kms.checkpoint()
    show({"Rotated": counts["rotated"], "Deleted": counts["deleted"], "CheckpointTreeSize": checkpoint.size})


@command("rotate-root-key", output_options=True)
def rotate_root_key() -> None:
    """Re-wrap every key's KEK under a fresh root key and destroy the old one
    (account root only). Run it after deleting keys: copies of their KEKs
    left in LMDB's free pages or in backups become unrecoverable."""
    with settings().open() as kms:
        count = kms.rotate_root_key()
    show({"KeksRewrapped": count})


@command("stage-root-key", output_options=True)
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="The key to stage (32 bytes): the file another node's stage-root-key wrote "
                   "(root.key.staged in its home). Default: a fresh key, to copy to the other nodes.")
def stage_root_key(key_file: str | None) -> None:
    """Place the next root key of a cluster's node in its home
    (root.key.staged, 0600) and print its check value: stage the same key
    on every node (compare the checks), then run `keyledger cluster
    rotate-root-key` on one. Works while the node serves: the ledger is not
    opened."""
    key = None
    if key_file is not None:
        with open(key_file, "rb") as f:
            key = f.read()
    home = settings().ledger_home
    check = keyledger.stage_root_key(home, key)
    show({"StagedRootKeyCheck": check, "Path": os.path.join(os.path.abspath(home), "root.key.staged")})


COMMANDS = [init, rotate_due, rotate_root_key, stage_root_key]
