"""Envelope encryption of files and streams, in the AWS Encryption SDK's
message format, under the ledger's keys.

KMS encrypts at most 4 KB; anything bigger is sealed under a data key that a
KMS key wraps. Here the AWS Encryption SDK (`aws-encryption-sdk`, the
`files` extra) does all of that: framing, the header, key commitment, the
signature. keyledger only supplies its master key provider
(`keyledger.esdk_provider`), so every data key generated, wrapped or
opened for a message is a GenerateDataKey, Encrypt or Decrypt record in the
log, and the messages interoperate with every ESDK (Python, Java, C, JS,
the aws-encryption-cli) pointed at AWS KMS semantics: a file encrypted here
opens with the ESDK's `StrictAwsKmsMasterKeyProvider` against `keyledger
serve` for the same ledger, and the reverse.

Defaults are the ESDK's safest: commitment policy
REQUIRE_ENCRYPT_REQUIRE_DECRYPT and the suite
AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 (key commitment and an ECDSA
signature over the whole message). Streams are framed and processed a frame
at a time, so memory stays flat whatever the size.

Decrypting never lets unverified plaintext out: the ESDK releases frames
before it checks the signature at the very end, so output goes to a temporary
file (mode 0600; for a stream, an unnamed one) that is moved into place, or
copied to the stream, only once the whole message has verified, and deleted
otherwise. The caller's `encryption_context` pairs are checked against the
message's before any data key is asked for.

Errors: the ledger's refusal of a data key is raised as the ledger's own
AWS-named error (AccessDeniedException, DisabledException, ...); everything
else is an `EnvelopeError` whose `__cause__` is the ESDK's error.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from keyledger.commands import is_key_uuid, key_arn
from keyledger.errors import KMSError

if TYPE_CHECKING:
    from keyledger.service import KeyLedger

__all__ = ["EnvelopeOps", "EnvelopeError", "MissingDependencyError", "EncryptionContextMismatchError",
           "InvalidMessageError", "NoDataKeyError", "MessageInfo", "EncryptedDataKeyInfo",
           "encrypt_stream", "decrypt_stream", "encrypt_bytes", "decrypt_bytes", "encrypt_file",
           "decrypt_file", "read_message_header", "master_key_provider", "looks_like_message",
           "DEFAULT_ALGORITHM", "DEFAULT_COMMITMENT_POLICY", "DEFAULT_FRAME_LENGTH",
           "DEFAULT_MAX_ENCRYPTED_DATA_KEYS"]

DEFAULT_ALGORITHM = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
DEFAULT_COMMITMENT_POLICY = "REQUIRE_ENCRYPT_REQUIRE_DECRYPT"
#: 64 KiB frames: the ESDK's default is 4 KiB, whose per-frame overhead in
#: Python halves throughput; a frame is also the most plaintext released
#: (into the temporary file) before its tag is checked.
DEFAULT_FRAME_LENGTH = 64 * 1024
#: the ESDK requires frames in multiples of its suites' "block size", which it
#: states as 128 (AES's block in bits) and applies to the frame in bytes
FRAME_MULTIPLE = 128
MAX_FRAME_LENGTH = 2**31 - FRAME_MULTIPLE  # the ESDK's limit is below 2^31
#: a message with more encrypted data keys is refused before any is tried
#: (each try is a Decrypt request), as the ESDK's guidance recommends
DEFAULT_MAX_ENCRYPTED_DATA_KEYS = 10
_UNFRAMED_READ = 64 * 1024
RESERVED_CONTEXT_PREFIX = "aws-crypto-"
EXTRA = "files"

Progress = Callable[[int], None]
BinaryIn = IO[bytes]
BinaryOut = IO[bytes]


# -- errors -------------------------------------------------------------------

class EnvelopeError(Exception):
    """Envelope encryption failed for a reason other than the ledger refusing
    a data key (those raise the ledger's AWS-named error). `__cause__` is the
    ESDK's error where there is one. Messages never carry plaintext."""


class MissingDependencyError(EnvelopeError, ImportError):
    """The AWS Encryption SDK is not installed."""


class EncryptionContextMismatchError(EnvelopeError):
    """The message's encryption context lacks a pair the caller required.
    `keys` are the required keys that are missing or differ."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        super().__init__("the message's encryption context does not match: "
                         + ", ".join(f"{k!r} is missing or differs" for k in self.keys)
                         + " (nothing was decrypted)")


class InvalidMessageError(EnvelopeError):
    """Not a message the ESDK accepts: not the format, altered (a bad tag,
    key commitment or signature), cut short, too many data keys, or refused
    by the commitment policy. No plaintext was released."""


class NoDataKeyError(EnvelopeError):
    """None of the message's encrypted data keys is under a key of this
    ledger (or of the keys the caller allowed)."""


# -- what a message says about itself -----------------------------------------

@dataclass(frozen=True)
class EncryptedDataKeyInfo:
    """One encrypted data key of a message: its provider (`aws-kms` for KMS
    and keyledger keys), its key info (for `aws-kms`, the key ARN) and the
    wrapped key itself (for a keyledger key, a keyledger ciphertext)."""

    provider_id: str
    key_info: str
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True)
class MessageInfo:
    """An ESDK message's header as the ESDK parsed it, and the byte counts
    of one encryption or decryption (0 where not known)."""

    message_id: str  # hex
    algorithm: str
    encryption_context: dict[str, str]
    encrypted_data_keys: tuple[EncryptedDataKeyInfo, ...]
    frame_length: int
    plaintext_bytes: int = 0
    message_bytes: int = 0

    @property
    def key_arns(self) -> list[str]:
        """The keys (ARNs) the data key is wrapped under, `aws-kms` ones only."""
        return [e.key_info for e in self.encrypted_data_keys if e.provider_id == "aws-kms"]


def _info(header: Any, plaintext_bytes: int = 0, message_bytes: int = 0) -> MessageInfo:
    edks = sorted((EncryptedDataKeyInfo(str(e.key_provider.provider_id),
                                        e.key_provider.key_info.decode("utf-8", "replace"),
                                        bytes(e.encrypted_data_key))
                   for e in header.encrypted_data_keys), key=lambda e: (e.provider_id, e.key_info))
    return MessageInfo(message_id=bytes(header.message_id).hex(), algorithm=header.algorithm.name,
                       encryption_context=dict(header.encryption_context), encrypted_data_keys=tuple(edks),
                       frame_length=int(header.frame_length), plaintext_bytes=plaintext_bytes,
                       message_bytes=message_bytes)


# -- the ESDK, imported on first use -------------------------------------------

def _esdk() -> Any:
    """keyledger.esdk_provider, or a MissingDependencyError that says what to install."""
    try:
        esdk_provider = importlib.import_module("keyledger.esdk_provider")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in {"aws_encryption_sdk", "attr", "boto3", "botocore", "wrapt"}:
            raise MissingDependencyError(
                "envelope encryption needs the AWS Encryption SDK: pip install 'keyledger[files]' "
                f"(or pip install aws-encryption-sdk); {exc}") from exc
        raise
    return esdk_provider


def _client(commitment_policy: str, max_encrypted_data_keys: int | None) -> Any:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import CommitmentPolicy

    policy = getattr(CommitmentPolicy, commitment_policy, None)
    if not isinstance(policy, CommitmentPolicy):
        raise ValueError(f"unknown commitment policy {commitment_policy!r}; choose from "
                         + ", ".join(p.name for p in CommitmentPolicy))
    if max_encrypted_data_keys is not None and (not isinstance(max_encrypted_data_keys, int)
                                                or max_encrypted_data_keys < 1):
        raise ValueError("max_encrypted_data_keys must be a positive integer or None")
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy,
                                                  max_encrypted_data_keys=max_encrypted_data_keys)


def _algorithm(name: str) -> Any:
    from aws_encryption_sdk.identifiers import Algorithm

    suite = getattr(Algorithm, name, None) if isinstance(name, str) else None
    if not isinstance(suite, Algorithm):
        raise ValueError(f"unknown algorithm suite {name!r}; e.g. {DEFAULT_ALGORITHM} or "
                         "AES_256_GCM_HKDF_SHA512_COMMIT_KEY (no signature)")
    return suite


def _rejections() -> tuple[type[BaseException], ...]:
    """What the ESDK raises for a message it refuses: its own errors, and
    cryptography's InvalidTag / InvalidSignature, which it lets through."""
    from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError

    from keyledger import crypto  # the one importer of cryptography: its exception classes, from there
    return (AWSEncryptionSDKClientError, getattr(crypto, "InvalidTag"), getattr(crypto, "_InvalidSignature"))


def _discard(stream: Any) -> None:
    """Close an ESDK stream that failed without its own close(), which
    would raise (and log) 'Footer not read' on top of the real error."""
    with contextlib.suppress(Exception):
        io.IOBase.close(stream)


def _context(encryption_context: Mapping[str, str] | None, *, encrypting: bool = False) -> dict[str, str]:
    context = dict(encryption_context or {})
    for k, v in context.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("encryption context keys and values must be strings")
        if encrypting and k.startswith(RESERVED_CONTEXT_PREFIX):
            # the ESDK would silently replace aws-crypto-public-key with the signing key
            raise ValueError(f"encryption context keys starting {RESERVED_CONTEXT_PREFIX!r} are the "
                             f"AWS Encryption SDK's own: {k!r}")
    return context


def _key_ids(key_id: str | Sequence[str]) -> list[str]:
    ids = [key_id] if isinstance(key_id, str) else list(key_id)
    if not ids or not all(isinstance(k, str) and k for k in ids):
        raise ValueError("give at least one key id (a key ID, key ARN, alias name or alias ARN)")
    return ids


def _decrypt_arns(kms: KeyLedger, key_ids: Sequence[str] | None) -> tuple[str, ...]:
    """The key ARNs a caller allows to decrypt: ARNs as given, key ids made
    ARNs, aliases resolved by DescribeKey (a record)."""
    if not key_ids:
        return ()
    out = []
    for k in _key_ids(key_ids):
        if k.startswith("arn:") and ":key/" in k:
            out.append(k)
        elif is_key_uuid(k):
            out.append(key_arn(kms.region, kms.account, k))
        else:
            out.append(kms.describe_key(k).key_metadata.arn)
    return tuple(out)


class _Counting:
    """A source whose reads report the bytes read so far."""

    def __init__(self, src: BinaryIn, progress: Progress) -> None:
        self._src, self._progress, self.count = src, progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self.count += len(data)
            self._progress(self.count)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)


def _refusal(failures: Any, cause: BaseException) -> KMSError | None:
    """The ledger's refusal behind an ESDK key error, raised as itself (the
    others, if several keys were refused, noted on it)."""
    if not failures.errors:
        return None
    first: KMSError = failures.errors[0][2]
    for op, key, error in failures.errors[1:]:
        first.add_note(f"also refused: {op} with {key}: {error}")
    first.__cause__ = cause
    return first


# -- streams --------------------------------------------------------------------

def encrypt_stream(kms: KeyLedger, key_id: str | Sequence[str], src: BinaryIn, dst: BinaryOut, *,
                   encryption_context: Mapping[str, str] | None = None,
                   frame_length: int = DEFAULT_FRAME_LENGTH, algorithm: str = DEFAULT_ALGORITHM,
                   commitment_policy: str = DEFAULT_COMMITMENT_POLICY,
                   max_encrypted_data_keys: int | None = DEFAULT_MAX_ENCRYPTED_DATA_KEYS,
                   progress: Progress | None = None) -> MessageInfo:
    """Encrypt `src` into `dst` as one ESDK message (see KeyLedger.encrypt_stream)."""
    mod = _esdk()
    ids = _key_ids(key_id)
    context = _context(encryption_context, encrypting=True)
    if not isinstance(frame_length, int) or isinstance(frame_length, bool) or \
            not 1 <= frame_length <= MAX_FRAME_LENGTH or frame_length % FRAME_MULTIPLE:
        raise ValueError(f"frame_length must be a multiple of {FRAME_MULTIPLE} from {FRAME_MULTIPLE} "
                         f"to {MAX_FRAME_LENGTH}")
    suite = _algorithm(algorithm)
    client = _client(commitment_policy, max_encrypted_data_keys)
    failures = mod.Failures()
    provider = mod.provider(kms, ids, failures=failures)
    source = _Counting(src, progress or (lambda _n: None))
    written = 0
    stream = None
    try:
        stream = client.stream(mode="e", source=source, key_provider=provider, encryption_context=context,
                               frame_length=frame_length, algorithm=suite)
        while True:
            chunk = stream.read(frame_length)
            if not chunk:
                break
            dst.write(chunk)
            written += len(chunk)
        header = stream.header
        stream.close()
    except _rejections() as exc:
        if stream is not None:
            _discard(stream)
        refused = _refusal(failures, exc)
        if refused is not None:
            raise refused from exc
        raise EnvelopeError(f"the AWS Encryption SDK refused to encrypt: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        if stream is not None:
            _discard(stream)
        raise
    return _info(header, source.count, written)


def decrypt_stream(kms: KeyLedger, src: BinaryIn, dst: BinaryOut, *,
                   encryption_context: Mapping[str, str] | None = None,
                   key_ids: Sequence[str] | None = None,
                   commitment_policy: str = DEFAULT_COMMITMENT_POLICY,
                   max_encrypted_data_keys: int | None = DEFAULT_MAX_ENCRYPTED_DATA_KEYS,
                   spool_dir: str | os.PathLike[str] | None = None,
                   progress: Progress | None = None) -> MessageInfo:
    """Decrypt an ESDK message from `src` into `dst`, through an unnamed
    temporary file so that `dst` gets nothing unless the whole message
    verified (see KeyLedger.decrypt_stream)."""
    with tempfile.TemporaryFile(dir=spool_dir) as spool:  # 0600, unlinked at once where the OS allows
        info = _decrypt_into(kms, src, spool, encryption_context=encryption_context, key_ids=key_ids,
                             commitment_policy=commitment_policy,
                             max_encrypted_data_keys=max_encrypted_data_keys, progress=progress)
        spool.seek(0)
        shutil.copyfileobj(spool, dst, 1 << 20)
    return info


def _decrypt_into(kms: KeyLedger, src: BinaryIn, out: BinaryOut, *,
                  encryption_context: Mapping[str, str] | None, key_ids: Sequence[str] | None,
                  commitment_policy: str, max_encrypted_data_keys: int | None,
                  progress: Progress | None) -> MessageInfo:
    """The ESDK's decryption of `src` into `out`: `out` receives plaintext
    before the signature is checked, so it must be a private spool that the
    caller discards on any error."""
    mod = _esdk()
    expected = _context(encryption_context)
    client = _client(commitment_policy, max_encrypted_data_keys)
    failures = mod.Failures()
    provider = mod.provider(kms, decrypt_key_arns=_decrypt_arns(kms, key_ids), failures=failures)
    cmm = mod.ContextCheck(provider, expected, lambda keys, _found: EncryptionContextMismatchError(keys))
    counting = _Counting(src, progress or (lambda _n: None))
    written = 0
    stream = None
    try:
        stream = client.stream(mode="d", source=counting, materials_manager=cmm)
        header = stream.header  # reads the header and opens the data key
        chunk_size = header.frame_length or _UNFRAMED_READ
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
        stream.close()  # raises if the footer (the signature) was not read
    except EnvelopeError:
        if stream is not None:
            _discard(stream)
        raise
    except _rejections() as exc:
        if stream is not None:
            _discard(stream)
        from aws_encryption_sdk.exceptions import DecryptKeyError
        if isinstance(exc, DecryptKeyError):
            refused = _refusal(failures, exc)
            if refused is not None:
                raise refused from exc
            raise NoDataKeyError("none of the message's encrypted data keys is under a key of this ledger"
                                 + (" that the caller allowed" if key_ids else "")) from exc
        raise InvalidMessageError("not a valid AWS Encryption SDK message, or it was altered or cut short: "
                                  f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}") from exc
    except BaseException:
        if stream is not None:
            _discard(stream)
        raise
    return _info(header, written, counting.count)


# -- bytes and files ---------------------------------------------------------------

def encrypt_bytes(kms: KeyLedger, key_id: str | Sequence[str], plaintext: bytes, **options: Any) -> bytes:
    """One ESDK message holding `plaintext` (options as encrypt_stream)."""
    if not isinstance(plaintext, (bytes, bytearray, memoryview)):
        raise TypeError("plaintext must be bytes")
    out = io.BytesIO()
    encrypt_stream(kms, key_id, io.BytesIO(bytes(plaintext)), out, **options)
    return out.getvalue()


def decrypt_bytes(kms: KeyLedger, message: bytes, **options: Any) -> bytes:
    """The plaintext of one ESDK message, returned only once it verified."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError("message must be bytes")
    options.pop("spool_dir", None)
    out = io.BytesIO()
    _decrypt_into(kms, io.BytesIO(bytes(message)), out, **{
        "encryption_context": None, "key_ids": None, "commitment_policy": DEFAULT_COMMITMENT_POLICY,
        "max_encrypted_data_keys": DEFAULT_MAX_ENCRYPTED_DATA_KEYS, "progress": None, **options})
    return out.getvalue()


@contextlib.contextmanager
def _replacing(path: str | os.PathLike[str]) -> Iterator[BinaryOut]:
    """A 0600 temporary file beside `path`, moved over it on success and
    deleted on any failure: never a partial output."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


Source = str | os.PathLike[str] | BinaryIn


@contextlib.contextmanager
def _reading(src: Source) -> Iterator[BinaryIn]:
    """A path opened for reading, or a binary stream as it is (left open)."""
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            yield f
    else:
        yield src


def encrypt_file(kms: KeyLedger, key_id: str | Sequence[str], src: Source,
                 dst: str | os.PathLike[str], **options: Any) -> MessageInfo:
    """Encrypt the file (or binary stream) `src` to the file `dst`, written
    whole or not at all."""
    with _reading(src) as source, _replacing(dst) as out:
        return encrypt_stream(kms, key_id, source, out, **options)


def decrypt_file(kms: KeyLedger, src: Source, dst: str | os.PathLike[str],
                 **options: Any) -> MessageInfo:
    """Decrypt the file (or binary stream) `src` to the file `dst`: the
    plaintext goes to a 0600 temporary file beside `dst`, moved into place
    only once the message verified, deleted otherwise."""
    options.pop("spool_dir", None)
    with _reading(src) as source, _replacing(dst) as out:
        return _decrypt_into(kms, source, out, **{
            "encryption_context": None, "key_ids": None, "commitment_policy": DEFAULT_COMMITMENT_POLICY,
            "max_encrypted_data_keys": DEFAULT_MAX_ENCRYPTED_DATA_KEYS, "progress": None, **options})


# -- headers, for forensics -------------------------------------------------------------

def looks_like_message(prefix: bytes) -> bool:
    """Whether bytes start like an ESDK message (version 1 or 2; a keyledger
    ciphertext starts with b"KL")."""
    return len(prefix) >= 1 and prefix[0] in (1, 2)


def read_message_header(src: BinaryIn, *, max_encrypted_data_keys: int | None = None) -> MessageInfo:
    """An ESDK message's header, parsed by the ESDK's own deserializer (no
    key needed, nothing decrypted, no record written); InvalidMessageError
    if it is not one."""
    _esdk()
    from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

    try:
        header, _raw = deserialize_header(src, max_encrypted_data_keys)
    except _rejections() as exc:
        raise InvalidMessageError(f"not an AWS Encryption SDK message: {type(exc).__name__}: {exc}") from exc
    return _info(header)


def master_key_provider(kms: KeyLedger, key_ids: Sequence[str] = (), *,
                        decrypt_key_ids: Sequence[str] | None = None) -> Any:
    """The ESDK master key provider over `kms` (provider id `aws-kms`), for
    using the ESDK directly or combining it with other providers."""
    return _esdk().provider(kms, list(key_ids), decrypt_key_arns=_decrypt_arns(kms, decrypt_key_ids))


# -- the KeyLedger methods ------------------------------------------------------------

class EnvelopeOps:
    """Envelope encryption methods of KeyLedger (keyledger's own, not AWS
    KMS operations: the ESDK calls GenerateDataKey, Encrypt and Decrypt)."""

    def encrypt_stream(self, key_id: str | Sequence[str], src: BinaryIn, dst: BinaryOut, *,
                       encryption_context: Mapping[str, str] | None = None,
                       frame_length: int = DEFAULT_FRAME_LENGTH, algorithm: str = DEFAULT_ALGORITHM,
                       commitment_policy: str = DEFAULT_COMMITMENT_POLICY,
                       max_encrypted_data_keys: int | None = DEFAULT_MAX_ENCRYPTED_DATA_KEYS,
                       progress: Progress | None = None) -> MessageInfo:
        """Envelope-encrypt the binary stream `src` into `dst` as one AWS
        Encryption SDK message, a frame (`frame_length` bytes) at a time.

        `key_id` is one key (key ID, ARN, alias) or several: the first
        generates the data key (GenerateDataKey), each other one wraps it
        (Encrypt), and any one of them can decrypt the message. The
        `encryption_context` is bound to the message and passed to each call
        (with the suite's `aws-crypto-public-key`). `progress(n)` is called
        with the bytes read so far. Returns the header (message id, keys)
        and byte counts.

        Raises the ledger's refusal (NotFoundException, DisabledException,
        AccessDeniedException, ...) or EnvelopeError; MissingDependencyError
        without the `files` extra."""
        return encrypt_stream(self, key_id, src, dst, encryption_context=encryption_context,  # type: ignore[arg-type]
                              frame_length=frame_length, algorithm=algorithm,
                              commitment_policy=commitment_policy,
                              max_encrypted_data_keys=max_encrypted_data_keys, progress=progress)

    def decrypt_stream(self, src: BinaryIn, dst: BinaryOut, *,
                       encryption_context: Mapping[str, str] | None = None,
                       key_ids: Sequence[str] | None = None,
                       commitment_policy: str = DEFAULT_COMMITMENT_POLICY,
                       max_encrypted_data_keys: int | None = DEFAULT_MAX_ENCRYPTED_DATA_KEYS,
                       spool_dir: str | os.PathLike[str] | None = None,
                       progress: Progress | None = None) -> MessageInfo:
        """Decrypt one AWS Encryption SDK message from `src` into `dst`.

        Each of the message's `aws-kms` data keys under a key of this ledger
        (or of `key_ids`, if given) is tried with Decrypt until one opens.
        Every pair of `encryption_context` must be in the message's context,
        checked before any data key is asked for. The plaintext is spooled
        to an unnamed temporary file (in `spool_dir`) and copied to `dst`
        only after the signature at the end verified: `dst` never sees
        unverified bytes.

        Raises EncryptionContextMismatchError, InvalidMessageError (altered,
        cut short, not a message), NoDataKeyError, or the ledger's refusal
        (AccessDeniedException, DisabledException, InvalidCiphertextException, ...)."""
        return decrypt_stream(self, src, dst, encryption_context=encryption_context,  # type: ignore[arg-type]
                              key_ids=key_ids, commitment_policy=commitment_policy,
                              max_encrypted_data_keys=max_encrypted_data_keys, spool_dir=spool_dir,
                              progress=progress)

    def encrypt_bytes(self, key_id: str | Sequence[str], plaintext: bytes, *,
                      encryption_context: Mapping[str, str] | None = None,
                      frame_length: int = DEFAULT_FRAME_LENGTH, algorithm: str = DEFAULT_ALGORITHM) -> bytes:
        """`encrypt_stream` for bytes in memory: one AWS Encryption SDK message.

        Raises the ledger's refusal (NotFoundException, DisabledException, ...) or EnvelopeError."""
        return encrypt_bytes(self, key_id, plaintext, encryption_context=encryption_context,  # type: ignore[arg-type]
                             frame_length=frame_length, algorithm=algorithm)

    def decrypt_bytes(self, message: bytes, *, encryption_context: Mapping[str, str] | None = None,
                      key_ids: Sequence[str] | None = None) -> bytes:
        """`decrypt_stream` for a message in memory: its plaintext, returned
        only once the whole message verified.

        Raises EncryptionContextMismatchError, InvalidMessageError, NoDataKeyError
        or the ledger's refusal (AccessDeniedException, ...)."""
        return decrypt_bytes(self, message, encryption_context=encryption_context,  # type: ignore[arg-type]
                             key_ids=key_ids)

    def encrypt_file(self, key_id: str | Sequence[str], src: str | os.PathLike[str] | BinaryIn,
                     dst: str | os.PathLike[str], *, encryption_context: Mapping[str, str] | None = None,
                     frame_length: int = DEFAULT_FRAME_LENGTH, algorithm: str = DEFAULT_ALGORITHM,
                     progress: Progress | None = None) -> MessageInfo:
        """`encrypt_stream` from the file `src` (a path or a binary stream) to
        the file `dst`, which is
        written to a temporary file beside it and moved into place: whole or
        not at all (mode 0600).

        Raises the ledger's refusal (NotFoundException, DisabledException, ...),
        EnvelopeError or OSError."""
        return encrypt_file(self, key_id, src, dst, encryption_context=encryption_context,  # type: ignore[arg-type]
                            frame_length=frame_length, algorithm=algorithm, progress=progress)

    def decrypt_file(self, src: str | os.PathLike[str] | BinaryIn, dst: str | os.PathLike[str], *,
                     encryption_context: Mapping[str, str] | None = None,
                     key_ids: Sequence[str] | None = None, progress: Progress | None = None) -> MessageInfo:
        """`decrypt_stream` from the file `src` (a path or a binary stream) to
        the file `dst`: the
        plaintext goes to a 0600 temporary file beside `dst`, moved into place
        once the whole message verified and deleted on any failure, so no
        partial plaintext is ever left behind.

        Raises EncryptionContextMismatchError, InvalidMessageError, NoDataKeyError,
        the ledger's refusal (AccessDeniedException, ...) or OSError."""
        return decrypt_file(self, src, dst, encryption_context=encryption_context,  # type: ignore[arg-type]
                            key_ids=key_ids, progress=progress)

    def master_key_provider(self, key_ids: Sequence[str] = (), *,
                            decrypt_key_ids: Sequence[str] | None = None) -> Any:
        """This ledger as an AWS Encryption SDK master key provider (provider
        id `aws-kms`, key info the key ARN, as the ESDK's KMS provider), with
        `key_ids` added for encryption, for calling the ESDK directly or
        combining with other providers (another ledger, a raw key).

        Raises MissingDependencyError without the `files` extra."""
        return master_key_provider(self, key_ids, decrypt_key_ids=decrypt_key_ids)  # type: ignore[arg-type]
