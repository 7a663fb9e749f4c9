"""Imported key material: GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial (the rules are in `keyledger.imported`)."""

from __future__ import annotations

from typing import Any

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import imported as imp
from keyledger import keyspecs
from keyledger import responses as r
from keyledger.errors import IncorrectKeyMaterialException
from keyledger.service.base import ServiceBase
from keyledger.events import from_us
from keyledger.service.request import _Request


class ImportOps(ServiceBase):
    """Keys whose material the customer brings (Origin EXTERNAL)."""

    def get_parameters_for_import(self, key_id: str, wrapping_algorithm: str,
                                  wrapping_key_spec: str) -> r.GetParametersForImportResponse:
        """GetParametersForImport: a one-time RSA wrapping public key and an
        import token, both valid for 24 hours, for a key of origin EXTERNAL.
        The private half is recorded only wrapped under the key's KEK; the
        token is sealed under the KEK, for this key.

        Raises NotFoundException, UnsupportedOperationException (not an
        EXTERNAL key, or a wrapping the key spec refuses), AccessDeniedException,
        ValidationException."""
        # An RSA-4096 pair takes a second: made before the write, dropped if refused.
        pair = crypto.generate_wrapping_key(wrapping_key_spec) \
            if wrapping_key_spec in crypto.WRAPPING_KEY_BITS else None

        def body(req: _Request) -> r.GetParametersForImportResponse:
            cmd.check_enum("wrappingAlgorithm", wrapping_algorithm, imp.WRAPPING_ALGORITHMS)
            cmd.check_enum("wrappingKeySpec", wrapping_key_spec, imp.WRAPPING_KEY_SPECS)
            state = req.key(key_id)
            req.authorize("kms:GetParametersForImport", state, extra={
                "kms:wrappingalgorithm": wrapping_algorithm, "kms:wrappingkeyspec": wrapping_key_spec})
            imp.check_parameters(state, req.arn(state.key_id), wrapping_algorithm, wrapping_key_spec)
            assert pair is not None  # the spec was checked
            private, public = pair
            kek, rng = req.kek(state.key_id), self._rng
            token_id = rng(16)
            valid_to = req.now + imp.PARAMETERS_VALID_US
            wrapped_private = crypto.wrap_wrapping_key(kek, state.key_id, token_id, private,
                                                       nonce=rng(crypto.NONCE_BYTES))
            payload = imp.TokenPayload(token_id, state.key_id, valid_to, wrapping_algorithm, wrapping_key_spec,
                                       wrapped_private)
            token = crypto.seal_import_token(kek, state.key_id, imp.encode_token(payload),
                                             nonce=rng(crypto.NONCE_BYTES))
            req.emit([ev.ImportParametersIssued(state.key_id, token_id, wrapping_algorithm, wrapping_key_spec,
                                                valid_to, public, wrapped_private)])
            return r.GetParametersForImportResponse(req.arn(state.key_id), token, public, from_us(valid_to))
        return self._run("GetParametersForImport", body, key_hint=key_id)

    def import_key_material(self, key_id: str, import_token: bytes, encrypted_key_material: bytes, *,
                            valid_to: Any = None, expiration_model: str | None = None,
                            import_type: str | None = None, key_material_description: str | None = None,
                            key_material_id: str | None = None) -> r.ImportKeyMaterialResponse:
        """ImportKeyMaterial: unwrap material wrapped under a public key from
        GetParametersForImport and install it (first import, re-import of the
        same material, or NEW_KEY_MATERIAL for a later RotateKeyOnDemand).
        `valid_to` is a timezone-aware datetime or seconds since the epoch.

        Raises InvalidImportTokenException, ExpiredImportTokenException,
        InvalidCiphertextException (the material does not unwrap),
        IncorrectKeyMaterialException, NotFoundException, KMSInvalidStateException,
        UnsupportedOperationException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ImportKeyMaterialResponse:
            token = cmd.check_bytes("importToken", import_token)
            blob = cmd.check_bytes("encryptedKeyMaterial", encrypted_key_material)
            until = imp.parse_valid_to(valid_to)
            model, until = imp.check_expiration(expiration_model, until, req.now)
            state = req.key(key_id)
            arn = req.arn(state.key_id)
            req.authorize("kms:ImportKeyMaterial", state, extra={
                "kms:expirationmodel": model, **({"kms:validto": until // 1_000_000} if until else {})})
            imp.require_external(state, arn)
            cmd.require_not_pending(state, arn)
            kek = req.kek(state.key_id)
            payload = imp.decode_token(crypto.open_import_token(kek, state.key_id, token), state.key_id)
            imp.check_token_fresh(payload, req.now)
            wrapping_private = crypto.unwrap_wrapping_key(kek, state.key_id, payload.token_id,
                                                          payload.wrapped_private_key)
            raw = crypto.unwrap_imported_material(wrapping_private, payload.wrapping_algorithm, blob)
            spec = keyspecs.spec(state.key_spec)
            usable = crypto.imported_material(spec, raw)
            if usable is None:
                raise IncorrectKeyMaterialException(
                    f"The key material is not valid {state.key_spec} key material.")
            material, public_key = usable

            def wrap(version: int) -> ev.WrappedMaterial:
                wrapped = crypto.wrap_material(kek, state.key_id, version, material,
                                               nonce=self._rng(crypto.NONCE_BYTES))
                return ev.WrappedMaterial(version, wrapped, crypto.kcv(material), public_key)

            events = imp.import_material(
                state, arn, material, import_type=import_type, key_material_id=key_material_id,
                description=key_material_description, expiration_model=model, valid_to=until,
                token_id=payload.token_id, wrap=wrap)
            req.emit(events)
            version = events[0].version
            self._forget_material(state.key_id, version)
            return r.ImportKeyMaterialResponse(
                arn, cmd.key_material_id(state.key_id, version)
                if state.key_spec == keyspecs.SYMMETRIC_DEFAULT else None)
        return self._run("ImportKeyMaterial", body, key_hint=key_id)

    def delete_imported_key_material(self, key_id: str, *, key_material_id: str | None = None,
                                     ) -> r.DeleteImportedKeyMaterialResponse:
        """DeleteImportedKeyMaterial: make imported material unusable until it
        is imported again (the current material unless `key_material_id`
        names another); the key waits in PendingImport meanwhile.

        Raises NotFoundException, KMSInvalidStateException,
        UnsupportedOperationException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.DeleteImportedKeyMaterialResponse:
            state = req.key(key_id)
            arn = req.arn(state.key_id)
            req.authorize("kms:DeleteImportedKeyMaterial", state)
            events = imp.delete_material(state, arn, key_material_id)
            req.emit(events)
            version = events[0].version
            self._forget_material(state.key_id, version)
            return r.DeleteImportedKeyMaterialResponse(arn, cmd.key_material_id(state.key_id, version))
        return self._run("DeleteImportedKeyMaterial", body, key_hint=key_id)
