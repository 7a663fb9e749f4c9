"""`keyledger serve` and the access-key commands of `keyledger iam`
(`create-access-key`, `list-access-keys`, `update-access-key`,
`delete-access-key`).

Registered in the main command group with `main.add_command(serve)`, and
the access-key commands either in the CLI's own `iam` group
(`iam.add_command(...)` for each of `ACCESS_KEY_COMMANDS`) or with the `iam`
group here. Both also run standalone (`python -m keyledger.server ...`). Under the main group, its
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
from keyledger.responses import to_aws
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


def _open(home: Path, durability: str | None = None, *, caller: str | None = None,
          cluster: Any = None) -> keyledger.KeyLedger:
    try:
        create = False
        if cluster is not None:  # a new node's empty home joins the cluster
            from keyledger import cluster as cluster_
            create = not (home / "data.mdb").exists() and cluster_.has_ledger(cluster)
        return keyledger.open(home, region=_inherited("region"), account=_inherited("account"),
                              durability=durability or _inherited("durability") or "durable", caller=caller,
                              cluster=cluster, create=create)
    except (LedgerError, ValueError) as exc:
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
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Serve HTTPS with this PEM certificate (chain); needs --tls-key unless the "
                                   "key is in the same file.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="The PEM private key of --tls-cert.")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="Open connections at most; one more is answered 503 and closed.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="A request must arrive in full within this time of its first byte.")
@click.option("--refusal-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="How often the counts of refused unauthenticated requests are recorded "
                                      "(one record per source address and error code).")
@click.option("--unauthenticated-rate", type=click.FloatRange(min=0), default=10.0, show_default=True,
              metavar="PER_SECOND", help="Per source address: unauthenticated refusals regained per second "
                                         "(0: no throttling).")
@click.option("--unauthenticated-burst", type=click.IntRange(min=1), default=100, show_default=True,
              help="Per source address: unauthenticated refusals allowed before it is throttled "
                   "(ThrottlingException).")
@click.option("--trusted-proxy", "trusted_proxy", multiple=True, metavar="ADDRESS|CIDR",
              help="A load balancer or reverse proxy in front of this server (repeat for more). From it, "
                   "X-Forwarded-For names the client (aws:SourceIp, the records' source) and "
                   "X-Forwarded-Proto whether the client used TLS (aws:SecureTransport). Default: none, and "
                   "those headers are ignored.")
@click.option("--cluster", default=None, metavar="etcd://HOST:PORT,...[/PREFIX]",
              help="Serve as a node of a cluster whose log etcd orders (every node a full replica; "
                   "etcds://...?cacert=CA.pem&cert=NODE.pem&key=NODE-KEY.pem for TLS to etcd). An "
                   "empty --home joins it, copying a peer's snapshot (the cluster's root key must be "
                   "provisioned: root.key in the home or KEYLEDGER_ROOT_KEY).")
@click.option("--node-name", default=None, metavar="NAME", help="This node's name in the cluster (default: "
                                                                "the host name).")
@click.option("--advertise-url", default=None, metavar="URL",
              help="The URL peers reach this node at, to copy a snapshot (default: the listening URL).")
@click.option("--bootstrap-from", default=None, metavar="URL|DIR",
              help="Where this node copies a snapshot from when it joins or falls behind the compacted "
                   "log: a peer's URL or home directory (default: the peers' advertised URLs).")
@click.option("--node-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              metavar="SECONDS", help="A node silent this long no longer holds the cluster's log tail back "
                                      "(it will copy a snapshot when it returns).")
@click.option("--compact-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="How often this node deletes the log tail every live node applied "
                                      "(0: never).")
@click.option("--cpus", "cpus", default="one", show_default=True, metavar="one|all|LIST",
              help="CPUs the server runs on: 'one' keeps all its threads on the least busy CPU (they share one "
                   "interpreter lock, and hand-offs between CPUs cost CPU time), 'all' leaves them to the kernel, "
                   "or a list such as 0,2-3.")
def serve(host: str, port: int, home: Path | None, credentials: Path | None, auth: str,
          durability: str | None, sweep_interval: float, access_log: str, graceful_timeout: float,
          tls_cert: Path | None, tls_key: Path | None, max_connections: int, request_timeout: float,
          refusal_interval: float, unauthenticated_rate: float, unauthenticated_burst: int,
          trusted_proxy: tuple[str, ...], cluster: str | None, node_name: str | None, advertise_url: str | None,
          bootstrap_from: str | None, node_timeout: float, compact_interval: float, cpus: str) -> None:
    """Serve the AWS KMS JSON API over HTTP (or HTTPS with --tls-cert), so
    boto3, the AWS CLI and the AWS Encryption SDK work with only an
    endpoint URL changed.

    Every request of an authenticated caller, allowed or refused, is
    recorded in the ledger's log; refusals of callers who proved no
    identity are counted and recorded as one summary per source address and
    error code every --refusal-interval seconds. Use TLS or a loopback
    address: over plain HTTP anyone on the path can replay a signed request
    for up to 15 minutes. Stop with SIGTERM or Ctrl-C: requests in flight
    finish first.
    """
    try:
        from keyledger.server.app import KMSApp, configure_logging, log_event
        from keyledger.server.runner import bind, run
        from keyledger.server.sigv4 import Verifier
    except ImportError as exc:  # uvicorn is an optional extra
        raise _Failure(f"{exc.name} is not installed: pip install 'keyledger[server]'") from None
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
    if tls_cert is not None:
        _check_tls(tls_cert, tls_key)
    from keyledger.server import forwarded
    try:
        proxies = forwarded.parse_networks(trusted_proxy)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None
    from keyledger.server import affinity
    try:  # before the ledger opens: every thread started later inherits it
        pinned = affinity.choose(affinity.parse(cpus))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cpus") from None
    if pinned is not None:
        affinity.apply(pinned)
    configure_logging(None if access_log == "off" else access_log)
    home = _home(home)
    cluster_config = None
    if cluster is not None:
        from keyledger import cluster as cluster_
        try:
            cluster_config = cluster_.config(cluster, node=node_name, url=advertise_url, source=bootstrap_from,
                                             node_timeout=node_timeout, compact_interval=compact_interval)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cluster") from None
    kms = _open(home, durability, cluster=cluster_config)
    try:
        verifier = None
        keys_path = credentials or home / creds.DEFAULT_FILE
        file_keys, held_keys = 0, 0
        if auth == "sigv4":
            try:  # the keys of a credentials file (if any), then those the ledger holds
                from_file = creds.Credentials(keys_path, missing_ok=True)
            except creds.CredentialsError as exc:
                raise _Failure(str(exc)) from None
            file_keys = len(from_file)
            held_keys = sum(len(p.held_keys) for _, p in kms.store.scan("principals"))
            if not keys_path.exists() and not held_keys:
                raise _Failure(f"no access keys: create one with `keyledger iam create-access-key --user-name NAME "
                               f"--home {home}` (none in the ledger, and no credentials file {keys_path})")
            verifier = Verifier(creds.KeySources(from_file, creds.HeldKeys(kms)), kms.region,
                                sessions=creds.Sessions(kms))
        app = KMSApp(kms, auth=auth, verifier=verifier, sweep_interval=sweep_interval or None,
                     refusal_interval=refusal_interval, refusal_rate=unauthenticated_rate,
                     refusal_burst=unauthenticated_burst, trusted_proxies=proxies)
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise _Failure(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound_host, bound_port = sock.getsockname()[:2]
        scheme = "https" if tls_cert is not None else "http"
        if app.node is not None and app.node.url is None:  # what peers copy a snapshot from
            app.node.url = f"{scheme}://{_url_host(bound_host)}:{bound_port}"
        log_event(logging.INFO, "listening", url=f"{scheme}://{_url_host(bound_host)}:{bound_port}",
                  host=bound_host, port=bound_port, home=str(home), region=kms.region, account=kms.account,
                  auth=auth, durability=kms.store.durability,
                  credentials=str(keys_path) if auth == "sigv4" else None,
                  access_keys={"file": file_keys, "ledger": held_keys} if verifier else None,
                  tls=tls_cert is not None, cpus=affinity.current(),
                  max_connections=max_connections, trusted_proxies=[str(p) for p in proxies] or None,
                  cluster=None if app.node is None else {"node": app.node.node, "state": app.node.state})
        if auth == "none":
            click.echo(f"WARNING: authentication is disabled (--auth none): every caller acts as "
                       f"{app.root}. For local development only.", err=True)
        try:
            run(app, sock, graceful_timeout=graceful_timeout, max_connections=max_connections,
                request_timeout=request_timeout, tls_cert=str(tls_cert) if tls_cert else None,
                tls_key=str(tls_key) if tls_key else None)
        finally:
            app.committer.abandon()  # a no-op after a graceful stop
    finally:
        kms.close()
    log_event(logging.INFO, "closed", home=str(home))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_tls(cert: Path, key: Path | None) -> None:
    """Fail early, in one line, on a certificate and key that do not load or do not match."""
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key) if key else None)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise _Failure(f"cannot use the TLS certificate {cert}"
                       f"{f' with the key {key}' if key else ''}: {reason}") from None


@click.group("iam")
def iam() -> None:
    """Access keys for the HTTP endpoint (`keyledger serve`)."""


@iam.command("create-access-key")
@click.option("--user-name", default=None,
              help="The IAM user (arn:aws:iam::<account>:user/NAME) the key acts as (default: the caller, the "
                   "account root unless --principal names another).")
@_home_option
@click.option("--credentials", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Keep the secret in this credentials file (JSON lines, mode 0600) instead of the ledger: "
                   "only the `keyledger serve` given this file accepts the key.")
def create_access_key(user_name: str | None, home: Path | None, credentials: Path | None) -> None:
    """Create an access key id and secret for a user and print the
    AWS-shaped `AccessKey` (the only time the secret is shown). The ledger
    holds the secret, wrapped under its root key, and the key's status, so
    a running `keyledger serve` (every node of a cluster) accepts it at
    once; at most two keys per user (or for the root), as in AWS. The
    issue is recorded in the log (never the secret); the user must exist
    (`keyledger iam create-user`) and the caller may need
    `iam:CreateAccessKey`. Without --user-name the key is the caller's own:
    the account root's, which may do anything (as AWS's root keys may).
    """
    home = _home(home)
    with _open(home, caller=_inherited("principal")) as kms:  # who issues it: the group's --principal
        principal = f"arn:aws:iam::{kms.account}:user/{user_name}" if user_name else kms.caller
        if credentials is None:
            try:
                issued = kms.create_access_key(principal)
            except KMSError as exc:
                raise _ServiceError(exc, "CreateAccessKey") from None
            click.echo(json.dumps(issued.to_aws(), indent=4))
            return
        entry = creds.new_access_key(principal, user_name or "")
        try:
            kms.record_access_key(principal, entry.access_key_id)
        except KMSError as exc:
            raise _ServiceError(exc, "CreateAccessKey") from None
    try:
        creds.append(credentials, entry)
    except (OSError, creds.CredentialsError) as exc:
        raise _Failure(str(exc)) from None
    click.echo(json.dumps({"AccessKey": {
        **({"UserName": user_name} if user_name else {}), "AccessKeyId": entry.access_key_id,
        "Status": entry.status, "SecretAccessKey": entry.secret_access_key, "CreateDate": entry.create_date}},
        indent=4))


def _held(kms: keyledger.KeyLedger, access_key_id: str | None) -> str | None:
    """The principal of an access key the ledger holds, or None."""
    found = None if access_key_id is None else kms.held_access_key(access_key_id)
    return None if found is None else found[0]


def _target(kms: keyledger.KeyLedger, user_name: str | None, path: Path, access_key_id: str | None) -> str:
    """The principal an access-key command acts on: the named user, else the
    key's owner (in the ledger or the credentials file), else the caller (as
    AWS does)."""
    if user_name:
        return f"arn:aws:iam::{kms.account}:user/{user_name}"
    held = _held(kms, access_key_id)
    if held is not None:
        return held
    if access_key_id is not None:
        try:
            for entry in creds.entries(path):
                if entry.access_key_id == access_key_id:
                    return entry.principal
        except (OSError, creds.CredentialsError):
            pass
    return kms.caller


def _keys_path(home: Path, credentials: Path | None) -> Path:
    return credentials or home / creds.DEFAULT_FILE


@iam.command("get-access-key-last-used")
@click.option("--access-key-id", required=True, help="The access key (AKIA...).")
@_home_option
def get_access_key_last_used(access_key_id: str, home: Path | None) -> None:
    """When an access key last signed a request, for which service and in
    which region, as AWS IAM answers it (`AccessKeyLastUsed`; "N/A" for a key
    never used), read from the log. Recorded; the caller may need
    `iam:GetAccessKeyLastUsed` on the key's user."""
    with _open(_home(home), caller=_inherited("principal")) as kms:
        try:
            found = kms.get_access_key_last_used(access_key_id)
        except KMSError as exc:
            raise _ServiceError(exc, "GetAccessKeyLastUsed") from None
    click.echo(json.dumps(to_aws(found), indent=4))


@iam.command("list-access-keys")
@click.option("--user-name", default=None, help="The IAM user whose keys to list (default: the caller).")
@_home_option
@_credentials_option
def list_access_keys(user_name: str | None, home: Path | None, credentials: Path | None) -> None:
    """List a user's access keys as AWS IAM does (`AccessKeyMetadata`: user
    name, key id, status, creation date; never a secret): those the ledger
    holds and those of the credentials file. The listing is recorded in the
    log and the caller may need `iam:ListAccessKeys`."""
    home = _home(home)
    path = _keys_path(home, credentials)
    with _open(home, caller=_inherited("principal")) as kms:
        principal = _target(kms, user_name, path, None)
        try:
            listed = kms.list_access_keys(principal).access_key_metadata
        except KMSError as exc:
            raise _ServiceError(exc, "ListAccessKeys") from None
    try:
        in_file = {e.access_key_id: e for e in creds.entries(path) if e.principal == principal} \
            if path.exists() else {}
    except (OSError, creds.CredentialsError) as exc:
        raise _Failure(str(exc)) from None
    shown = []
    for meta in listed:
        if meta.status is not None:  # the ledger holds it
            shown.append(to_aws(meta))
        elif (e := in_file.pop(meta.access_key_id, None)) is not None:
            shown.append(_file_metadata(e))
    shown += [_file_metadata(e) for e in in_file.values()]  # a line the ledger never recorded
    click.echo(json.dumps({"AccessKeyMetadata": shown}, indent=4))


def _file_metadata(e: creds.AccessKeyLine) -> dict[str, Any]:
    return {**({"UserName": e.user_name} if e.user_name else {}), "AccessKeyId": e.access_key_id,
            "Status": e.status, **({"CreateDate": e.create_date} if e.create_date else {})}


@iam.command("update-access-key")
@click.option("--access-key-id", required=True, help="The access key to change.")
@click.option("--status", required=True, type=click.Choice(["Active", "Inactive"]),
              help="Inactive: the key is refused (UnrecognizedClientException) by a running server from its "
                   "next request (a credentials file's key: within a second); Active: it works again.")
@click.option("--user-name", default=None, help="The IAM user the key belongs to (default: its owner).")
@_home_option
@_credentials_option
def update_access_key(access_key_id: str, status: str, user_name: str | None, home: Path | None,
                      credentials: Path | None) -> None:
    """Make an access key Inactive (switched off, kept) or Active again.
    The change is recorded in the log (the caller may need
    `iam:UpdateAccessKey`); for a key of a credentials file it is then
    written to the file, which a running server re-reads within a second."""
    home = _home(home)
    path = _keys_path(home, credentials)
    with _open(home, caller=_inherited("principal")) as kms:
        principal = _target(kms, user_name, path, access_key_id)
        held = _held(kms, access_key_id) is not None
        try:
            kms.update_access_key(principal, access_key_id, status)
        except KMSError as exc:
            raise _ServiceError(exc, "UpdateAccessKey") from None
    if not held:
        _change_file(path, access_key_id, principal, lambda: creds.set_status(path, access_key_id, status))


@iam.command("delete-access-key")
@click.option("--access-key-id", required=True, help="The access key to delete.")
@click.option("--user-name", default=None, help="The IAM user the key belongs to (default: its owner).")
@_home_option
@_credentials_option
def delete_access_key(access_key_id: str, user_name: str | None, home: Path | None,
                      credentials: Path | None) -> None:
    """Delete an access key: its secret leaves the ledger (or its line the
    credentials file), a running server refuses it from then on, and the
    deletion is recorded in the log (the caller may need
    `iam:DeleteAccessKey`)."""
    home = _home(home)
    path = _keys_path(home, credentials)
    with _open(home, caller=_inherited("principal")) as kms:
        principal = _target(kms, user_name, path, access_key_id)
        held = _held(kms, access_key_id) is not None
        try:
            kms.delete_access_key(principal, access_key_id)
        except KMSError as exc:
            raise _ServiceError(exc, "DeleteAccessKey") from None
    if not held:
        _change_file(path, access_key_id, principal, lambda: creds.delete(path, access_key_id))


def _change_file(path: Path, access_key_id: str, principal: str, change: Any) -> None:
    try:
        entry = next((e for e in creds.entries(path) if e.access_key_id == access_key_id), None)
        if entry is not None and entry.principal != principal:
            raise _Failure(f"access key {access_key_id} in {path} belongs to {entry.principal}, not {principal}")
        change()
    except KeyError:
        raise _Failure(f"access key {access_key_id} is not in {path} (the change is recorded in the log; "
                       "a server using another credentials file still accepts it)") from None
    except FileNotFoundError:
        raise _Failure(f"no credentials file {path}") from None
    except (OSError, creds.CredentialsError) as exc:
        raise _Failure(str(exc)) from None


ACCESS_KEY_COMMANDS = (create_access_key, list_access_keys, update_access_key, delete_access_key)
COMMANDS = (serve, iam)
