"""Rotation: Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations."""

from __future__ import annotations

from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import imported
from keyledger import keyspecs
from keyledger import responses as r
from keyledger.errors import UnsupportedOperationException
from keyledger.projections import key_row
from keyledger.projections.state import KeyState
from keyledger.service.base import ServiceBase
from keyledger.events import from_us
from keyledger.service.request import (
    _decode_marker,
    _encode_marker,
    _Request,
    _rotation_marker,
)


def _to_replicas(req: _Request, primary: KeyState, events: list[ev.Event]) -> None:
    """Automatic rotation is shared by a multi-Region key's set: the
    primary's setting, recorded again in each live replica's region."""
    for scope in primary.replica_regions:
        replica: KeyState | None = req.view.get("keys", key_row(primary.key_id, scope))
        if replica is not None and replica.state != cmd.DELETED:
            req.elsewhere(scope).emit(events, principal=ev.SERVICE_PRINCIPAL)


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
            cmd.require_not_replica(state, req.arn(state.key_id))
            events = cmd.enable_rotation(state, req.arn(state.key_id), rotation_period_in_days)
            req.emit(events)
            _to_replicas(req, state, events)
        return self._run("EnableKeyRotation", body, key_hint=key_id)

    def disable_key_rotation(self, key_id: str) -> None:
        """DisableKeyRotation: stop the key's automatic rotation.

        Raises NotFoundException, DisabledException, KMSInvalidStateException,
        UnsupportedOperationException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            state = req.key(key_id)
            req.authorize("kms:DisableKeyRotation", state)
            cmd.require_not_replica(state, req.arn(state.key_id))
            events = cmd.disable_rotation(state, req.arn(state.key_id))
            req.emit(events)
            _to_replicas(req, state, events)
        return self._run("DisableKeyRotation", body, key_hint=key_id)

    def get_key_rotation_status(self, key_id: str) -> r.GetKeyRotationStatusResponse:
        """GetKeyRotationStatus: whether the key rotates automatically, its period
        and next date (false while the key is pending deletion, as AWS answers).

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.GetKeyRotationStatusResponse:
            state = req.key(key_id)
            req.authorize("kms:GetKeyRotationStatus", state)
            req.emit([ev.MetadataRead("GetKeyRotationStatus", state.key_id)])
            # AWS: while a key is pending deletion its rotation status is false
            # (restored if the deletion is cancelled)
            enabled = state.rotation_enabled and state.state != cmd.PENDING_DELETION
            nxt = state.next_rotation if enabled else None
            return r.GetKeyRotationStatusResponse(
                key_rotation_enabled=enabled, key_id=req.arn(state.key_id),
                rotation_period_in_days=state.rotation_period_days if enabled else None,
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
            cmd.require_not_replica(state, req.arn(state.key_id))
            if state.primary_region is not None and state.origin == "EXTERNAL":
                raise UnsupportedOperationException(
                    f"{req.arn(state.key_id)} is a multi-Region key with imported key material: "
                    "keyledger does not rotate those on demand.")
            cmd.check_on_demand(state, req.arn(state.key_id))
            pending = state.pending_rotation  # imported keys rotate to their NEW_KEY_MATERIAL
            material = req.mint(state.key_id, len(state.versions) + 1) if pending is None else \
                ev.WrappedMaterial(pending.version, pending.wrapped, pending.kcv, pending.public_key)
            req.emit(cmd.rotate_on_demand(state, req.arn(state.key_id), req.now, material))
            req.rotate_replicas(req.view.get("keys", key_row(state.key_id, req.scope)), "ON_DEMAND", req.now)
            return r.RotateKeyOnDemandResponse(req.arn(state.key_id))
        return self._run("RotateKeyOnDemand", body, key_hint=key_id)

    def list_key_rotations(self, key_id: str, *, limit: int | None = None, marker: str | None = None,
                           include_key_material: str | None = None) -> r.ListKeyRotationsResponse:
        """ListKeyRotations: the key's rotations, oldest first, `limit` at a time
        (pass `next_marker` back as `marker`); `include_key_material=
        "ALL_KEY_MATERIAL"` lists its first key material too (without
        RotationDate and RotationType); AWS takes it only for a key that can
        rotate (UnsupportedOperationException for asymmetric and HMAC keys).

        Raises NotFoundException, InvalidMarkerException, AccessDeniedException,
        UnsupportedOperationException, ValidationException."""
        def body(req: _Request) -> r.ListKeyRotationsResponse:
            n = cmd.check_limit(limit, 1000)
            after = _decode_marker(marker, _rotation_marker)
            start = int.from_bytes(after, "big") if after else 0
            state = req.key(key_id)
            req.authorize("kms:ListKeyRotations", state)
            if include_key_material == "ALL_KEY_MATERIAL":  # only for a key that can rotate (AWS)
                keyspecs.require_rotatable(state.key_spec)
            first = 1 if include_key_material == "ALL_KEY_MATERIAL" else 2
            later = [v for v in state.versions if v.version >= first and v.version > start]
            if first == 1 and state.pending_rotation is not None and state.pending_rotation.version > start:
                later.append(state.pending_rotation)  # imported, waiting for RotateKeyOnDemand
            page = later[:n]
            req.emit([ev.MetadataRead("ListKeyRotations", state.key_id)])
            truncated = len(later) > n
            current = state.current.version if state.versions else 0
            pending_version = state.pending_rotation.version if state.pending_rotation is not None else -1
            return r.ListKeyRotationsResponse(
                [r.RotationsListEntry(
                    state.key_id, cmd.key_material_id(state.key_id, v.version),
                    "CURRENT" if v.version == current else
                    "PENDING_ROTATION" if v.version == pending_version else "NON_CURRENT",
                    from_us(v.created) if 1 < v.version != pending_version else None,
                    v.rotation_type if 1 < v.version != pending_version else None,
                    **imported.rotation_fields(state, v.version))
                 for v in page],
                truncated, _encode_marker(page[-1].version.to_bytes(4, "big")) if truncated else None)
        return self._run("ListKeyRotations", body, key_hint=key_id)

