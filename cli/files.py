"""`keyledger encrypt-file` / `decrypt-file`: envelope encryption of files
and pipes in the AWS Encryption SDK's message format (keyledger.envelope),
and the `forensics ciphertext` view of such a message.

    keyledger encrypt-file --key-id alias/backups --in db.dump --out db.dump.enc \\
        --encryption-context purpose=backup
    keyledger decrypt-file --in db.dump.enc --out db.dump --encryption-context purpose=backup
    pg_dump app | keyledger encrypt-file --key-id K --in - --out - > app.sql.enc

`-` is stdin or stdout. A file output is written to a temporary file beside
it and moved into place only when complete (and, decrypting, verified), so
an error never leaves a partial file; decrypting to stdout spools to an
unnamed temporary file first, for the same reason. A progress bar shows on
a terminal (stderr) for inputs of 8 MiB or more and never when piped.
Nothing is printed to stdout but the output itself; `--metadata-output`
writes the message's header (ids, keys, context) as JSON.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from keyledger import envelope
from keyledger.cli import params
from keyledger.cli.context import settings
from keyledger.cli.output import Failure, LedgerCommand

PROGRESS_MIN_BYTES = 8 << 20


def _context(values: tuple[str, ...]) -> dict[str, str] | None:
    """--encryption-context, repeated or space-separated: each `k=v`
    (or `k=v,k2=v2`, or a JSON object), merged."""
    out: dict[str, str] = {}
    for value in values:
        out.update(params.string_map("--encryption-context", value) or {})
    return out or None


def _size(path: str) -> int | None:
    if path == "-":
        try:
            st = os.fstat(sys.stdin.fileno())
        except (OSError, ValueError):
            return None
        return st.st_size if st.st_size > 0 and not os.isatty(sys.stdin.fileno()) else None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Any]:
    """A progress callback: a bar on stderr when it is a terminal and the
    input is large, else nothing."""
    if total is None or total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True,
                           show_percent=True) as bar:
        seen = [0]

        def update(count: int) -> None:
            bar.update(count - seen[0])
            seen[0] = count
        yield update


def _check_paths(src: str, dst: str) -> None:
    if src != "-" and dst != "-" and os.path.abspath(src) == os.path.abspath(dst):
        raise click.BadParameter("--out must not be the input file", param_hint="--out")
    if dst != "-" and os.path.isdir(dst):
        raise click.BadParameter(f"{dst} is a directory", param_hint="--out")


def _write_metadata(path: str | None, info: envelope.MessageInfo, mode: str) -> None:
    if path is None:
        return
    data = message_json(info)
    data["Mode"] = mode
    data["PlaintextBytes"], data["MessageBytes"] = info.plaintext_bytes, info.message_bytes
    text = json.dumps(data, indent=4) + "\n"
    if path == "-":
        click.echo(text, err=True, nl=False)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _stdout() -> IO[bytes]:
    return sys.stdout.buffer


def _stdin() -> IO[bytes]:
    return sys.stdin.buffer


def _envelope_errors(action: str) -> Any:
    """EnvelopeError as `keyledger: error: ...` (exit 1); the ledger's own
    refusals are mapped by LedgerCommand as every command's are."""
    @contextmanager
    def wrapped() -> Iterator[None]:
        try:
            yield
        except envelope.EnvelopeError as exc:
            raise Failure(f"cannot {action}: {exc}") from None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    return wrapped()


_IN = click.option("--in", "src", required=True, metavar="FILE", help="The input file, or - for stdin.")
_OUT = click.option("--out", "dst", required=True, metavar="FILE", help="The output file, or - for stdout.")
_CONTEXT = click.option("--encryption-context", "context", multiple=True, metavar="K=V",
                        help="A pair of the encryption context (repeat, or space-separate, for more; "
                             "k=v,k2=v2 and a JSON object work too).")
_METADATA = click.option("--metadata-output", default=None, metavar="FILE",
                         help="Write the message's header (message id, algorithm, encryption context, "
                              "the keys its data key is under) as JSON to FILE (- for stderr).")


@click.command("encrypt-file", cls=LedgerCommand, list_options=("--key-id", "--encryption-context"))
@click.option("--key-id", "key_ids", required=True, multiple=True, metavar="KEY",
              help="The KMS key (key ID, key ARN, alias name or alias ARN). Give several to let any one "
                   "of them decrypt: the first generates the data key, each other one wraps it.")
@_IN
@_OUT
@_CONTEXT
@click.option("--frame-length", type=click.IntRange(1, envelope.MAX_FRAME_LENGTH),
              default=envelope.DEFAULT_FRAME_LENGTH, show_default=True,
              help="Plaintext bytes per frame of the message.")
@click.option("--algorithm", default=envelope.DEFAULT_ALGORITHM, show_default=True,
              help="The AWS Encryption SDK algorithm suite (one with key commitment, under the default "
                   "commitment policy).")
@_METADATA
def encrypt_file(key_ids: tuple[str, ...], src: str, dst: str, context: tuple[str, ...], frame_length: int,
                 algorithm: str, metadata_output: str | None) -> None:
    """Envelope-encrypt a file (or stdin) into an AWS Encryption SDK message,
    which any ESDK (Python, Java, C, JS, the aws-encryption-cli) decrypts
    against AWS KMS semantics, `keyledger serve` included. The data key
    comes from GenerateDataKey under the first --key-id (and is wrapped by
    Encrypt under each other one): each call is a record in the log. The
    message is framed, key-committing and signed (ECDSA P-384) by default,
    and streamed with constant memory."""
    _check_paths(src, dst)
    encryption_context = _context(context)
    with settings().open() as kms, _envelope_errors("encrypt"), \
            _progress("encrypting", _size(src)) as progress:
        options: dict[str, Any] = {"encryption_context": encryption_context, "frame_length": frame_length,
                                   "algorithm": algorithm, "progress": progress}
        source = _stdin() if src == "-" else src
        if dst != "-":
            info = kms.encrypt_file(list(key_ids), source, dst, **options)
        else:
            with _reading(source) as stream:
                info = kms.encrypt_stream(list(key_ids), stream, _stdout(), **options)
            _stdout().flush()
    _write_metadata(metadata_output, info, "encrypt")


@click.command("decrypt-file", cls=LedgerCommand, list_options=("--key-id", "--encryption-context"))
@_IN
@_OUT
@_CONTEXT
@click.option("--key-id", "key_ids", multiple=True, metavar="KEY",
              help="Only try the data keys under these KMS keys (default: any key of this ledger the "
                   "message names).")
@_METADATA
def decrypt_file(src: str, dst: str, context: tuple[str, ...], key_ids: tuple[str, ...],
                 metadata_output: str | None) -> None:
    """Decrypt an AWS Encryption SDK message (from encrypt-file, or any
    ESDK using AWS KMS keys of this ledger). Each --encryption-context pair
    must be in the message's context (checked before any key is used). The
    data key is opened by Decrypt (a record); the output appears only after
    the whole message, its signature included, verified: a wrong context, a
    tampered or cut message leaves no output at all."""
    _check_paths(src, dst)
    encryption_context = _context(context)
    with settings().open() as kms, _envelope_errors("decrypt"), \
            _progress("decrypting", _size(src)) as progress:
        options: dict[str, Any] = {"encryption_context": encryption_context,
                                   "key_ids": list(key_ids) or None, "progress": progress}
        source = _stdin() if src == "-" else src
        if dst != "-":  # verified before it is moved into place
            info = kms.decrypt_file(source, dst, **options)
        else:
            with _reading(source) as stream:  # spooled: stdout gets verified bytes only
                info = kms.decrypt_stream(stream, _stdout(), **options)
            _stdout().flush()
    _write_metadata(metadata_output, info, "decrypt")


@contextmanager
def _reading(source: str | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, str):
        with open(source, "rb") as f:
            yield f
    else:
        yield source  # stdin stays open


# -- forensics ciphertext on an ESDK message ----------------------------------------

def message_json(info: envelope.MessageInfo) -> dict[str, Any]:
    return {"MessageId": info.message_id, "Algorithm": info.algorithm,
            "EncryptionContext": dict(sorted(info.encryption_context.items())),
            "FrameLength": info.frame_length,
            "EncryptedDataKeys": [{"ProviderId": e.provider_id, "KeyInfo": e.key_info}
                                  for e in info.encrypted_data_keys]}


def read_header(source: str | bytes) -> envelope.MessageInfo:
    """The header of an ESDK message in a file (- for stdin) or in bytes."""
    try:
        if isinstance(source, bytes):
            return envelope.read_message_header(io.BytesIO(source))
        if source == "-":
            return envelope.read_message_header(_stdin())
        with open(source, "rb") as f:
            return envelope.read_message_header(f)
    except envelope.EnvelopeError as exc:
        raise Failure(str(exc)) from None


def read_ciphertext(path: str) -> envelope.MessageInfo | bytes:
    """FILE of `forensics ciphertext` (- for stdin): an ESDK message's header
    (read from the start of the file only: a message may be gigabytes), or
    the bytes of a keyledger ciphertext."""
    stream = _stdin() if path == "-" else open(path, "rb")
    try:
        head = stream.peek(1)[:1] if hasattr(stream, "peek") else None
        if head is None:  # a stream that cannot peek: the whole input
            data = stream.read()
            return read_header(data) if envelope.looks_like_message(data) else data
        if envelope.looks_like_message(head):
            try:
                return envelope.read_message_header(stream)
            except envelope.EnvelopeError as exc:
                raise Failure(str(exc)) from None
        return stream.read(1 << 20)
    finally:
        if path != "-":
            stream.close()


def message_forensics(info: envelope.MessageInfo) -> None:
    """Print `forensics ciphertext` for an ESDK message: its header and, for
    each encrypted data key, the record that made it and every later use."""
    from keyledger import forensics as forensics_
    from keyledger.cli.audit import Identity, open_readonly
    from keyledger.cli.forensics import _print, ciphertext_text, ciphertext_view

    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        found = forensics_.message_history(snap, info)
    keys = []
    for edk in found["encrypted_data_keys"]:
        entry: dict[str, Any] = {"ProviderId": edk["provider_id"], "KeyInfo": edk["key_info"]}
        if edk["history"] is not None:
            entry.update(ciphertext_view(edk["history"], identity.region, identity.account))
        else:
            entry["Note"] = "not a keyledger ciphertext (another provider's data key)"
        keys.append(entry)
    view = {"Format": "aws-encryption-sdk", "MessageId": found["message_id"], "Algorithm": found["algorithm"],
            "EncryptionContext": dict(sorted(found["encryption_context"].items())),
            "FrameLength": found["frame_length"], "EncryptedDataKeys": keys}
    lines = [f"message:      {view['MessageId']} (AWS Encryption SDK)",
             f"algorithm:    {view['Algorithm']}",
             "context:      " + (", ".join(f"{k}={v}" for k, v in view["EncryptionContext"].items()
                                           if k != "aws-crypto-public-key") or "none")
             + (" (+ aws-crypto-public-key)" if "aws-crypto-public-key" in view["EncryptionContext"] else ""),
             f"data keys:    {len(keys)}"]
    for i, entry in enumerate(keys, 1):
        lines += ["", f"data key {i}: {entry['ProviderId']} {entry['KeyInfo']}"]
        if "Note" in entry:
            lines.append(f"  {entry['Note']}")
        else:
            lines += [("  " + line).rstrip() for line in ciphertext_text(entry).splitlines()]
    _print(view, "\n".join(lines))


COMMANDS = [encrypt_file, decrypt_file]
__all__ = ["COMMANDS", "encrypt_file", "decrypt_file", "message_forensics", "read_header", "message_json"]
