"""A history of operations against a model of what AWS KMS would say.

The state machine drives a real ledger (LMDB in a temp dir, injected clock)
through key creation, enable/disable, on-demand and automatic rotation
(clock jumps past the period), aliases, encrypt / re-encrypt / data keys,
scheduled and cancelled deletion, clock jumps past the deletion window,
the sweep, close/reopen, and keys with imported material (import, expiry
by the clock, re-import, DeleteImportedKeyMaterial), multi-Region keys
(ReplicateKey to eu-west-1: the replica gets every rotation of its
primary, opens its ciphertexts, and holds the primary in
PendingReplicaDeletion when it is scheduled for deletion), while a plain-Python
model says what must be true. After every step:

- the hash chain verifies record by record and ends at the stored head;
- `replay.check` passes and `fold(evolve, log)` equals the live tables;
- every KEK row exists exactly for the keys the projection has not deleted;
- every ciphertext ever produced decrypts to its plaintext when its key is
  Enabled, and otherwise fails with exactly the error AWS gives
  (DisabledException / KMSInvalidStateException / NotFoundException);
- ListKeyRotations, ListAliases and the key projection match the model.

Automatic rotation and deletion are lazy in the ledger (applied when a key
is touched, or by the sweep); the model applies them eagerly at every step.
The two must be indistinguishable through the API, so right after a clock
jump the checks that touch keys are skipped once: the next operation then
meets the lazy state first.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, initialize, invariant, multiple, precondition, rule,
)

import keyledger
from keyledger import projections
from keyledger import crypto
from keyledger.errors import (
    AlreadyExistsException, DisabledException, KMSInvalidStateException,
    LimitExceededException, NotFoundException, UnsupportedOperationException,
)
from keyledger.service import from_us
from keyledger.projections import replay
from keyledger.projections.usage import tracked_operation
from chainkit import verify_chain
from clockkit import Clock

DAY = 86_400 * 1_000_000
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
ALIASES = ("alias/orders", "alias/billing", "alias/team/a-1")
FORMS = ("id", "arn")
REPLICA_REGION = "eu-west-1"
LAZY_RULES = 2  # after a clock jump, this many rules run before the checks touch every key

contexts = st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=3)
plaintexts = st.binary(min_size=1, max_size=4096)


@dataclass
class ModelKey:
    key_id: str
    created: int
    state: str = "Enabled"
    state_changed: int = 0
    rotation_enabled: bool = False
    period: int | None = None
    anchor: int | None = None
    rotations: list[tuple[str, int]] = field(default_factory=list)  # (type, date) of versions 2..
    on_demand: int = 0
    deletion_date: int | None = None
    external: bool = False  # Origin EXTERNAL: imported material
    imported: bool = True  # its material is there (not expired or deleted)
    material: bytes = b""
    valid_to: int | None = None

    @property
    def versions(self) -> int:
        return 1 + len(self.rotations)

    def error(self) -> type[Exception] | None:
        """What a data-plane request on this key fails with, if anything."""
        return {"Deleted": NotFoundException, "PendingDeletion": KMSInvalidStateException,
                "Disabled": DisabledException, "Enabled": None, "PendingImport": KMSInvalidStateException,
                "PendingReplicaDeletion": KMSInvalidStateException}[self.state]


def import_material(kms, key_id: str, material: bytes, valid_to: int | None) -> None:
    """GetParametersForImport, wrap offline (RSAES_OAEP_SHA_256), ImportKeyMaterial."""
    params = kms.get_parameters_for_import(key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = serialization.load_der_public_key(params.public_key).encrypt(material, oaep)
    kms.import_key_material(key_id, params.import_token, wrapped, valid_to=from_us(valid_to) if valid_to else None,
                            expiration_model=None if valid_to else "KEY_MATERIAL_DOES_NOT_EXPIRE")


@dataclass
class Ct:
    blob: bytes
    plaintext: bytes
    context: dict[str, str]
    key_id: str
    version: int


def expect(error: type[Exception] | None, call, *args, **kwargs):
    """Call, and insist on exactly `error` (or on success when None)."""
    if error is None:
        return call(*args, **kwargs)
    with pytest.raises(Exception) as info:
        call(*args, **kwargs)
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
    return None


class LedgerMachine(RuleBasedStateMachine):
    keys = Bundle("keys")
    ciphertexts = Bundle("ciphertexts")
    signers = Bundle("signers")  # asymmetric and HMAC keys (in self.model too)

    def __init__(self) -> None:
        super().__init__()
        self.home = tempfile.mkdtemp(prefix="kl-stateful-")
        self.clock = Clock(START)
        self.kms = self._open()
        self.model: dict[str, ModelKey] = {}
        self.aliases: dict[str, str] = {}  # alias name -> key id
        self.cts: list[Ct] = []
        self.signer_specs: dict[str, str] = {}  # key id -> key spec of the signers bundle
        self.lazy = 0  # rules left to run on the lazy state a clock jump left
        self.replicated: set[str] = set()  # multi-Region primaries with a replica in REPLICA_REGION

    def _open(self) -> keyledger.KeyLedger:
        return keyledger.open(self.home, create=True, durability="relaxed", clock=self.clock)

    def teardown(self) -> None:
        try:
            self.kms.close()
            # Hypothesis calls teardown in a `finally`: check only after a run
            # that passed, so a failing step is reported as itself.
            if sys.exc_info()[0] is None:
                # one last time from a fresh open: nothing lived only in memory
                self.kms = self._open()
                self.check_log_and_projections()
                self.check_through_the_api()
        finally:
            self.kms.close()
            shutil.rmtree(self.home, ignore_errors=True)

    # -- the model ----------------------------------------------------------

    def settle(self) -> None:
        """Apply, at the current time, every automatic rotation and deletion
        that has fallen due (what the ledger does lazily on touch)."""
        now = self.clock.us
        for k in self.model.values():
            if k.external and k.imported and k.valid_to is not None and k.valid_to <= now \
                    and k.state != "Deleted":  # imported material expired
                k.imported, k.valid_to = False, None
                if k.state != "PendingDeletion":
                    self.set_state(k, "PendingImport", now)
            if k.state == "Enabled" and k.rotation_enabled:
                due = k.anchor + k.period * DAY
                while due <= now:
                    effective = max(due, k.state_changed)
                    k.rotations.append(("AUTOMATIC", effective))
                    k.anchor = effective
                    due = effective + k.period * DAY
            if k.state == "PendingDeletion" and k.deletion_date <= now:
                k.state, k.state_changed = "Deleted", now
                for name in [a for a, kid in self.aliases.items() if kid == k.key_id]:
                    del self.aliases[name]

    def step(self) -> int:
        """Every request happens a second after the previous one."""
        self.clock.advance(seconds=1)
        self.settle()
        return self.clock.us

    def set_state(self, k: ModelKey, state: str, now: int) -> None:
        if k.state != state:
            k.state, k.state_changed = state, now

    def ref(self, key_id: str, form: str) -> str:
        return key_id if form == "id" else f"arn:aws:kms:us-east-1:111122223333:key/{key_id}"

    def automatic_rotation_error(self, k: ModelKey) -> type[Exception] | None:
        """Imported material never rotates automatically (AWS: UnsupportedOperationException)."""
        if k.external and k.state != "Deleted":
            return UnsupportedOperationException
        return k.error()

    def lifecycle_error(self, k: ModelKey) -> type[Exception] | None:
        """Control-plane calls refused for deleted and pending keys."""
        return {"Deleted": NotFoundException, "PendingDeletion": KMSInvalidStateException,
                "PendingReplicaDeletion": KMSInvalidStateException}.get(k.state)

    # -- keys -----------------------------------------------------------------

    @initialize(target=keys)
    def first_key(self):
        return self._create_key()

    def _create_key(self, multi_region: bool = False) -> str:
        now = self.step()
        meta = self.kms.create_key(description="model", multi_region=multi_region).key_metadata
        assert meta.key_state == "Enabled" and meta.enabled
        self.model[meta.key_id] = ModelKey(meta.key_id, created=now, state_changed=now)
        return meta.key_id

    @rule(target=keys)
    def create_key(self):
        return self._create_key()

    # -- multi-Region keys: the primary is a model key like any other; its
    # replica (never changed itself) must have exactly the primary's versions

    @rule(target=keys)
    def create_multi_region_key(self):
        return self._create_key(multi_region=True)

    @rule(key_id=keys)
    def replicate(self, key_id):
        self.step()
        k = self.model[key_id]
        error = (NotFoundException if k.state == "Deleted" else None) or \
            (UnsupportedOperationException if not key_id.startswith("mrk-") else None) or \
            self.lifecycle_error(k) or (DisabledException if k.state == "Disabled" else None) or \
            (AlreadyExistsException if key_id in self.replicated else None)
        expect(error, self.kms.replicate_key, key_id, REPLICA_REGION)
        if error is None:
            self.replicated.add(key_id)

    # -- imported key material ----------------------------------------------------

    @rule(target=keys, expires_in=st.one_of(st.none(), st.integers(1, 60 * 86_400)))
    def create_external_key(self, expires_in):
        now = self.step()
        meta = self.kms.create_key(origin="EXTERNAL").key_metadata
        assert meta.key_state == "PendingImport"
        k = self.model[meta.key_id] = ModelKey(meta.key_id, created=now, state_changed=now, external=True,
                                               material=os.urandom(32))
        k.valid_to = now + expires_in * 1_000_000 if expires_in else None
        import_material(self.kms, meta.key_id, k.material, k.valid_to)
        assert self.kms.describe_key(meta.key_id).key_metadata.key_state == "Enabled"
        return meta.key_id

    @rule(key_id=keys, expires_in=st.one_of(st.none(), st.integers(1, 60 * 86_400)))
    def reimport_material(self, key_id, expires_in):
        now, k = self.step(), self.model[key_id]
        valid_to = now + expires_in * 1_000_000 if expires_in else None
        error = NotFoundException if k.state == "Deleted" else UnsupportedOperationException if not k.external \
            else KMSInvalidStateException if k.state == "PendingDeletion" else None
        expect(error, import_material, self.kms, key_id, k.material or os.urandom(32), valid_to)
        if error is None:
            k.imported, k.valid_to = True, valid_to
            if k.state == "PendingImport":
                self.set_state(k, "Enabled", now)

    @rule(key_id=keys)
    def delete_imported_material(self, key_id):
        now, k = self.step(), self.model[key_id]
        error = NotFoundException if k.state == "Deleted" else UnsupportedOperationException if not k.external \
            else KMSInvalidStateException if not k.imported else None
        expect(error, self.kms.delete_imported_key_material, key_id)
        if error is None:
            k.imported, k.valid_to = False, None
            if k.state != "PendingDeletion":
                self.set_state(k, "PendingImport", now)

    @rule(key_id=keys, form=st.sampled_from(FORMS))
    def enable_key(self, key_id, form):
        now, k = self.step(), self.model[key_id]
        error = self.lifecycle_error(k) or (KMSInvalidStateException if k.state == "PendingImport" else None)
        expect(error, self.kms.enable_key, self.ref(key_id, form))
        if error is None:
            self.set_state(k, "Enabled", now)

    @rule(key_id=keys, form=st.sampled_from(FORMS))
    def disable_key(self, key_id, form):
        now, k = self.step(), self.model[key_id]
        error = self.lifecycle_error(k) or (KMSInvalidStateException if k.state == "PendingImport" else None)
        expect(error, self.kms.disable_key, self.ref(key_id, form))
        if error is None:
            self.set_state(k, "Disabled", now)

    @rule(key_id=keys)
    def describe_key(self, key_id):
        self.step()
        k = self.model[key_id]
        if k.state == "Deleted":
            expect(NotFoundException, self.kms.describe_key, key_id)
            return
        meta = self.kms.describe_key(key_id).key_metadata
        assert meta.key_state == k.state
        assert meta.enabled == (k.state == "Enabled")
        assert meta.creation_date == from_us(k.created)
        expected_deletion = from_us(k.deletion_date) if k.state == "PendingDeletion" else None
        assert meta.deletion_date == expected_deletion

    # -- rotation -------------------------------------------------------------

    @rule(key_id=keys)
    def rotate_on_demand(self, key_id):
        now, k = self.step(), self.model[key_id]
        # an imported key rotates only to material imported as NEW_KEY_MATERIAL, which this model
        # never imports: AWS's KMSInvalidStateException "No available key material pending rotation"
        error = k.error() or (KMSInvalidStateException if k.external else None) \
            or (LimitExceededException if k.on_demand >= 10 else None)
        expect(error, self.kms.rotate_key_on_demand, key_id)
        if error is None:
            k.rotations.append(("ON_DEMAND", now))
            k.on_demand += 1

    @rule(key_id=keys, period=st.integers(90, 2560), jump=st.booleans(),
          extra_hours=st.integers(0, 24 * 400))
    def enable_rotation(self, key_id, period, jump, extra_hours):
        """EnableKeyRotation, and (if `jump`) move the clock past the next
        automatic rotation date, possibly past several."""
        now, k = self.step(), self.model[key_id]
        error = self.automatic_rotation_error(k)
        expect(error, self.kms.enable_key_rotation, key_id, rotation_period_in_days=period)
        if error is None:
            if not k.rotation_enabled:
                k.anchor = now
            k.rotation_enabled, k.period = True, period
            # a shorter period can put the next date in the past already:
            # the status request (same instant) then performs that rotation
            self.settle()
            status = self.kms.get_key_rotation_status(key_id)
            assert status.key_rotation_enabled and status.rotation_period_in_days == period
            assert status.next_rotation_date == from_us(k.anchor + period * DAY)
        if jump and k.rotation_enabled and k.state == "Enabled":
            target = k.anchor + k.period * DAY + extra_hours * 3_600_000_000
            self.clock.advance(microseconds=max(0, target - self.clock.us))
            self.lazy = LAZY_RULES

    @rule(key_id=keys)
    def disable_rotation(self, key_id):
        self.step()
        k = self.model[key_id]
        error = self.automatic_rotation_error(k)
        expect(error, self.kms.disable_key_rotation, key_id)
        if error is None:
            k.rotation_enabled, k.anchor = False, None

    @rule(days=st.integers(0, 40), seconds=st.integers(0, 86_400))
    def advance_clock(self, days, seconds):
        self.clock.advance(days=days, seconds=seconds)
        self.lazy = LAZY_RULES

    @rule()
    def sweep(self):
        """rotate-due: afterwards every projection row is exactly the model."""
        self.step()
        self.kms.rotate_due()
        self.check_projection_against_model()
        listed = {e.key_id for e in self.kms.list_keys(limit=1000).keys}
        assert listed == {k.key_id for k in self.model.values() if k.state != "Deleted"}
        listed = {a.alias_name: a.target_key_id for a in self.kms.list_aliases().aliases
                  if a.target_key_id is not None}  # not the predefined alias/aws/* of no key yet
        assert listed == self.aliases

    # -- aliases --------------------------------------------------------------

    @rule(name=st.sampled_from(ALIASES), key_id=keys, form=st.sampled_from(FORMS))
    def create_alias(self, name, key_id, form):
        self.step()
        k = self.model[key_id]
        if k.state == "Deleted":
            error = NotFoundException
        elif name in self.aliases:
            error = AlreadyExistsException
        else:
            error = self.lifecycle_error(k)
        expect(error, self.kms.create_alias, name, self.ref(key_id, form))
        if error is None:
            self.aliases[name] = key_id

    @rule(name=st.sampled_from(ALIASES), key_id=keys, form=st.sampled_from(FORMS))
    def update_alias(self, name, key_id, form):
        self.step()
        k = self.model[key_id]
        if k.state == "Deleted" or name not in self.aliases:
            error = NotFoundException
        else:
            error = self.lifecycle_error(k)
        expect(error, self.kms.update_alias, name, self.ref(key_id, form))
        if error is None:
            self.aliases[name] = key_id

    @rule(name=st.sampled_from(ALIASES))
    def delete_alias(self, name):
        self.step()
        error = None if name in self.aliases else NotFoundException
        expect(error, self.kms.delete_alias, name)
        if error is None:
            del self.aliases[name]

    # -- data plane -----------------------------------------------------------

    def _encrypt(self, ref: str, key_id: str | None, plaintext: bytes, context: dict[str, str]):
        k = self.model.get(key_id) if key_id else None
        error = NotFoundException if k is None else k.error()
        resp = expect(error, self.kms.encrypt, ref, plaintext, encryption_context=context)
        if error is not None:
            return None
        assert resp.key_id == self.ref(key_id, "arn")
        assert crypto.parse_header(resp.ciphertext_blob) == (key_id, k.versions)
        ct = Ct(resp.ciphertext_blob, plaintext, context, key_id, k.versions)
        self.cts.append(ct)
        return ct

    @rule(target=ciphertexts, key_id=keys, form=st.sampled_from(FORMS), plaintext=plaintexts,
          context=contexts)
    def encrypt(self, key_id, form, plaintext, context):
        self.step()
        ct = self._encrypt(self.ref(key_id, form), key_id, plaintext, context)
        return ct if ct is not None else multiple()

    @rule(target=ciphertexts, name=st.sampled_from(ALIASES), as_arn=st.booleans(),
          plaintext=plaintexts, context=contexts)
    def encrypt_by_alias(self, name, as_arn, plaintext, context):
        self.step()
        ref = f"arn:aws:kms:us-east-1:111122223333:{name}" if as_arn else name
        ct = self._encrypt(ref, self.aliases.get(name), plaintext, context)
        return ct if ct is not None else multiple()

    @rule(target=ciphertexts, key_id=keys, context=contexts)
    def generate_data_key(self, key_id, context):
        self.step()
        k = self.model[key_id]
        error = k.error()
        resp = expect(error, self.kms.generate_data_key, key_id, encryption_context=context,
                      key_spec="AES_256")
        if error is not None:
            return multiple()
        assert len(resp.plaintext) == 32
        ct = Ct(resp.ciphertext_blob, resp.plaintext, context, key_id, k.versions)
        self.cts.append(ct)
        return ct

    @rule(target=ciphertexts, source=ciphertexts, key_id=keys, form=st.sampled_from(FORMS),
          context=contexts)
    def re_encrypt(self, source, key_id, form, context):
        self.step()
        src, dst = self.model[source.key_id], self.model[key_id]
        error = src.error() or dst.error()
        resp = expect(error, self.kms.re_encrypt, source.blob, self.ref(key_id, form),
                      source_encryption_context=source.context, destination_encryption_context=context)
        if error is not None:
            return multiple()
        assert resp.source_key_id == self.ref(source.key_id, "arn")
        assert resp.key_id == self.ref(key_id, "arn")
        assert crypto.parse_header(resp.ciphertext_blob) == (key_id, dst.versions)
        ct = Ct(resp.ciphertext_blob, source.plaintext, context, key_id, dst.versions)
        self.cts.append(ct)
        return ct

    # -- deletion -------------------------------------------------------------

    @rule(key_id=keys, days=st.integers(7, 30))
    def schedule_deletion(self, key_id, days):
        now, k = self.step(), self.model[key_id]
        error = self.lifecycle_error(k)
        resp = expect(error, self.kms.schedule_key_deletion, key_id, pending_window_in_days=days)
        if error is None and key_id in self.replicated:  # a primary waits for its replica (kept forever here)
            assert (resp.key_state, resp.deletion_date) == ("PendingReplicaDeletion", None)
            self.set_state(k, "PendingReplicaDeletion", now)
        elif error is None:
            assert resp.deletion_date == from_us(now + days * DAY)
            assert resp.key_state == "PendingDeletion"
            self.set_state(k, "PendingDeletion", now)
            k.deletion_date = now + days * DAY

    @rule(key_id=keys)
    def cancel_deletion(self, key_id):
        now, k = self.step(), self.model[key_id]
        if k.state == "Deleted":
            error = NotFoundException
        elif k.state not in ("PendingDeletion", "PendingReplicaDeletion"):
            error = KMSInvalidStateException
        else:
            error = None
        expect(error, self.kms.cancel_key_deletion, key_id)
        if error is None:  # a key without its imported material goes back to waiting for it
            self.set_state(k, "PendingImport" if k.external and not k.imported else "Disabled", now)
            k.deletion_date = None

    @precondition(lambda self: any(k.state == "PendingDeletion" for k in self.model.values()))
    @rule(data=st.data(), extra_seconds=st.integers(0, 86_400 * 3))
    def advance_past_deletion(self, data, extra_seconds):
        # creation order, not sorted ids: random ids would sort differently on a
        # replay, and hypothesis would call the machine's data generation flaky
        pending = [k.key_id for k in self.model.values() if k.state == "PendingDeletion"]
        k = self.model[data.draw(st.sampled_from(pending))]
        self.clock.advance(microseconds=max(0, k.deletion_date - self.clock.us) + extra_seconds * 1_000_000)
        self.lazy = LAZY_RULES

    # -- restarts -------------------------------------------------------------

    @rule()
    def close_and_reopen(self):
        self.kms.close()
        self.kms = self._open()

    # -- what must hold after every step -------------------------------------

    # -- asymmetric and HMAC keys ----------------------------------------------

    SIGNER_SPECS = {"ECC_NIST_P256": ("SIGN_VERIFY", "ECDSA_SHA_256"), "ECC_SECG_P256K1": ("SIGN_VERIFY",
                                                                                         "ECDSA_SHA_256"),
                    "ML_DSA_44": ("SIGN_VERIFY", "ML_DSA_SHAKE_256"), "HMAC_256": ("GENERATE_VERIFY_MAC",
                                                                                   "HMAC_SHA_256"),
                    "ML_KEM_768": ("ENCAPSULATE_DECAPSULATE", "ML_KEM"),
                    "ECC_NIST_EDWARDS25519": ("SIGN_VERIFY", "ED25519_SHA_512")}

    @rule(target=signers, spec=st.sampled_from(sorted(SIGNER_SPECS)))
    def create_signer(self, spec):
        now = self.step()
        meta = self.kms.create_key(key_spec=spec, key_usage=self.SIGNER_SPECS[spec][0]).key_metadata
        assert meta.key_spec == spec and meta.key_state == "Enabled"
        self.model[meta.key_id] = ModelKey(meta.key_id, created=now, state_changed=now)
        self.signer_specs[meta.key_id] = spec
        return meta.key_id

    @rule(key_id=signers, message=st.binary(min_size=1, max_size=64))
    def use_signer(self, key_id, message):
        self.step()
        k, (usage, algorithm) = self.model[key_id], self.SIGNER_SPECS[self.signer_specs[key_id]]
        if usage == "GENERATE_VERIFY_MAC":
            out = expect(k.error(), self.kms.generate_mac, key_id, message, algorithm)
            if out is not None:
                assert self.kms.verify_mac(key_id, message, algorithm, out.mac).mac_valid
                self.step()
        elif usage == "ENCAPSULATE_DECAPSULATE":
            out = expect(k.error(), self.kms.encapsulate, key_id, algorithm)
            if out is not None:
                back = self.kms.decapsulate(key_id, out.shared_secret_ciphertext_blob, algorithm)
                assert back.shared_secret == out.shared_secret
                self.step()
        else:
            out = expect(k.error(), self.kms.sign, key_id, message, algorithm)
            if out is not None:
                assert self.kms.verify(key_id, message, out.signature, algorithm).signature_valid
                self.step()

    @rule(key_id=signers, enable=st.booleans())
    def toggle_signer(self, key_id, enable):
        now, k = self.step(), self.model[key_id]
        error = self.lifecycle_error(k)
        expect(error, self.kms.enable_key if enable else self.kms.disable_key, key_id)
        if error is None:
            self.set_state(k, "Enabled" if enable else "Disabled", now)

    @rule(key_id=signers)
    def rotate_signer(self, key_id):
        """Rotation of asymmetric and HMAC keys is refused, as AWS refuses it
        (on demand, after the key's state: a disabled one is DisabledException)."""
        self.step()
        k = self.model[key_id]
        expect(k.error() or UnsupportedOperationException, self.kms.rotate_key_on_demand, key_id)
        error = NotFoundException if k.state == "Deleted" else UnsupportedOperationException
        expect(error, self.kms.enable_key_rotation, key_id)

    @rule(key_id=signers, days=st.integers(7, 30))
    def schedule_signer_deletion(self, key_id, days):
        self.schedule_deletion(key_id, days)

    @invariant()
    def log_and_projections_agree(self):
        self.check_log_and_projections()

    @invariant()
    def api_agrees_with_model(self):
        if self.lazy:  # leave the lazy state for the next rules to meet
            self.lazy -= 1
            return
        self.check_through_the_api()

    def check_log_and_projections(self) -> None:
        store = self.kms.store
        with store.snapshot() as snap:
            count = verify_chain(snap)
            report = replay.check(snap)
            assert report.ok, (report.chain_error, report.differences)
            assert report.records == count
            live = snap.tables()
            assert projections.fold(snap.records()).rows == live
        # the same through the store's own reader (a separate read transaction)
        assert projections.fold(store.records()).rows == live
        # a KEK row exists exactly for the keys the log has not deleted
        for row, state in live["keys"].items():
            has_kek = store.kek(row.decode()) is not None  # a replica's KEK row is its key row's name
            assert has_kek == (state.state != "Deleted"), (state.key_id, state.state)
        # alias rows and the keys' alias lists say the same thing
        by_key: dict[str, set[str]] = {}
        for row, alias in live["aliases"].items():
            by_key.setdefault(alias.key_id, set()).add(alias.alias_name)
        for state in live["keys"].values():
            assert len(state.aliases) == len(set(state.aliases)), state.aliases
            if not state.region:  # (replicas have no aliases here)
                assert set(state.aliases) == by_key.get(state.key_id, set())

    def check_through_the_api(self) -> None:
        """Touches every key (decrypts, lists): afterwards nothing is lazy."""
        self.settle()
        for ct in self.cts:
            k = self.model[ct.key_id]
            # the same context in another order must decrypt just the same
            shuffled = dict(reversed(list(ct.context.items())))
            resp = expect(k.error(), self.kms.decrypt, ct.blob, encryption_context=shuffled)
            if resp is not None:
                assert resp.plaintext == ct.plaintext
                assert resp.key_id == self.ref(ct.key_id, "arn")
            if ct.key_id in self.replicated:  # the primary's ciphertext opens at its replica (always Enabled)
                there = self.kms.in_region(REPLICA_REGION).decrypt(ct.blob, encryption_context=shuffled)
                assert there.plaintext == ct.plaintext
        for key_id, k in self.model.items():
            if k.state == "Deleted":
                expect(NotFoundException, self.kms.list_key_rotations, key_id)
                continue
            rotations = self.kms.list_key_rotations(key_id).rotations
            assert [(x.rotation_type, x.rotation_date) for x in rotations] == \
                [(t, from_us(d)) for t, d in k.rotations]
            names = [a.alias_name for a in self.kms.list_aliases(key_id=key_id).aliases]
            assert sorted(names) == sorted(a for a, kid in self.aliases.items() if kid == key_id)
        self.check_last_usage()
        self.check_projection_against_model()

    def check_last_usage(self) -> None:
        """GetKeyLastUsage names the newest successful use of each key in the
        whole log (the primary's and its replica's apart), whatever happened
        since: rotations, clock jumps, disabling, deletion pending."""
        log = list(self.kms.store.records())
        for key_id, k in self.model.items():
            if k.state == "Deleted":
                continue
            places = [(self.kms, "")]
            if key_id in self.replicated:
                places.append((self.kms.in_region(REPLICA_REGION), REPLICA_REGION))
            for kms, scope in places:
                want = next(((name, r) for r in reversed(log) if r.scope == scope
                             and (name := tracked_operation(r.event, key_id)) is not None), None)
                got = kms.get_key_last_usage(key_id).key_last_usage
                if want is None:
                    assert got is None, (key_id, scope, got)
                else:
                    assert got is not None and (got.operation, got.kms_request_id, got.timestamp) == \
                        (want[0], want[1].request_id, from_us(want[1].time)), (key_id, scope, got, want)

    def check_projection_against_model(self) -> None:
        with self.kms.store.snapshot() as snap:
            live = snap.tables()
        assert {a.alias_name: a.key_id for a in live["aliases"].values()} == self.aliases
        assert {s.key_id for s in live["keys"].values()} == set(self.model)
        replicas = {s.key_id: s for s in live["keys"].values() if s.region}
        assert set(replicas) == self.replicated
        for state in live["keys"].values():
            k = self.model[state.key_id]
            if state.region:  # a replica: the primary's versions and rotation settings, its own state
                assert state.state == "Enabled" and state.is_replica
                assert [(v.rotation_type, v.created) for v in state.versions[1:]] == k.rotations
                assert state.rotation_enabled == k.rotation_enabled
                continue
            assert state.state == k.state, (state.key_id, state.state, k.state)
            assert len(state.versions) == k.versions
            assert [(v.rotation_type, v.created) for v in state.versions[1:]] == k.rotations
            assert state.on_demand_rotations == k.on_demand
            assert state.rotation_enabled == k.rotation_enabled
            if k.rotation_enabled:
                assert (state.rotation_period_days, state.rotation_anchor) == (k.period, k.anchor)


LedgerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
TestLedgerMachine = LedgerMachine.TestCase


# -- regressions the machine found (kept as plain tests so they always run) --

def _ledger(tmp_path, clock=None):
    return keyledger.open(tmp_path, create=True, durability="relaxed", clock=clock or Clock(START))


def test_sweep_that_deletes_a_key_succeeds(tmp_path):
    """rotate_due() raised NotFoundException for the key it had just deleted
    (and stopped sweeping the keys after it)."""
    clock = Clock(START)
    with _ledger(tmp_path, clock) as kms:
        doomed = [kms.create_key().key_metadata.key_id for _ in range(3)]
        for key_id in doomed:
            kms.schedule_key_deletion(key_id, pending_window_in_days=7)
        clock.advance(days=7, seconds=1)
        assert kms.rotate_due() == {"rotated": 0, "deleted": 3}
        for key_id in doomed:
            assert kms.store.kek(key_id) is None
        assert kms.rotate_due() == {"rotated": 0, "deleted": 0}


def test_update_alias_to_the_key_it_names_keeps_one_entry(tmp_path):
    """UpdateAlias to the same key listed the alias twice for that key."""
    with _ledger(tmp_path) as kms:
        key_id = kms.create_key().key_metadata.key_id
        kms.create_alias("alias/same", key_id)
        kms.update_alias("alias/same", key_id)
        names = [a.alias_name for a in kms.list_aliases(key_id=key_id).aliases]
        assert names == ["alias/same"]
        with kms.store.snapshot() as snap:
            assert replay.check(snap).ok


def test_alias_of_a_key_past_its_deletion_date_is_gone(tmp_path):
    """Deletion is applied lazily; an alias operation must still see the
    alias of a key whose window has passed as deleted with the key, not
    refuse to create it (AlreadyExists) or re-point it (UpdateAlias)."""
    clock = Clock(START)
    with _ledger(tmp_path, clock) as kms:
        old = kms.create_key().key_metadata.key_id
        new = kms.create_key().key_metadata.key_id
        kms.create_alias("alias/app", old)
        kms.create_alias("alias/other", old)
        kms.schedule_key_deletion(old, pending_window_in_days=7)
        clock.advance(days=8)
        expect(NotFoundException, kms.update_alias, "alias/app", new)
        expect(NotFoundException, kms.delete_alias, "alias/other")
        kms.create_alias("alias/app", new)
        assert kms.describe_key("alias/app").key_metadata.key_id == new
        expect(NotFoundException, kms.describe_key, old)
        with kms.store.snapshot() as snap:
            assert replay.check(snap).ok
