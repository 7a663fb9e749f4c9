"""The data plane: Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateRandom."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import keyspecs
from keyledger import responses as r
from keyledger.errors import InvalidCiphertextException
from keyledger.projections.state import KeyState
from keyledger.service.base import ServiceBase
from keyledger.service.custom_key_stores import no_such_store
from keyledger.service.request import (
    _check_grant_tokens,
    _digest,
    _dry_run,
    _ignores_ciphertext,
    _missing,
    _Request,
)


def _algorithm(req: _Request, state: KeyState, operation: str, name: str) -> keyspecs.EncryptionAlgorithm:
    """The encryption algorithm a key allows for `operation` (its key-spec
    entry decides), or AWS's refusal."""
    usage = keyspecs.require_operation(state.key_spec, state.key_usage, operation, req.arn(state.key_id))
    return keyspecs.check_encryption(state.key_spec, usage, name)


def _private_open(req: _Request, blob: bytes, context: dict[str, str], key_id: str | None,
                  algorithm_name: str, operation: str, action: str,
                  extra: Callable[[str], Mapping[str, Any]] | None = None) -> tuple[KeyState, int, bytes]:
    """Open a ciphertext with an RSA key's private key (Decrypt, ReEncrypt's
    source): the KeyId is required (an RSA ciphertext names no key), no
    encryption context, and every failure to open is the same
    InvalidCiphertextException."""
    if key_id is None:
        raise InvalidCiphertextException("")
    state = req.key(key_id)
    req.authorize(action, state, encryption_context=context,
                  extra={"kms:encryptionalgorithm": algorithm_name, **(extra(state.key_id) if extra else {})})
    cmd.require_enabled(state, req.arn(state.key_id))
    algorithm = _algorithm(req, state, operation, algorithm_name)
    keyspecs.check_asymmetric_encryption(state.key_spec, algorithm, None, context)
    version = state.current.version
    return state, version, crypto.private_decrypt(req.private_key(state, version), algorithm, blob)


def _authorize_unread(req: _Request, key_id: str | None, member: str, context: dict[str, str],
                      algorithm_name: str, operation: str, action: str,
                      extra: Callable[[str], Mapping[str, Any]] | None = None) -> KeyState:
    """An IGNORE_CIPHERTEXT dry run's checks of the key that would open the
    ciphertext, without reading one: the key the request names (`member`,
    required here) exists, the caller may do `action` on it with the given
    encryption context (as a real call would ask), and it is enabled and able
    to decrypt with `algorithm_name`."""
    if key_id is None:
        raise _missing(member)
    state = req.key(key_id)
    more = {} if algorithm_name == cmd.SYMMETRIC_DEFAULT else {"kms:encryptionalgorithm": algorithm_name}
    req.authorize(action, state, encryption_context=context,  # the condition keys a real call gives
                  extra={**more, **(extra(state.key_id) if extra else {})} or None)
    cmd.require_enabled(state, req.arn(state.key_id))
    algorithm = _algorithm(req, state, operation, algorithm_name)
    if algorithm.hash is not None:
        keyspecs.check_asymmetric_encryption(state.key_spec, algorithm, None, context)
    return state


def _ciphertext(blob_in: bytes | None) -> bytes:
    if blob_in is None:  # required unless an IGNORE_CIPHERTEXT dry run (the model no longer says so)
        raise _missing("ciphertextBlob")
    blob = cmd.check_bytes("ciphertextBlob", blob_in)
    cmd.check_length("ciphertextBlob", blob, 1, cmd.MAX_CIPHERTEXT)
    return blob


def _decrypt_unread(req: _Request, key_id: str | None, context_in: Mapping[str, str] | None,
                    algorithm_name: str, grant_tokens: list[str] | None) -> NoReturn:
    """Decrypt as an IGNORE_CIPHERTEXT dry run: the checks, then DryRunOperationException."""
    context = cmd.check_context("encryptionContext", context_in)
    keyspecs.check_enum("encryptionAlgorithm", algorithm_name, keyspecs.ENCRYPTION_ALGORITHM_NAMES)
    _check_grant_tokens(grant_tokens)
    _authorize_unread(req, key_id, "keyId", context, algorithm_name, "Decrypt", "kms:Decrypt")
    _dry_run(True)
    raise AssertionError("unreachable")


def _private_decrypt(req: _Request, blob: bytes, context: dict[str, str], key_id: str | None,
                     algorithm_name: str, dry_run: bool | None) -> r.DecryptResponse:
    """Decrypt with an RSA key's private key."""
    state, version, plaintext = _private_open(req, blob, context, key_id, algorithm_name, "Decrypt", "kms:Decrypt")
    _dry_run(dry_run)
    req.emit([ev.Decrypted(state.key_id, version, context, _digest(blob), algorithm_name,
                          via_service=req.svc.via)])
    return r.DecryptResponse(req.arn(state.key_id), plaintext, algorithm_name)


class DataOps(ServiceBase):
    """Cryptographic operations."""

    def encrypt(self, key_id: str, plaintext: bytes, *, encryption_context: Mapping[str, str] | None = None,
                grant_tokens: list[str] | None = None, encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                dry_run: bool | None = None) -> r.EncryptResponse:
        """Encrypt: seal `plaintext` (1-4,096 bytes) under the key's current version,
        bound to `encryption_context`, which Decrypt must repeat exactly (RSA keys:
        RSAES_OAEP_* under the public key, no context). The record carries a digest
        of the ciphertext, never the plaintext.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException, InvalidGrantTokenException, DryRunOperationException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.EncryptResponse:
            data = cmd.check_bytes("plaintext", plaintext)
            cmd.check_length("plaintext", data, 1, cmd.MAX_PLAINTEXT)
            context = cmd.check_context("encryptionContext", encryption_context)
            keyspecs.check_enum("encryptionAlgorithm", encryption_algorithm, keyspecs.ENCRYPTION_ALGORITHM_NAMES)
            _check_grant_tokens(grant_tokens)
            state = req.key(key_id)
            req.authorize("kms:Encrypt", state, encryption_context=context,
                          extra={"kms:encryptionalgorithm": encryption_algorithm})
            cmd.require_enabled(state, req.arn(state.key_id))
            algorithm = _algorithm(req, state, "Encrypt", encryption_algorithm)
            if algorithm.hash is None:  # SYMMETRIC_DEFAULT
                _dry_run(dry_run)
                blob, version = req.seal(state, data, context)
            else:  # RSAES-OAEP under the public key: what anyone holding it could produce
                keyspecs.check_asymmetric_encryption(state.key_spec, algorithm, data, context)
                _dry_run(dry_run)
                version = state.current.version
                blob = crypto.public_encrypt(state.current.public_key, algorithm, data)
            req.emit([ev.Encrypted(state.key_id, version, context, _digest(blob), algorithm.name,
                                      via_service=req.svc.via)])
            return r.EncryptResponse(blob, req.arn(state.key_id), algorithm.name)
        return self._run("Encrypt", body, key_hint=key_id)

    def decrypt(self, ciphertext_blob: bytes | None = None, *,
                encryption_context: Mapping[str, str] | None = None,
                key_id: str | None = None, grant_tokens: list[str] | None = None,
                encryption_algorithm: str = "SYMMETRIC_DEFAULT", dry_run: bool | None = None,
                dry_run_modifiers: Sequence[str] | None = None) -> r.DecryptResponse:
        """Decrypt: the plaintext of a ciphertext from Encrypt, GenerateDataKey or
        ReEncrypt. The ciphertext names its key and version, so `key_id` is only a
        check (required for RSA keys). Every way it can fail to open is the same
        InvalidCiphertextException with no reason: an error that explains is an oracle.

        `dry_run`: every check, then DryRunOperationException instead of the
        plaintext. With `dry_run_modifiers=["IGNORE_CIPHERTEXT"]` too, only the
        authorization is tested: `key_id` is required, the ciphertext (which may
        be absent) is not read, and kms:Decrypt is decided with the given
        encryption context. `ciphertext_blob` is required otherwise.

        Raises InvalidCiphertextException, IncorrectKeyException, NotFoundException,
        DisabledException, KMSInvalidStateException, InvalidKeyUsageException,
        InvalidGrantTokenException, DryRunOperationException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.DecryptResponse:
            if dry_run and _ignores_ciphertext(dry_run, dry_run_modifiers):
                _decrypt_unread(req, key_id, encryption_context, encryption_algorithm, grant_tokens)
            blob = _ciphertext(ciphertext_blob)
            context = cmd.check_context("encryptionContext", encryption_context)
            keyspecs.check_enum("encryptionAlgorithm", encryption_algorithm, keyspecs.ENCRYPTION_ALGORITHM_NAMES)
            _check_grant_tokens(grant_tokens)
            if encryption_algorithm != cmd.SYMMETRIC_DEFAULT:
                return _private_decrypt(req, blob, context, key_id, encryption_algorithm, dry_run)
            state, version, plaintext = req.open(blob, context, key_id)
            _dry_run(dry_run)
            req.emit([ev.Decrypted(state.key_id, version, context, _digest(blob), via_service=req.svc.via)])
            return r.DecryptResponse(req.arn(state.key_id), plaintext,
                                     key_material_id=cmd.key_material_id(state.key_id, version))
        return self._run("Decrypt", body, key_hint=key_id)

    def re_encrypt(self, ciphertext_blob: bytes | None = None, destination_key_id: str | None = None, *,
                   source_encryption_context: Mapping[str, str] | None = None,
                   source_key_id: str | None = None,
                   destination_encryption_context: Mapping[str, str] | None = None,
                   source_encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                   destination_encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                   grant_tokens: list[str] | None = None, dry_run: bool | None = None,
                   dry_run_modifiers: Sequence[str] | None = None) -> r.ReEncryptResponse:
        """ReEncrypt: open a ciphertext and seal its plaintext under
        `destination_key_id` (or a new context) inside the ledger, so the
        plaintext never reaches the caller. Needs kms:ReEncryptFrom on the source
        key and kms:ReEncryptTo on the destination.

        Either side may be an RSA ENCRYPT_DECRYPT key, as in AWS: from one
        (`source_encryption_algorithm` RSAES_OAEP_SHA_1/256, `source_key_id`
        required: an RSA ciphertext names no key, e.g. one made offline with
        the public key) and to one (`destination_encryption_algorithm`; the
        plaintext must fit the destination's OAEP limit). An RSA side takes no
        encryption context.

        `dry_run`: every check (the source ciphertext is opened, in memory,
        which proves the caller could), then DryRunOperationException before
        anything is sealed. With `dry_run_modifiers=["IGNORE_CIPHERTEXT"]` too,
        only the authorization is tested: `source_key_id` is required, the
        ciphertext (which may be absent) is not read, and kms:ReEncryptFrom and
        kms:ReEncryptTo are decided. `ciphertext_blob` is required otherwise.

        Raises InvalidCiphertextException, IncorrectKeyException, NotFoundException,
        DisabledException, KMSInvalidStateException, InvalidKeyUsageException,
        InvalidGrantTokenException, DryRunOperationException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.ReEncryptResponse:
            unread = _ignores_ciphertext(dry_run, dry_run_modifiers)
            blob = b"" if unread else _ciphertext(ciphertext_blob)
            src_ctx = cmd.check_context("sourceEncryptionContext", source_encryption_context)
            dst_ctx = cmd.check_context("destinationEncryptionContext", destination_encryption_context)
            keyspecs.check_enum("sourceEncryptionAlgorithm", source_encryption_algorithm,
                                keyspecs.ENCRYPTION_ALGORITHM_NAMES)
            keyspecs.check_enum("destinationEncryptionAlgorithm", destination_encryption_algorithm,
                                keyspecs.ENCRYPTION_ALGORITHM_NAMES)
            _check_grant_tokens(grant_tokens)
            plaintext: bytes | None = None
            def same_key(source: str) -> dict[str, Any]:  # kms:ReEncryptOnSameKey, for ReEncryptFrom
                return {"kms:reencryptonsamekey": source == req.key_id_of(destination_key_id)}
            req.key_hint = source_key_id  # a refusal names the key it is about: the source's, until
            if unread:                    # the source is open (None: the ciphertext's key, once read)
                src = _authorize_unread(req, source_key_id, "sourceKeyId", src_ctx, source_encryption_algorithm,
                                        "ReEncrypt", "kms:ReEncryptFrom", same_key)
            elif source_encryption_algorithm == cmd.SYMMETRIC_DEFAULT:
                src, src_version, plaintext = req.open(blob, src_ctx, source_key_id, "kms:ReEncryptFrom", same_key)
            else:
                src, src_version, plaintext = _private_open(req, blob, src_ctx, source_key_id,
                                                            source_encryption_algorithm, "ReEncrypt",
                                                            "kms:ReEncryptFrom", same_key)
            req.request_alias = None
            req.key_hint = destination_key_id
            if destination_key_id is None:  # the model's check refuses it first; this is for the type
                raise _missing("destinationKeyId")
            dst = req.key(destination_key_id)
            req.authorize("kms:ReEncryptTo", dst, encryption_context=dst_ctx,
                          extra={"kms:encryptionalgorithm": destination_encryption_algorithm,
                                 "kms:reencryptonsamekey": src.key_id == dst.key_id})
            cmd.require_enabled(dst, req.arn(dst.key_id))
            algorithm = _algorithm(req, dst, "ReEncrypt", destination_encryption_algorithm)
            if algorithm.hash is not None:
                keyspecs.check_asymmetric_encryption(dst.key_spec, algorithm, plaintext, dst_ctx)
            _dry_run(dry_run)
            assert plaintext is not None  # not an IGNORE_CIPHERTEXT dry run, which raised just above
            if algorithm.hash is None:  # SYMMETRIC_DEFAULT
                new_blob, dst_version = req.seal(dst, plaintext, dst_ctx)
            else:  # RSAES-OAEP under the destination's public key
                dst_version = dst.current.version
                new_blob = crypto.public_encrypt(dst.current.public_key, algorithm, plaintext)
            req.emit([ev.ReEncrypted(src.key_id, src_version, src_ctx, _digest(blob),
                                     dst.key_id, dst_version, dst_ctx, _digest(new_blob),
                                     source_encryption_algorithm, algorithm.name)])
            return r.ReEncryptResponse(new_blob, req.arn(src.key_id), req.arn(dst.key_id),
                                       source_encryption_algorithm, algorithm.name,
                                       source_key_material_id=cmd.key_material_id(src.key_id, src_version),
                                       destination_key_material_id=cmd.key_material_id(dst.key_id, dst_version))
        return self._run("ReEncrypt", body, key_hint=destination_key_id)

    def _data_key(self, req: _Request, key_id: str, context_in: Mapping[str, str] | None,
                  number_of_bytes: int | None, key_spec: str | None, with_plaintext: bool,
                  grant_tokens: list[str] | None, dry_run: bool | None) -> tuple[bytes, bytes, str, str]:
        size = cmd.check_key_spec_params(key_spec, number_of_bytes)
        context = cmd.check_context("encryptionContext", context_in)
        _check_grant_tokens(grant_tokens)
        state = req.key(key_id)
        req.authorize("kms:GenerateDataKey" if with_plaintext else "kms:GenerateDataKeyWithoutPlaintext",
                      state, encryption_context=context)
        cmd.require_enabled(state, req.arn(state.key_id))
        keyspecs.require_operation(state.key_spec, state.key_usage,
                                   "GenerateDataKey" if with_plaintext else "GenerateDataKeyWithoutPlaintext",
                                   req.arn(state.key_id))
        _dry_run(dry_run)
        data_key = self._rng(size)
        blob, version = req.seal(state, data_key, context)
        req.emit([ev.DataKeyGenerated(state.key_id, version, context, _digest(blob), size, with_plaintext)])
        return blob, data_key, req.arn(state.key_id), cmd.key_material_id(state.key_id, version)

    def generate_data_key(self, key_id: str, *, encryption_context: Mapping[str, str] | None = None,
                          number_of_bytes: int | None = None, key_spec: str | None = None,
                          grant_tokens: list[str] | None = None,
                          dry_run: bool | None = None) -> r.GenerateDataKeyResponse:
        """GenerateDataKey: a fresh data key (`key_spec` AES_256 / AES_128, or
        `number_of_bytes`), in clear and sealed under the key, for envelope
        encryption: use the plaintext, keep only the ciphertext, Decrypt it later.
        `dry_run`: every check, then DryRunOperationException; no data key is made.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException, InvalidGrantTokenException, DryRunOperationException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.GenerateDataKeyResponse:
            blob, data_key, arn, material = self._data_key(req, key_id, encryption_context, number_of_bytes,
                                                           key_spec, True, grant_tokens, dry_run)
            return r.GenerateDataKeyResponse(blob, data_key, arn, material)
        return self._run("GenerateDataKey", body, key_hint=key_id)

    def generate_data_key_without_plaintext(
            self, key_id: str, *, encryption_context: Mapping[str, str] | None = None,
            number_of_bytes: int | None = None, key_spec: str | None = None,
            grant_tokens: list[str] | None = None,
            dry_run: bool | None = None) -> r.GenerateDataKeyWithoutPlaintextResponse:
        """GenerateDataKeyWithoutPlaintext: GenerateDataKey's sealed data key only,
        for a component that stores keys but must not see them. `dry_run` as
        GenerateDataKey's.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException, InvalidGrantTokenException, DryRunOperationException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.GenerateDataKeyWithoutPlaintextResponse:
            blob, _, arn, material = self._data_key(req, key_id, encryption_context, number_of_bytes,
                                                    key_spec, False, grant_tokens, dry_run)
            return r.GenerateDataKeyWithoutPlaintextResponse(blob, arn, material)
        return self._run("GenerateDataKeyWithoutPlaintext", body, key_hint=key_id)

    def generate_random(self, *, number_of_bytes: int | None = None,
                        custom_key_store_id: str | None = None) -> r.GenerateRandomResponse:
        """GenerateRandom: `number_of_bytes` (1-1,024) random bytes from the ledger's
        random source (the injected `rng` in tests). The record keeps the count only.
        A ledger has no custom key stores (CloudHSM clusters), so a
        `custom_key_store_id` names none.

        Raises AccessDeniedException, ValidationException, CustomKeyStoreNotFoundException."""
        def body(req: _Request) -> r.GenerateRandomResponse:
            n = cmd.check_range("numberOfBytes", number_of_bytes, 1, 1024)
            req.authorize("kms:GenerateRandom", None)
            if custom_key_store_id is not None:
                raise no_such_store(custom_key_store_id)
            req.emit([ev.RandomGenerated(n)])
            return r.GenerateRandomResponse(self._rng(n))
        return self._run("GenerateRandom", body)

