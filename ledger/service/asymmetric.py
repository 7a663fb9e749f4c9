"""Asymmetric and HMAC keys: Sign, Verify, GetPublicKey, GenerateMac,
VerifyMac, DeriveSharedSecret, Encapsulate, Decapsulate (ML-KEM),
GenerateDataKeyPair(WithoutPlaintext).

Each operation resolves the key, authorizes it (with the condition keys AWS
sets for it: kms:SigningAlgorithm, kms:MessageType, kms:MacAlgorithm,
kms:KeyAgreementAlgorithm, kms:DataKeyPairSpec; kms:KeySpec and kms:KeyUsage
come with every key; AWS documents no condition key for the
EncapsulationAlgorithm), checks the key's state, then asks the key-spec table
(`keyledger.keyspecs`) whether the key's spec and usage allow the operation
and algorithm; the work itself is `keyledger.crypto`'s. Records carry digests
only: never a message, a private key or a shared secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyledger import commands as cmd
from keyledger import crypto, keyspecs
from keyledger import events as ev
from keyledger import responses as r
from keyledger.errors import (
    KMSInvalidMacException,
    KMSInvalidSignatureException,
    UnsupportedOperationException,
)
from keyledger.projections.state import KeyState
from keyledger.service.base import ServiceBase
from keyledger.service.request import _check_grant_tokens, _digest, _dry_run, _Request


def _message(message: object) -> bytes:
    data = cmd.check_bytes("message", message)
    cmd.check_length("message", data, 1, keyspecs.MAX_MESSAGE)
    return data


def _no_recipient(recipient: object, operation: str) -> None:
    if recipient is not None:
        raise UnsupportedOperationException(
            f"Recipient (a Nitro Enclave attestation document) is not supported by keyledger for {operation}.")


class AsymmetricOps(ServiceBase):
    """Signing, MACs, key agreement and data key pairs."""

    def _usable(self, req: _Request, key_id: str, operation: str,
                extra: Mapping[str, Any] | None = None) -> tuple[KeyState, keyspecs.Usage]:
        """The key, once the caller may use it for `operation`, it is enabled,
        and its spec and usage allow the operation."""
        state = req.key(key_id)
        req.authorize(f"kms:{operation}", state, extra=extra)
        arn = req.arn(state.key_id)
        cmd.require_enabled(state, arn)
        return state, keyspecs.require_operation(state.key_spec, state.key_usage, operation, arn)

    # -- signatures ---------------------------------------------------------------

    def sign(self, key_id: str, message: bytes, signing_algorithm: str, *, message_type: str = "RAW",
             grant_tokens: list[str] | None = None, dry_run: bool | None = None) -> r.SignResponse:
        """AWS KMS Sign: a signature over `message` (RAW, up to 4096 bytes), or
        over a digest you computed (DIGEST: its length must match the
        algorithm; ML-DSA takes EXTERNAL_MU, 64 bytes) with the key's private
        key. ECDSA signatures are DER. Raises NotFoundException,
        DisabledException, KMSInvalidStateException, InvalidKeyUsageException
        (wrong usage, or an algorithm the key spec lacks), ValidationException,
        AccessDeniedException, DryRunOperationException."""
        def body(req: _Request) -> r.SignResponse:
            data = _message(message)
            keyspecs.check_enum("messageType", message_type, keyspecs.MESSAGE_TYPES)
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "Sign", {"kms:signingalgorithm": signing_algorithm,
                                                             "kms:messagetype": message_type})
            algorithm = keyspecs.check_signing(state.key_spec, usage, signing_algorithm, message_type, data)
            _dry_run(dry_run)
            version = state.current.version
            signature = crypto.sign(req.private_key(state, version), algorithm, message_type, data)
            req.emit([ev.Signed(state.key_id, version, signing_algorithm, message_type, _digest(data),
                                _digest(signature))])
            return r.SignResponse(req.arn(state.key_id), signature, signing_algorithm)
        return self._run("Sign", body, key_hint=key_id)

    def verify(self, key_id: str, message: bytes, signature: bytes, signing_algorithm: str, *,
               message_type: str = "RAW", grant_tokens: list[str] | None = None,
               dry_run: bool | None = None) -> r.VerifyResponse:
        """AWS KMS Verify: checks a signature with the key's public key (as
        anyone can offline with GetPublicKey). A signature that does not
        verify raises KMSInvalidSignatureException; otherwise as Sign."""
        def body(req: _Request) -> r.VerifyResponse:
            data = _message(message)
            sig = cmd.check_bytes("signature", signature)
            cmd.check_length("signature", sig, 1, cmd.MAX_CIPHERTEXT)
            keyspecs.check_enum("messageType", message_type, keyspecs.MESSAGE_TYPES)
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "Verify", {"kms:signingalgorithm": signing_algorithm,
                                                               "kms:messagetype": message_type})
            algorithm = keyspecs.check_signing(state.key_spec, usage, signing_algorithm, message_type, data)
            _dry_run(dry_run)
            current = state.current
            if not crypto.verify(current.public_key, algorithm, message_type, data, sig):
                raise KMSInvalidSignatureException("")
            req.emit([ev.SignatureVerified(state.key_id, current.version, signing_algorithm, message_type,
                                           _digest(data), _digest(sig))])
            return r.VerifyResponse(req.arn(state.key_id), True, signing_algorithm)
        return self._run("Verify", body, key_hint=key_id)

    def get_public_key(self, key_id: str, *, grant_tokens: list[str] | None = None) -> r.GetPublicKeyResponse:
        """AWS KMS GetPublicKey: the public key of an asymmetric key as DER
        SubjectPublicKeyInfo, with its spec, usage and algorithms. Needs only
        kms:GetPublicKey. Raises UnsupportedOperationException for symmetric
        and HMAC keys, and the usual key errors."""
        def body(req: _Request) -> r.GetPublicKeyResponse:
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "GetPublicKey")
            req.emit([ev.MetadataRead("GetPublicKey", state.key_id)])
            return r.GetPublicKeyResponse(
                req.arn(state.key_id), state.current.public_key, state.key_spec, state.key_spec, state.key_usage,
                encryption_algorithms=list(usage.encryption) or None,
                signing_algorithms=list(usage.signing) or None,
                key_agreement_algorithms=list(usage.key_agreement) or None,
                encapsulation_algorithms=list(usage.encapsulation) or None)
        return self._run("GetPublicKey", body, key_hint=key_id)

    # -- HMAC -----------------------------------------------------------------------

    def _mac(self, req: _Request, operation: str, key_id: str, message: bytes, mac_algorithm: str,
             grant_tokens: list[str] | None, dry_run: bool | None,
             ) -> tuple[KeyState, keyspecs.MacAlgorithm, crypto.PrivateKey, bytes]:
        data = _message(message)
        _check_grant_tokens(grant_tokens)
        state, usage = self._usable(req, key_id, operation, {"kms:macalgorithm": mac_algorithm})
        algorithm = keyspecs.check_mac(state.key_spec, usage, mac_algorithm)
        _dry_run(dry_run)
        return state, algorithm, req.private_key(state, state.current.version), data

    def generate_mac(self, key_id: str, message: bytes, mac_algorithm: str, *,
                     grant_tokens: list[str] | None = None, dry_run: bool | None = None) -> r.GenerateMacResponse:
        """AWS KMS GenerateMac: the HMAC of `message` (up to 4096 bytes) under
        an HMAC key, with the algorithm its spec names. Raises
        InvalidKeyUsageException, ValidationException and the key errors."""
        def body(req: _Request) -> r.GenerateMacResponse:
            state, algorithm, key, data = self._mac(req, "GenerateMac", key_id, message, mac_algorithm,
                                                    grant_tokens, dry_run)
            tag = crypto.mac(key, algorithm, data)
            req.emit([ev.MacGenerated(state.key_id, state.current.version, mac_algorithm, _digest(data),
                                      _digest(tag))])
            return r.GenerateMacResponse(tag, mac_algorithm, req.arn(state.key_id))
        return self._run("GenerateMac", body, key_hint=key_id)

    def verify_mac(self, key_id: str, message: bytes, mac_algorithm: str, mac: bytes, *,
                   grant_tokens: list[str] | None = None, dry_run: bool | None = None) -> r.VerifyMacResponse:
        """AWS KMS VerifyMac: recomputes the HMAC and compares in constant
        time; a mismatch raises KMSInvalidMacException."""
        def body(req: _Request) -> r.VerifyMacResponse:
            tag = cmd.check_bytes("mac", mac)
            cmd.check_length("mac", tag, 1, cmd.MAX_CIPHERTEXT)
            state, algorithm, key, data = self._mac(req, "VerifyMac", key_id, message, mac_algorithm,
                                                    grant_tokens, dry_run)
            if not crypto.mac_matches(key, algorithm, data, tag):
                raise KMSInvalidMacException("")
            req.emit([ev.MacVerified(state.key_id, state.current.version, mac_algorithm, _digest(data),
                                     _digest(tag))])
            return r.VerifyMacResponse(req.arn(state.key_id), True, mac_algorithm)
        return self._run("VerifyMac", body, key_hint=key_id)

    # -- key agreement -----------------------------------------------------------------

    def derive_shared_secret(self, key_id: str, key_agreement_algorithm: str, public_key: bytes, *,
                             grant_tokens: list[str] | None = None, dry_run: bool | None = None,
                             recipient: Mapping[str, Any] | None = None) -> r.DeriveSharedSecretResponse:
        """AWS KMS DeriveSharedSecret: raw ECDH between the key's private key
        and a peer's public key (DER SubjectPublicKeyInfo on the same curve).
        The secret is returned, never recorded. `recipient` (Nitro Enclave
        attestation) is refused with UnsupportedOperationException; a public
        key that does not parse or is on another curve is a ValidationException."""
        def body(req: _Request) -> r.DeriveSharedSecretResponse:
            peer = cmd.check_bytes("publicKey", public_key)
            cmd.check_length("publicKey", peer, 1, 8192)
            _no_recipient(recipient, "DeriveSharedSecret")
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "DeriveSharedSecret",
                                        {"kms:keyagreementalgorithm": key_agreement_algorithm})
            keyspecs.check_key_agreement(state.key_spec, usage, key_agreement_algorithm)
            version = state.current.version
            secret = crypto.derive_shared_secret(req.private_key(state, version), peer)
            _dry_run(dry_run)
            req.emit([ev.SharedSecretDerived(state.key_id, version, key_agreement_algorithm, _digest(peer))])
            return r.DeriveSharedSecretResponse(state.key_id, secret.reveal(), key_agreement_algorithm,
                                                state.origin)
        return self._run("DeriveSharedSecret", body, key_hint=key_id)

    # -- key encapsulation (ML-KEM) ------------------------------------------------------

    def encapsulate(self, key_id: str, encapsulation_algorithm: str, *, grant_tokens: list[str] | None = None,
                    dry_run: bool | None = None) -> r.EncapsulateResponse:
        """AWS KMS Encapsulate: a fresh 32-byte shared secret and its ML-KEM
        ciphertext (SharedSecretCiphertextBlob: 1088 bytes for ML_KEM_768,
        1568 for ML_KEM_1024) under the public key of an ML-KEM key
        (KeyUsage ENCAPSULATE_DECAPSULATE; EncapsulationAlgorithm ML_KEM).
        The holder of the ciphertext gets the same secret from Decapsulate.
        Needs kms:Encapsulate; the secret is returned, never recorded (the
        record holds the ciphertext's SHA-256). Raises NotFoundException,
        DisabledException, KMSInvalidStateException, InvalidKeyUsageException
        (wrong usage or algorithm), InvalidGrantTokenException,
        ValidationException, AccessDeniedException, DryRunOperationException."""
        def body(req: _Request) -> r.EncapsulateResponse:
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "Encapsulate")
            keyspecs.check_encapsulation(state.key_spec, usage, encapsulation_algorithm)
            _dry_run(dry_run)
            current = state.current
            secret, ciphertext = crypto.encapsulate(current.public_key)
            req.emit([ev.SharedSecretEncapsulated(state.key_id, current.version, encapsulation_algorithm,
                                                  _digest(ciphertext))])
            return r.EncapsulateResponse(req.arn(state.key_id), secret.reveal(), ciphertext,
                                         encapsulation_algorithm)
        return self._run("Encapsulate", body, key_hint=key_id)

    def decapsulate(self, key_id: str, shared_secret_ciphertext_blob: bytes, encapsulation_algorithm: str, *,
                    grant_tokens: list[str] | None = None, dry_run: bool | None = None) -> r.DecapsulateResponse:
        """AWS KMS Decapsulate: the 32-byte shared secret of an ML-KEM
        ciphertext (from Encapsulate, or made offline with the key's public
        key from GetPublicKey) with the key's private key. A blob whose
        length is not the key spec's raises InvalidCiphertextException; any
        other blob answers a secret, pseudo-random if no one encapsulated it
        for this key (FIPS 203's implicit rejection), so both parties must
        confirm they hold the same secret before using it. Needs
        kms:Decapsulate; the secret is never recorded. Raises
        NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException, InvalidCiphertextException,
        InvalidGrantTokenException, ValidationException,
        AccessDeniedException, DryRunOperationException."""
        def body(req: _Request) -> r.DecapsulateResponse:
            blob = cmd.check_bytes("sharedSecretCiphertextBlob", shared_secret_ciphertext_blob)
            cmd.check_length("sharedSecretCiphertextBlob", blob, 1, cmd.MAX_CIPHERTEXT)
            _check_grant_tokens(grant_tokens)
            state, usage = self._usable(req, key_id, "Decapsulate")
            keyspecs.check_encapsulation(state.key_spec, usage, encapsulation_algorithm)
            keyspecs.check_kem_ciphertext(state.key_spec, blob)
            _dry_run(dry_run)
            version = state.current.version
            secret = crypto.decapsulate(req.private_key(state, version), blob)
            req.emit([ev.SharedSecretDecapsulated(state.key_id, version, encapsulation_algorithm, _digest(blob))])
            return r.DecapsulateResponse(req.arn(state.key_id), secret.reveal(), encapsulation_algorithm)
        return self._run("Decapsulate", body, key_hint=key_id)

    # -- data key pairs ----------------------------------------------------------------

    def _data_key_pair(self, operation: str, key_id: str, key_pair_spec: str,
                       encryption_context: Mapping[str, str] | None, grant_tokens: list[str] | None,
                       dry_run: bool | None, recipient: Any, with_plaintext: bool) -> Any:
        # The pair is made before the write (RSA-4096 takes a second), not while holding it.
        pregenerated = crypto.pregenerate(key_pair_spec) if isinstance(key_pair_spec, str) else None

        def body(req: _Request) -> Any:
            context = cmd.check_context("encryptionContext", encryption_context)
            _no_recipient(recipient, operation)
            _check_grant_tokens(grant_tokens)
            pair_spec = keyspecs.check_data_key_pair_spec(key_pair_spec, crypto.unavailable_families())
            state = req.key(key_id)
            req.authorize(f"kms:{operation}", state, encryption_context=context,
                          extra={"kms:datakeypairspec": key_pair_spec})
            arn = req.arn(state.key_id)
            cmd.require_enabled(state, arn)
            keyspecs.require_operation(state.key_spec, state.key_usage, operation, arn)
            _dry_run(dry_run)
            private, public = pregenerated or crypto.generate_data_key_pair(pair_spec)
            blob, version = req.seal(state, private.reveal(), context)
            req.emit([ev.DataKeyPairGenerated(state.key_id, version, context, _digest(blob), key_pair_spec,
                                              _digest(public), with_plaintext)])
            if with_plaintext:
                return r.GenerateDataKeyPairResponse(blob, private.reveal(), public, arn, key_pair_spec)
            return r.GenerateDataKeyPairWithoutPlaintextResponse(blob, public, arn, key_pair_spec)
        return self._run(operation, body, key_hint=key_id)

    def generate_data_key_pair(self, key_id: str, key_pair_spec: str, *,
                               encryption_context: Mapping[str, str] | None = None,
                               grant_tokens: list[str] | None = None, dry_run: bool | None = None,
                               recipient: Mapping[str, Any] | None = None) -> r.GenerateDataKeyPairResponse:
        """AWS KMS GenerateDataKeyPair: a fresh key pair of `key_pair_spec`;
        the private key (PKCS#8 DER) is returned in clear and sealed under the
        symmetric key `key_id` with the encryption context (keyledger Decrypt
        opens it). `recipient` is refused (UnsupportedOperationException).
        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException, AccessDeniedException, DryRunOperationException,
        ValidationException."""
        result: r.GenerateDataKeyPairResponse = self._data_key_pair(
            "GenerateDataKeyPair", key_id, key_pair_spec, encryption_context, grant_tokens, dry_run,
            recipient, True)
        return result

    def generate_data_key_pair_without_plaintext(
            self, key_id: str, key_pair_spec: str, *, encryption_context: Mapping[str, str] | None = None,
            grant_tokens: list[str] | None = None, dry_run: bool | None = None,
    ) -> r.GenerateDataKeyPairWithoutPlaintextResponse:
        """AWS KMS GenerateDataKeyPairWithoutPlaintext: as GenerateDataKeyPair,
        but only the sealed private key and the public key come back. Raises
        NotFoundException, DisabledException, KMSInvalidStateException,
        InvalidKeyUsageException (not a symmetric encryption key),
        UnsupportedOperationException (a pair spec keyledger cannot make),
        AccessDeniedException, DryRunOperationException, ValidationException."""
        result: r.GenerateDataKeyPairWithoutPlaintextResponse = self._data_key_pair(
            "GenerateDataKeyPairWithoutPlaintext", key_id, key_pair_spec, encryption_context, grant_tokens,
            dry_run, None, False)
        return result
