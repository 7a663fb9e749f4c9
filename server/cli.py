"""`keyledger serve` and `keyledger iam create-access-key`.

Registered in the main command group with `main.add_command(serve)`, and
`create-access-key` either in the CLI's own `iam` group
(`iam.add_command(create_access_key)`) or with the `iam` group here. Both
also run standalone (`python -m keyledger.server ...`). Under the main group, its
`--home`, `--durability`, `--region`, `--account` and (for the caller who
issues an access key) `--principal` apply unless given here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

import keyledger
from keyledger.errors import KMSError, LedgerError
from keyledger.server import credentials as creds

DEFAULT_PORT = 4000


class _ServiceError(click.ClickException):
    """A refused request, as the AWS CLI prints it (exit 254)."""

    exit_code = 254

    def __init__(self, error: KMSError, operation: str) -> None:
        super().__init__(error.message)
        self.code, self.operation = error.code, operation

    def show(self, file: Any = None) -> None:
        click.echo(f"An error occurred ({self.code}) when calling the {self.operation} operation: "
                   f"{self.message}", err=True)


class _Failure(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"keyledger: error: {self.message}", err=True)


def _inherited(name: str) -> Any:
    """A global option of the enclosing `keyledger` group, if any."""
    ctx = click.get_current_context()
    while ctx.parent is not None:
        ctx = ctx.parent
        value = getattr(ctx.obj, name, None)
        if value is not None:
            return value
    return None


def _home(home: Path | None) -> Path:
    return home or _inherited("home") or keyledger.default_home()


def _open(home: Path, durability: str | None = None, *, caller: str | None = None) -> keyledger.KeyLedger:
    try:
        return keyledger.open(home, region=_inherited("region"), account=_inherited("account"),
                           durability=durability or _inherited("durability") or "durable", caller=caller)
    except LedgerError as exc:
        raise _Failure(str(exc)) from None


_home_option = click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
    help="The ledger's directory (default: the keyledger group's --home, KEYLEDGER_HOME, or the user's "
         "data directory).")
_credentials_option = click.option(
    "--credentials", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
    help=f"The access keys file, JSON lines, mode 0600 (default: <home>/{creds.DEFAULT_FILE}).")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed in the 'listening' log line).")
@_home_option
@_credentials_option
@click.option("--auth", type=click.Choice(["sigv4", "none"]), default="sigv4", show_default=True,
              help="sigv4: verify AWS Signature Version 4 against the credentials file. none: development "
                   "only, every caller acts as the account root (logged loudly at start).")
@click.option("--durability", type=click.Choice(["durable", "relaxed"]), default=None,
              help="durable (default): every commit synced; relaxed: synced periodically.")
@click.option("--sweep-interval", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              metavar="SECONDS", help="How often automatic key rotations that fell due are appended (0: never).")
@click.option("--access-log", default="-", show_default=True, metavar="FILE",
              help="Where the JSON access log lines go: '-' for stderr, a file, or 'off'.")
@click.option("--graceful-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="On SIGTERM/Ctrl-C, how long requests in flight may take to finish.")
def serve(host: str, port: int, home: Path | None, credentials: Path | None, auth: str,
          durability: str | None, sweep_interval: float, access_log: str, graceful_timeout: float) -> None:
    """Serve the AWS KMS JSON API over HTTP, so boto3, the AWS CLI and the
    AWS Encryption SDK work with only an endpoint URL changed.

    Every request, allowed or refused, is recorded in the ledger's log.
    Stop with SIGTERM or Ctrl-C: requests in flight finish first.
    """
    try:
        from keyledger.server.app import KMSApp, configure_logging, log_event
        from keyledger.server.runner import bind, run
        from keyledger.server.sigv4 import Verifier
    except ImportError as exc:  # uvicorn is an optional extra
        raise _Failure(f"{exc.name} is not installed: pip install 'keyledger[server]'") from None
    configure_logging(None if access_log == "off" else access_log)
    home = _home(home)
    kms = _open(home, durability)
    try:
        verifier = None
        keys_path = credentials or home / creds.DEFAULT_FILE
        if auth == "sigv4":
            try:
                verifier = Verifier(creds.Credentials(keys_path), kms.region)
            except creds.CredentialsError as exc:
                raise _Failure(str(exc)) from None
        app = KMSApp(kms, auth=auth, verifier=verifier, sweep_interval=sweep_interval or None)
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise _Failure(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound_host, bound_port = sock.getsockname()[:2]
        log_event(logging.INFO, "listening", url=f"http://{_url_host(bound_host)}:{bound_port}",
                  host=bound_host, port=bound_port, home=str(home), region=kms.region, account=kms.account,
                  auth=auth, durability=kms.store.durability,
                  credentials=str(keys_path) if auth == "sigv4" else None,
                  access_keys=len(verifier.credentials) if verifier else None)
        if auth == "none":
            click.echo(f"WARNING: authentication is disabled (--auth none): every caller acts as "
                       f"{app.root}. For local development only.", err=True)
        try:
            run(app, sock, graceful_timeout=graceful_timeout)
        finally:
            app.committer.abandon()  # a no-op after a graceful stop
    finally:
        kms.close()
    log_event(logging.INFO, "closed", home=str(home))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@click.group("iam")
def iam() -> None:
    """Access keys for the HTTP endpoint (`keyledger serve`)."""


@iam.command("create-access-key")
@click.option("--user-name", required=True, help="The IAM user (arn:aws:iam::<account>:user/NAME) the key acts as.")
@_home_option
@_credentials_option
def create_access_key(user_name: str, home: Path | None, credentials: Path | None) -> None:
    """Create an access key id and secret for a user, append them to the
    credentials file, and print the AWS-shaped `AccessKey` (the only time the
    secret is shown). The issue of the key id (never the secret) is
    recorded in the ledger's log; the user must exist (`keyledger iam
    create-user`) and the caller may need `iam:CreateAccessKey`.
    """
    home = _home(home)
    with _open(home, caller=_inherited("principal")) as kms:  # who issues it: the group's --principal
        principal = f"arn:aws:iam::{kms.account}:user/{user_name}"
        entry = creds.new_access_key(principal, user_name)
        try:
            kms.record_access_key(principal, entry.access_key_id)
        except KMSError as exc:
            raise _ServiceError(exc, "CreateAccessKey") from None
    path = credentials or home / creds.DEFAULT_FILE
    try:
        creds.append(path, entry)
    except (OSError, creds.CredentialsError) as exc:
        raise _Failure(str(exc)) from None
    click.echo(json.dumps({"AccessKey": {
        "UserName": user_name, "AccessKeyId": entry.access_key_id, "Status": entry.status,
        "SecretAccessKey": entry.secret_access_key, "CreateDate": entry.create_date}}, indent=4))


COMMANDS = (serve, iam)
