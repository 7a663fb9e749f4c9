"""A model-driven property for the STS actions `keyledger serve` answers
(GetCallerIdentity, AssumeRole), as tests/conformance/test_iam_fuzz.py is
for IAM's: hypothesis draws well-typed requests from botocore's STS model
(a role that trusts alice, others, garbage), sends them with boto3
(client-side validation off) as the root or as alice, and every answer must
be a success whose parsed output has what the model requires, or an error
the model lists for the action (or one STS gives to any action). Every
request is on record, and the ledger still replays and verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keyledger.store import Store

from faces import ACCOUNT, Served
from test_iam_fuzz import _problems, assert_listed

MODEL = botocore.session.get_session().get_service_model("sts")
SERVED = ("GetCallerIdentity", "AssumeRole")
#: errors STS may give any action (its "Common Errors"), as codes
COMMON = frozenset({"AccessDenied", "ValidationError", "InvalidClientTokenId", "SignatureDoesNotMatch",
                    "IncompleteSignature", "Throttling", "InvalidAction", "MissingAction"})
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fuzzed"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, "Action": "sts:AssumeRole"}]})


class World:
    def __init__(self, served: Served) -> None:
        self.served = served
        self.root = served.query_client("sts", served.root)
        self.alice = served.query_client("sts", served.alice)
        served.query_client("iam", served.root).create_role(RoleName="fuzzed", AssumeRolePolicyDocument=TRUST,
                                                            MaxSessionDuration=7200)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Served(tmp_path_factory.mktemp("sts-fuzz")) as served:
        yield World(served)


def _value(shape: Any, member: str) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "string":
        text = st.text(max_size=40)
        if member == "RoleArn":
            return st.sampled_from([ROLE, f"arn:aws:iam::{ACCOUNT}:role/nobody", f"arn:aws:iam::{ACCOUNT}:root"]) \
                | text
        if member in ("RoleSessionName", "ExternalId"):
            return st.sampled_from(["session-1", "x", "a" * 65]) | text
        if member == "Policy":
            return st.sampled_from([TRUST, "{}"]) | text
        return text
    if kind == "integer":
        return st.sampled_from([900, 3600, 7200, 43200]) | st.integers(-2, 50_000)
    if kind == "list":
        return st.lists(_value(shape.member, member), max_size=2)
    if kind == "structure":
        required = set(shape.required_members)
        members = {name: _value(s, name) for name, s in shape.members.items()}
        return st.fixed_dictionaries({n: s for n, s in members.items() if n in required},
                                     optional={n: s for n, s in members.items() if n not in required})
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"a shape type this test does not know: {kind}")


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(SERVED))
    operation = MODEL.operation_model(action)
    if action == "AssumeRole" and draw(st.booleans()):  # half the time only what a workload sends
        params = draw(st.fixed_dictionaries({"RoleArn": _value(operation.input_shape.members["RoleArn"], "RoleArn"),
                                             "RoleSessionName": st.sampled_from(["session-1", "job"])},
                                            optional={"DurationSeconds": st.sampled_from([900, 3600, 7200, 8000])}))
    else:
        params = draw(_value(operation.input_shape, action)) if operation.input_shape else {}
    return action, params


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_well_typed_sts_request_gets_a_listed_answer_and_a_record(world: World, data: st.DataObject) -> None:
    action, params = data.draw(requests())
    client = data.draw(st.sampled_from([world.root, world.alice]))
    operation = MODEL.operation_model(action)
    before = keyledger_head(world)
    try:
        answer = getattr(client, botocore.xform_name(action))(**params)
    except ClientError as exc:
        event(f"{action}: {assert_listed(exc, operation, COMMON, action, params)}")
    else:
        event(f"{action}: success")
        assert _problems(operation.output_shape, answer) == [], (action, params)
    assert keyledger_head(world) == before + 1, "every STS request is one record"


def keyledger_head(world: World) -> int:
    store = Store(str(world.served.keys_file.parent), readonly=True, create=False)
    try:
        return store.head().seq
    finally:
        store.close()


def test_the_fuzzed_ledger_replays_and_verifies(world: World) -> None:
    """After the property (file order): the log folds to the live tables."""
    world.served.assert_replays_and_verifies()
