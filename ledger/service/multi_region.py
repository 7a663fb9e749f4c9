"""Multi-Region keys: ReplicateKey and UpdatePrimaryRegion.

A multi-Region key (`mrk-` + 32 hex) is one row per region, all with the
same key id and key material. Each replica has its own key policy, tags,
description, aliases, grants, state and its own KEK row (keyed by region
and key id), so deleting a replica shreds that replica's copy of the
material while its related keys keep theirs. The primary owns the shared
properties: key spec, usage, origin, automatic rotation; its rotations are
re-wrapped under every replica's KEK and recorded in the replica's region
(`_Request.rotate_replicas`), so a ciphertext, signature or MAC made with
any key of the set is usable with every other (the ciphertext header names
the key id, never a region, and the message key derivation binds only the
key id and version). A primary with replicas that is scheduled for
deletion waits in PendingReplicaDeletion until the last replica is gone,
as AWS does.
"""

from __future__ import annotations

from typing import Any

import msgspec

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import responses as r
from keyledger.projections import key_row
from keyledger.projections.state import KeyState
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase, check_region
from keyledger.service.request import _lockout_check, _principals_exist, _Request, _request_tags


def _scope(svc: ServiceBase, region: str) -> str:
    try:
        check_region(region)
    except ValueError:  # the model's pattern (RegionType), checked first by `validating`
        from keyledger.errors import ValidationException
        raise ValidationException(f"1 validation error detected: Value '{region}' at 'region' failed to "
                                  "satisfy constraint: Member must satisfy regular expression pattern: "
                                  "^([a-z]+-){2,3}\\d+$") from None
    return "" if region == svc.home_region else region


class MultiRegionOps(ServiceBase):
    """Replicas of multi-Region keys and their primary region."""

    def replicate_key(self, key_id: str, replica_region: str, *, policy: str | None = None,
                      bypass_policy_lockout_safety_check: bool = False, description: str = "",
                      tags: Any = None) -> r.ReplicateKeyResponse:
        """ReplicateKey: a replica of the multi-Region primary key `key_id` (in
        this request's region) in `replica_region`, with the same key id and
        key material and its own `policy` (default: the default key policy),
        `description` and `tags`. The replica of an EXTERNAL key waits for the
        same material to be imported (PendingImport), as in AWS.

        Raises NotFoundException, AlreadyExistsException (a replica is there),
        UnsupportedOperationException (not a multi-Region primary key),
        DisabledException, KMSInvalidStateException, MalformedPolicyDocumentException,
        TagException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ReplicateKeyResponse:
            cmd.check_description(description)
            tag_map = cmd.check_tags(tags)
            replica_scope = _scope(self, replica_region)
            state = req.key(key_id)
            req.authorize("kms:ReplicateKey", state, extra={"kms:replicaregion": replica_region})
            there = req.elsewhere(replica_scope)
            there.authorize("kms:CreateKey", None, extra={  # AWS: kms:CreateKey in the replica's region
                **_request_tags(tag_map), "kms:keyspec": state.key_spec, "kms:keyusage": state.key_usage,
                "kms:keyorigin": state.origin, "kms:multiregion": True, "kms:multiregionkeytype": "REPLICA",
                "kms:bypasspolicylockoutsafetycheck": bypass_policy_lockout_safety_check})
            if tag_map:  # AWS: tags on the replica need kms:TagResource too, from an IAM policy
                there.authorize("kms:TagResource", None, extra=_request_tags(tag_map), resource=there.arn(state.key_id))
            document = authz.default_key_policy(self.account) if policy is None else policy
            parsed = authz.parse(document)
            if policy is not None:
                _principals_exist(there, parsed)
            if policy is not None and not bypass_policy_lockout_safety_check:
                _lockout_check(there, state.key_id, document)
            existing: KeyState | None = there.maintain(state.key_id)
            kek = Secret(self._rng(32))
            versions = [ev.ReplicaVersion(ev.WrappedMaterial(
                v.version, crypto.wrap_material(kek, state.key_id, v.version, req.material(state, v.version),
                                                nonce=self._rng(crypto.NONCE_BYTES)),
                v.kcv, v.public_key), v.created, v.rotation_type) for v in state.versions]
            events = cmd.replicate(state, req.arn(state.key_id), replica_scope, replica_region, existing,
                                   there.arn(state.key_id), description=description, tags=tag_map,
                                   policy=document, versions=versions)
            there.view.put_kek(there.kek_name(state.key_id),
                               crypto.wrap_kek(self._root, state.key_id, kek, nonce=self._rng(crypto.NONCE_BYTES)))
            self._forget(state.key_id, there.kek_name(state.key_id))
            req.emit(events[:1])
            there.emit(events[1:])
            replica: KeyState = req.view.get("keys", key_row(state.key_id, replica_scope))
            # AWS answers with a replica it is still making: Creating, not yet enabled, no current
            # key material id, and no ReplicaTags member without tags (recorded against AWS, 2025).
            # Here the replica is usable when this returns; DescribeKey shows it Enabled. (One
            # with imported material is PendingImport, as it stays until its import.)
            meta = self._metadata(replica)
            if meta.key_state == "Enabled":
                meta = msgspec.structs.replace(meta, key_state="Creating", enabled=False,
                                               current_key_material_id=None)
            return r.ReplicateKeyResponse(meta, document, [r.Tag(k, v) for k, v in tag_map.items()] or None)
        return self._run("ReplicateKey", body, key_hint=key_id)

    def update_primary_region(self, key_id: str, primary_region: str) -> None:
        """UpdatePrimaryRegion: make the replica of `key_id` (the primary, in
        this request's region) in `primary_region` the primary key, and the
        current primary a replica. Both must be Enabled.

        Raises NotFoundException, UnsupportedOperationException, DisabledException,
        KMSInvalidStateException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            new_scope = _scope(self, primary_region)
            state = req.key(key_id)
            req.authorize("kms:UpdatePrimaryRegion", state, extra={"kms:primaryregion": primary_region})
            there = req.elsewhere(new_scope)
            target: KeyState | None = there.maintain(state.key_id) if new_scope != state.region else state
            if target is not None and target.state != cmd.DELETED and new_scope != state.region:
                there.authorize("kms:UpdatePrimaryRegion", target, extra={"kms:primaryregion": primary_region})
            req.emit(cmd.update_primary_region(state, req.arn(state.key_id), new_scope, primary_region, target))
        return self._run("UpdatePrimaryRegion", body, key_hint=key_id)
