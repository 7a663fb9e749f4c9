"""Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
Enable/DisableKey, Schedule/CancelKeyDeletion."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import keyspecs
from keyledger import policy as authz
from keyledger import responses as r
from keyledger.projections import cloudtrail, in_scope, key_row, scope_prefix, scoped, usage
from keyledger.projections.state import KeyState
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase
from keyledger.service.custom_key_stores import no_such_store
from keyledger.errors import ValidationException
from keyledger.events import from_us
from keyledger.service.request import (
    _decode_marker,
    _encode_marker,
    _key_marker,
    _lockout_check,
    _principals_exist,
    _Request,
    _request_tags,
)


class KeyOps(ServiceBase):
    """Create, describe, list, enable, disable and delete keys."""

    def create_key(self, *, description: str = "", key_usage: str | None = None,
                   key_spec: str | None = None, customer_master_key_spec: str | None = None,
                   origin: str = "AWS_KMS", tags: Any = None, multi_region: bool = False,
                   policy: str | None = None, bypass_policy_lockout_safety_check: bool = False,
                   custom_key_store_id: str | None = None, xks_key_id: str | None = None) -> r.CreateKeyResponse:
        """CreateKey: a new key, its first version of material made and wrapped
        under a fresh KEK in the same write as its `KeyCreated` record, so no
        key ever exists without its material. `key_spec` defaults to
        SYMMETRIC_DEFAULT; `policy` defaults to AWS's default key policy, and a
        policy you give must still let you change it (the lockout check) unless
        `bypass_policy_lockout_safety_check`. A ledger has no custom key
        stores, so a `custom_key_store_id` names none; `xks_key_id` (an
        external key store's key) goes with the EXTERNAL_KEY_STORE origin only,
        and that origin needs it, as AWS documents.

        Raises ValidationException, AccessDeniedException,
        MalformedPolicyDocumentException, UnsupportedOperationException, TagException,
        CustomKeyStoreNotFoundException."""
        policy_document = policy
        # A key pair is made before the write (RSA-4096 takes a second), not while holding it.
        both = key_spec is not None and customer_master_key_spec is not None
        pregenerated = crypto.pregenerate(key_spec or customer_master_key_spec) \
            if origin != "EXTERNAL" and not both else None

        def body(req: _Request) -> r.CreateKeyResponse:
            if both:
                raise ValidationException("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
                                          "CustomerMasterKeySpec is deprecated.")
            spec = key_spec or customer_master_key_spec or cmd.SYMMETRIC_DEFAULT
            cmd.check_xks_key_id(origin, custom_key_store_id, xks_key_id)
            cmd.check_description(description)
            _, usage = keyspecs.check_create(spec, key_usage, self.region, crypto.unavailable_families())
            in_store = custom_key_store_id is not None and origin in cmd.CUSTOM_KEY_STORE_ORIGINS
            if not in_store:  # a custom key store's origin is answered after authorization, below
                cmd.check_create_params(usage, spec, origin, multi_region)
            tag_map = cmd.check_tags(tags)
            req.authorize("kms:CreateKey", None, extra={
                **_request_tags(tag_map), "kms:keyspec": spec, "kms:keyusage": usage, "kms:keyorigin": origin,
                "kms:bypasspolicylockoutsafetycheck": bypass_policy_lockout_safety_check})
            if custom_key_store_id is not None:
                raise no_such_store(custom_key_store_id)
            key_id = crypto.MRK_PREFIX + self._rng(16).hex() if multi_region else \
                str(uuid.UUID(bytes=self._rng(16), version=4))
            if tag_map:  # AWS: tags at creation need kms:TagResource too, from an IAM policy
                req.authorize("kms:TagResource", None, extra=_request_tags(tag_map), resource=req.arn(key_id))
            document = authz.default_key_policy(self.account) if policy_document is None else policy_document
            parsed = authz.parse(document)
            if policy_document is not None:
                _principals_exist(req, parsed)
            if policy_document is not None and not bypass_policy_lockout_safety_check:
                _lockout_check(req, key_id, document)  # only a given policy (AWS: the default cannot lock out)
            kek = Secret(self._rng(32))
            wrapped_kek = crypto.wrap_kek(self._root, key_id, kek, nonce=self._rng(crypto.NONCE_BYTES))
            events = cmd.create_key(key_id, description=description, key_usage=usage, key_spec=spec,
                                    origin=origin, tags=tag_map,
                                    material=req.mint(key_id, 1, kek, spec, pregenerated)
                                    if origin != "EXTERNAL" else ev.WrappedMaterial(0, b"", b""),  # imported later
                                    policy=document)
            # Only once decide has accepted the key: a refused CreateKey must
            # leave no KEK row behind for a key that never existed.
            req.view.put_kek(req.kek_name(key_id), wrapped_kek)
            req.emit(events)
            return r.CreateKeyResponse(self._metadata(req.view.get("keys", key_row(key_id, self.scope))))
        return self._run("CreateKey", body)

    def describe_key(self, key_id: str, *, grant_tokens: list[str] | None = None) -> r.DescribeKeyResponse:
        """DescribeKey: the key's metadata. `key_id` may be a key id, key ARN, alias
        name or alias ARN. A read is still a record (`MetadataRead`), so the log
        shows who looked. `grant_tokens` are taken and not read: AWS lists no
        InvalidGrantTokenException for DescribeKey, and grants here need no
        token to take effect.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.DescribeKeyResponse:
            state = req.key(key_id)
            req.authorize("kms:DescribeKey", state)
            req.emit([ev.MetadataRead("DescribeKey", state.key_id)])
            return r.DescribeKeyResponse(self._metadata(state))
        return self._run("DescribeKey", body, key_hint=key_id)

    def get_key_last_usage(self, key_id: str) -> r.GetKeyLastUsageResponse:
        """GetKeyLastUsage: the key's last successful cryptographic operation
        (Encrypt, Decrypt, Sign, ...: its name, time, CloudTrail eventID and
        request id), read from the log, which holds every use since the key
        was created (so TrackingStartDate is the creation date). A refused or
        failed call is not a use; DryRun calls are not either. `key_id` is a
        key id or key ARN (an alias is NotFoundException, as AWS answers).

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        origin = self.store.meta()["origin"].decode()  # read before the write: names the eventID

        def body(req: _Request) -> r.GetKeyLastUsageResponse:
            state = req.key(key_id)
            req.authorize("kms:GetKeyLastUsage", state)
            req.emit([ev.MetadataRead("GetKeyLastUsage", state.key_id)])
            last = _last_use(req, state.key_id)
            created = from_us(state.created)
            return r.GetKeyLastUsageResponse(
                key_id=state.key_id, tracking_start_date=created, key_creation_date=created,
                key_last_usage=None if last is None else r.KeyLastUsageData(
                    operation=last[0], timestamp=from_us(last[1].time),
                    cloud_trail_event_id=cloudtrail.event_id(origin, last[1].seq),
                    kms_request_id=last[1].request_id))
        return self._run("GetKeyLastUsage", body, key_hint=key_id)

    def list_keys(self, *, limit: int | None = None, marker: str | None = None,
                  resource_owners: list[str] | None = None) -> r.ListKeysResponse:
        """ListKeys: the account's keys, `limit` at a time (default 100); pass the
        response's `next_marker` back as `marker` for the next page. A key whose
        deletion has fallen due is deleted first, so it never shows.
        `resource_owners` ("SELF", "OTHER_ACCOUNTS_VIA_RAM"; default SELF):
        no other account shares keys with a ledger through RAM, so
        OTHER_ACCOUNTS_VIA_RAM adds none, and alone it lists none.

        Raises InvalidMarkerException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ListKeysResponse:
            n = cmd.check_limit(limit, 1000)
            after = _decode_marker(marker, _key_marker)
            req.authorize("kms:ListKeys", None)
            if resource_owners is not None and "SELF" not in resource_owners:
                req.emit([ev.MetadataRead("ListKeys")])
                return r.ListKeysResponse([], False)
            entries: list[r.KeyListEntry] = []
            prefix = scope_prefix(self.scope)  # the request region's keys only
            last = prefix + after if after is not None else None
            truncated = False
            while True:
                rows = req.view.scan("keys", after=last, prefix=prefix, limit=n + 1)
                if not self.scope and any(not in_scope(row, "") for row, _ in rows):  # the initial region's
                    rows = [(row, state) for row, state in rows if in_scope(row, "")]   # rows end at b"~"
                    ended = True
                else:
                    ended = len(rows) < n + 1
                for row, state in rows:
                    state = req.maintain(state.key_id)  # a key whose deletion fell due is gone
                    if state is None or state.state == cmd.DELETED:
                        last = row
                        continue
                    if len(entries) == n:
                        truncated = True
                        break
                    entries.append(r.KeyListEntry(state.key_id, self._arn(state.key_id)))
                    last = row
                if truncated or ended:
                    break
            req.emit([ev.MetadataRead("ListKeys")])
            return r.ListKeysResponse(entries, truncated,
                                      _encode_marker(last[len(prefix):]) if truncated and last else None)
        return self._run("ListKeys", body)

    def update_key_description(self, key_id: str, description: str) -> None:
        """UpdateKeyDescription: replace the key's description.

        Raises NotFoundException, KMSInvalidStateException (pending deletion),
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            cmd.check_description(description)
            state = req.key(key_id)
            req.authorize("kms:UpdateKeyDescription", state)
            req.emit(cmd.update_description(state, req.arn(state.key_id), description))
        return self._run("UpdateKeyDescription", body, key_hint=key_id)

    def enable_key(self, key_id: str) -> None:
        """EnableKey: let a disabled key be used again (a no-op on an enabled key,
        still recorded). Due automatic rotations resume from here.

        Raises NotFoundException, KMSInvalidStateException (pending deletion),
        AccessDeniedException, ValidationException."""
        return self._key_change("EnableKey", key_id, cmd.enable_key)

    def disable_key(self, key_id: str) -> None:
        """DisableKey: refuse every cryptographic use of the key until EnableKey;
        its material is kept, so nothing encrypted under it is lost.

        Raises NotFoundException, KMSInvalidStateException (pending deletion),
        AccessDeniedException, ValidationException."""
        return self._key_change("DisableKey", key_id, cmd.disable_key)

    def schedule_key_deletion(self, key_id: str, *, pending_window_in_days: int | None = None,
                              ) -> r.ScheduleKeyDeletionResponse:
        """ScheduleKeyDeletion: delete the key after `pending_window_in_days` (7-30,
        default 30). Until then CancelKeyDeletion undoes it; afterwards its KEK is
        destroyed (crypto-shredding) and its ciphertexts can never be opened.

        Raises NotFoundException, KMSInvalidStateException (already pending),
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ScheduleKeyDeletionResponse:
            days = cmd.DEFAULT_PENDING_WINDOW if pending_window_in_days is None else pending_window_in_days
            cmd.check_range("pendingWindowInDays", days, *cmd.PENDING_WINDOW_RANGE)
            state = req.key(key_id)
            req.authorize("kms:ScheduleKeyDeletion", state, extra={"kms:schedulekeydeletionpendingwindowindays": days})
            events = cmd.schedule_deletion(state, req.arn(state.key_id), days, req.now)
            req.emit(events)
            after: KeyState = req.view.get("keys", key_row(state.key_id, self.scope))
            if after.state == cmd.PENDING_REPLICA_DELETION:  # a primary waits for its replicas: no date yet
                return r.ScheduleKeyDeletionResponse(req.arn(state.key_id), None, after.state, days)
            return r.ScheduleKeyDeletionResponse(req.arn(state.key_id), from_us(events[0].deletion_date),
                                                 cmd.PENDING_DELETION, days)
        return self._run("ScheduleKeyDeletion", body, key_hint=key_id)

    def cancel_key_deletion(self, key_id: str) -> r.CancelKeyDeletionResponse:
        """CancelKeyDeletion: keep a key that is pending deletion; it comes back
        Disabled, as in AWS, so its use restarts only by choice (EnableKey).

        Raises NotFoundException, KMSInvalidStateException (not pending deletion),
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.CancelKeyDeletionResponse:
            state = req.key(key_id)
            req.authorize("kms:CancelKeyDeletion", state)
            req.emit(cmd.cancel_deletion(state, req.arn(state.key_id)))
            return r.CancelKeyDeletionResponse(req.arn(state.key_id))
        return self._run("CancelKeyDeletion", body, key_hint=key_id)


def _last_use(req: _Request, key_id: str) -> tuple[str, ev.Record] | None:
    """(operation, record) of the key's last successful cryptographic use in
    the request's region, or None if it has none.

    The usage rows (one per key version, folded from the log) give the time
    of the last use. The log's clock never runs backwards, so a binary search
    over seqs finds where records later than that begin; the key's index,
    read newest first from there, reaches the use after the records of that
    same microsecond at most (not after everything the key saw since)."""
    rows = req.view.scan("usage", prefix=scoped(req.scope, f"{key_id}#"))
    times = [u.last_used for _, u in rows if u.last_used is not None]
    if not times:
        return None
    latest = max(times)
    lo, hi = 0, req.view.head.seq
    while lo < hi:
        mid = (lo + hi) // 2
        record = req.view.record(mid)
        if record is not None and record.time <= latest:
            lo = mid + 1
        else:
            hi = mid
    # Without audit tables (a benchmark's store) there is no index: every seq.
    seqs = itertools.chain(req.view.index_seqs("idx_key", key_id.encode(), hi=lo, reverse=True),
                           range(lo - 1, -1, -1))
    for seq in seqs:
        record = req.view.record(seq)
        if record is None or record.scope != req.scope:
            continue
        operation = usage.tracked_operation(record.event, key_id)
        if operation is not None:
            return operation, record
    return None
