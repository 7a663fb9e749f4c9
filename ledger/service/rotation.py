"""Rotation: Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations."""

from __future__ import annotations

from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import responses as r
from keyledger.service.base import ServiceBase
from keyledger.service.request import (
    _decode_marker,
    _encode_marker,
    _Request,
    _rotation_marker,
    from_us,
)


class RotationOps(ServiceBase):
    """Automatic and on-demand rotation of key material."""

    def enable_key_rotation(self, key_id: str, *, rotation_period_in_days: int | None = None) -> None:
        """EnableKeyRotation: rotate the key's material automatically every
        `rotation_period_in_days` (90-2,560, default 365). Old versions stay,
        so every earlier ciphertext still decrypts.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        UnsupportedOperationException (asymmetric and HMAC keys), AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> None:
            if rotation_period_in_days is not None:
                cmd.check_range("rotationPeriodInDays", rotation_period_in_days, *cmd.ROTATION_PERIOD_RANGE)
            state = req.key(key_id)
            period = cmd.DEFAULT_ROTATION_PERIOD if rotation_period_in_days is None else rotation_period_in_days
            req.authorize("kms:EnableKeyRotation", state, extra={"kms:rotationperiodindays": period})
            req.emit(cmd.enable_rotation(state, req.arn(state.key_id), rotation_period_in_days))
        return self._run("EnableKeyRotation", body, key_hint=key_id)

    def disable_key_rotation(self, key_id: str) -> None:
        """DisableKeyRotation: stop the key's automatic rotation.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        UnsupportedOperationException, AccessDeniedException, ValidationException."""
        return self._key_change("DisableKeyRotation", key_id, cmd.disable_rotation)

    def get_key_rotation_status(self, key_id: str) -> r.GetKeyRotationStatusResponse:
        """GetKeyRotationStatus: whether the key rotates automatically, its period
        and next date (false while the key is pending deletion, as AWS answers).

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.GetKeyRotationStatusResponse:
            state = req.key(key_id)
            req.authorize("kms:GetKeyRotationStatus", state)
            req.emit([ev.MetadataRead("GetKeyRotationStatus", state.key_id)])
            nxt = state.next_rotation
            return r.GetKeyRotationStatusResponse(
                key_rotation_enabled=state.rotation_enabled, key_id=req.arn(state.key_id),
                rotation_period_in_days=state.rotation_period_days if state.rotation_enabled else None,
                next_rotation_date=from_us(nxt) if nxt is not None else None)
        return self._run("GetKeyRotationStatus", body, key_hint=key_id)

    def rotate_key_on_demand(self, key_id: str) -> r.RotateKeyOnDemandResponse:
        """RotateKeyOnDemand: a new version of the key's material now (at most 10 per
        key); new ciphertexts use it, old ones still open with theirs.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        UnsupportedOperationException, LimitExceededException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.RotateKeyOnDemandResponse:
            state = req.key(key_id)
            req.authorize("kms:RotateKeyOnDemand", state)
            cmd.check_on_demand(state, req.arn(state.key_id))
            material = req.mint(state.key_id, len(state.versions) + 1)
            req.emit(cmd.rotate_on_demand(state, req.arn(state.key_id), req.now, material))
            return r.RotateKeyOnDemandResponse(state.key_id)
        return self._run("RotateKeyOnDemand", body, key_hint=key_id)

    def list_key_rotations(self, key_id: str, *, limit: int | None = None,
                           marker: str | None = None) -> r.ListKeyRotationsResponse:
        def body(req: _Request) -> r.ListKeyRotationsResponse:
            n = cmd.check_limit(limit, 1000)
            after = _decode_marker(marker, _rotation_marker)
            start = int.from_bytes(after, "big") if after else 0
            state = req.key(key_id)
            req.authorize("kms:ListKeyRotations", state)
            later = [v for v in state.versions[1:] if v.version > start]
            page = later[:n]
            req.emit([ev.MetadataRead("ListKeyRotations", state.key_id)])
            truncated = len(later) > n
            return r.ListKeyRotationsResponse(
                [r.RotationsListEntry(state.key_id, from_us(v.created), v.rotation_type or "") for v in page],
                truncated, _encode_marker(page[-1].version.to_bytes(4, "big")) if truncated else None)
        return self._run("ListKeyRotations", body, key_hint=key_id)

