"""Access keys the ledger holds, as a history against a model: issue (with
AWS's two-per-user quota), switch off and on, delete, rotate the root key,
close and reopen. After every step the ledger answers the SigV4 lookup
exactly as the model says (principal, secret, active, or unknown), lists
the same keys, holds a secret row for exactly the live keys, and replays
to its live tables."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import keyledger
from keyledger.errors import LimitExceededException, NotFoundException
from keyledger.projections import ACCESS_KEY_ROW_PREFIX, replay

USERS = ("alice", "bob")


@dataclass
class ModelKey:
    user: str
    secret: bytes
    active: bool = True


class HeldAccessKeys(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="keyledger-akeys-"))
        self.kms = keyledger.open(self.dir / "ledger", create=True)
        self.arns = {name: self.kms.create_user(name).arn for name in USERS}
        self.keys: dict[str, ModelKey] = {}
        self.gone: list[str] = []

    def teardown(self) -> None:
        self.kms.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _of(self, user: str) -> list[str]:
        return [k for k, m in self.keys.items() if m.user == user]

    @rule(user=st.sampled_from(USERS))
    def create(self, user: str) -> None:
        if len(self._of(user)) >= 2:
            try:
                self.kms.create_access_key(self.arns[user])
            except LimitExceededException:
                return
            raise AssertionError("a third key was issued")
        issued = self.kms.create_access_key(self.arns[user])
        assert issued.access_key_id not in self.keys and issued.access_key_id not in self.gone
        self.keys[issued.access_key_id] = ModelKey(user, issued.secret_access_key.reveal())

    @precondition(lambda self: self.keys)
    @rule(data=st.data(), active=st.booleans())
    def set_status(self, data: st.DataObject, active: bool) -> None:
        key = data.draw(st.sampled_from(list(self.keys)))  # in issue order: the ids are random
        self.kms.update_access_key(self.arns[self.keys[key].user], key, "Active" if active else "Inactive")
        self.keys[key].active = active

    @precondition(lambda self: self.keys)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.keys)))  # in issue order: the ids are random
        self.kms.delete_access_key(self.arns[self.keys.pop(key).user], key)
        self.gone.append(key)

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def a_deleted_key_stays_deleted(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.gone))
        for user in USERS:
            try:
                self.kms.update_access_key(self.arns[user], key, "Active")
            except NotFoundException:
                continue
            raise AssertionError("a deleted key came back")

    @rule()
    def rotate_root_key(self) -> None:
        self.kms.rotate_root_key()

    @rule()
    def close_and_reopen(self) -> None:
        self.kms.close()
        self.kms = keyledger.open(self.dir / "ledger")

    @invariant()
    def the_ledger_agrees_with_the_model(self) -> None:
        for key, model in self.keys.items():
            principal, secret, active = self.kms.held_access_key(key)
            assert (principal, secret.reveal(), active) == (self.arns[model.user], model.secret, model.active)
        for key in self.gone:
            assert self.kms.held_access_key(key) is None
        for user in USERS:
            listed = self.kms.list_access_keys(self.arns[user]).access_key_metadata
            assert [(m.access_key_id, m.status) for m in listed] == [
                (k, "Active" if self.keys[k].active else "Inactive") for k in self._of(user)]
        with self.kms.store.snapshot() as snap:
            rows = {name.decode() for name, _ in snap.raw_rows("keks")}
            assert {r for r in rows if r.startswith(ACCESS_KEY_ROW_PREFIX)} == \
                {ACCESS_KEY_ROW_PREFIX + k for k in self.keys}
            assert replay.check(snap).ok


HeldAccessKeys.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
test_held_access_keys = HeldAccessKeys.TestCase
