"""A model-driven property for the IAM actions `keyledger serve` answers:
hypothesis draws well-typed requests from botocore's IAM model (user
names, access key ids and policy documents from a real world, sometimes
garbage), sends them with boto3 (client-side validation off) as the root
or as a user without policies, and every answer must be a success whose
parsed output has what the model requires, or an error the model lists for
the action (or one IAM gives to any action). Afterwards the ledger still
replays to its live tables and verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from faces import Served

MODEL = botocore.session.get_session().get_service_model("iam")
SERVED = ("CreateUser", "GetUser", "ListUsers", "PutUserPolicy", "GetUserPolicy", "DeleteUserPolicy",
          "ListUserPolicies", "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "ListAccessKeys",
          "DeleteUser", "GetRole", "ListRoles", "DeleteRole", "CreateRole", "UpdateAssumeRolePolicy",
          "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies", "TagUser", "UntagUser",
          "ListUserTags", "TagRole", "UntagRole", "ListRoleTags", "UpdateRole", "UpdateRoleDescription",
          "GetAccessKeyLastUsed")
#: errors IAM may give any action (its "Common Errors"), as codes
COMMON = frozenset({"AccessDenied", "ValidationError", "InvalidClientTokenId", "SignatureDoesNotMatch",
                    "IncompleteSignature", "Throttling", "ServiceFailure", "InvalidAction"})
USERS = ["alice", "fuzz-a", "fuzz-b", "nobody"]
DOCUMENT = json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]})
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"}]})


class World:
    def __init__(self, served: Served) -> None:
        self.served = served
        self.root = served.query_client("iam", served.root)
        self.alice = served.query_client("iam", served.alice)
        self.root.create_user(UserName="fuzz-a")
        self.key_ids = [self.root.create_access_key(UserName="fuzz-a")["AccessKey"]["AccessKeyId"],
                        served.alice.access_key_id, "AKIAIOSFODNN7EXAMPLE"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Served(tmp_path_factory.mktemp("iam-fuzz")) as served:
        yield World(served)


def _value(shape: Any, member: str, world: World) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "string":
        text = st.text(max_size=40)
        if shape.enum:
            return st.sampled_from(shape.enum) | text
        if member in ("UserName", "RoleName"):
            return st.sampled_from(USERS) | text
        if member == "AccessKeyId":
            return st.sampled_from(world.key_ids) | text
        if member in ("PolicyDocument", "AssumeRolePolicyDocument"):  # an identity or a trust policy
            return st.sampled_from([DOCUMENT, TRUST, "{}", "not json"]) | text
        if member == "PolicyName":
            return st.sampled_from(["kms-use", "other"]) | text
        if member in ("Marker", "Path", "PathPrefix"):
            return st.sampled_from(["/", "1", "zz"]) | text
        return text
    if kind == "integer":
        return st.integers(-2, 1002)
    if kind == "boolean":
        return st.booleans()
    if kind == "list":
        return st.lists(_value(shape.member, member, world), max_size=2)
    if kind == "structure":
        required = set(shape.required_members)
        members = {name: _value(s, name, world) for name, s in shape.members.items()}
        return st.fixed_dictionaries({n: s for n, s in members.items() if n in required},
                                     optional={n: s for n, s in members.items() if n not in required})
    raise AssertionError(f"a shape type this test does not know: {kind}")


def assert_listed(exc: ClientError, operation: Any, common: frozenset[str], action: str, params: Any) -> str:
    """A refusal's code is one the model lists for the operation (or one of the
    service's common errors), and never a server error; returns the code."""
    code = exc.response["Error"]["Code"]
    listed = {e.error_code for e in operation.error_shapes} | common
    assert code in listed, (action, params, code, exc.response["Error"].get("Message"))
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] < 500, (action, params)
    return str(code)


def _problems(shape: Any, value: Any, path: str = "$") -> list[str]:
    """What in a parsed answer the model's output shape does not allow."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not a structure"]
        out = [f"{path}.{name}: required, missing" for name in shape.required_members if name not in value]
        for name, item in value.items():
            if name == "ResponseMetadata":
                continue
            if name not in shape.members:
                out.append(f"{path}.{name}: not in the model")
            elif shape.members[name].name == "policyDocumentType" and isinstance(item, dict):
                continue  # botocore decodes IAM's URL-quoted policy documents into JSON (handlers.py)
            else:
                out += _problems(shape.members[name], item, f"{path}.{name}")
        return out
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, item in enumerate(value) for p in _problems(shape.member, item, f"{path}[{i}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} not in the enum"]
        return []
    if kind == "timestamp":
        return [] if isinstance(value, datetime) else [f"{path}: not a timestamp"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: not a boolean"]
    return []


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(SERVED))
    operation = MODEL.operation_model(action)
    params = draw(_value(operation.input_shape, action, world)) if operation.input_shape else {}
    return action, params


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_well_typed_iam_request_gets_a_listed_answer(world: World, data: st.DataObject) -> None:
    action, params = data.draw(requests(world))
    client = data.draw(st.sampled_from([world.root, world.alice]))
    operation = MODEL.operation_model(action)
    method = getattr(client, botocore.xform_name(action))
    try:
        answer = method(**params)
    except ClientError as exc:
        event(f"answer: {assert_listed(exc, operation, COMMON, action, params)}")
        return
    event("answer: success")
    if operation.output_shape is not None:
        problems = _problems(operation.output_shape, answer)
        if client is world.root and "UserName" not in params:
            # the account root is no user: IAM answers it with no UserName (nor Path, for GetUser),
            # though the model requires them (tests/server/test_server_iam.py)
            problems = [p for p in problems if not p.endswith(("UserName: required, missing",
                                                               "Path: required, missing"))]
        assert problems == [], (action, params)


def test_the_fuzzed_ledger_replays_and_verifies(world: World) -> None:
    """After the property (file order): the log folds to the live tables."""
    world.served.assert_replays_and_verifies()
