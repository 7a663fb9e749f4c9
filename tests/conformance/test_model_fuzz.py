"""Random, well-typed requests from botocore's model, through the library as
the CLI and the server call it.

hypothesis builds each request from the operation's input shape: enum
members draw from the enum (and sometimes not), KeyId-like members from the
world's real keys, aliases and ARNs (and garbage), blobs from a real
ciphertext (sometimes with a flipped bit) or random bytes, numbers around
the model's bounds; the caller is the root or a user with a limited,
conditional IAM policy. Whatever the request, the answer is a success with
the operation's output shape, or an error the model lists for the operation
(or one AWS answers to any), never another exception; and the ledger the
requests ran on still replays to its live state and verifies. The same
property runs through boto3 against a real `keyledger serve` of its own, and
for the parameter store against botocore's SSM model. Shapes here are
the installed botocore's, read apart from the vendored model the library uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keyledger
import kit
from faces import ROOT, LibraryFace, Served, ServerFace, World
from keyledger import audit
from keyledger.errors import KMSError
from keyledger.operations import request_kwargs
from keyledger.projections import replay
from keyledger.responses import to_aws
from keyledger.server import ssm


#: members keyledger refuses as unsupported by design (README, "Differences from AWS KMS")
DECLINED = frozenset({"Recipient", "XksKeyId"})
PARAMETER_NAMES = ["/app/db/password", "/app/db", "/app", "plain", "/aws/reference/secretsmanager/x",
                   "arn:aws:ssm:us-east-1:111122223333:parameter/app/db/password", "/app/db/password:1",
                   "/app/db/password:prod"]
SSM = botocore.session.get_session().get_service_model("ssm")._service_description  # noqa: SLF001


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    kms = keyledger.open(tmp_path_factory.mktemp("fuzz") / "ledger", create=True, durability="relaxed")
    world = World(LibraryFace(kms))
    world.signer = world.ok("CreateKey", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"})["KeyMetadata"][
        "KeyId"]
    world.mac = world.ok("CreateKey", {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"})["KeyMetadata"][
        "KeyId"]
    world.extra = _more_keys(world)
    # a second caller, allowed some things on some keys and under conditions: the refusals' paths
    alice = kms.create_user("alice").arn
    kms.put_principal_policy(alice, "some", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:Describe*",
                                       "kms:List*", "kms:CreateGrant", "kms:Sign", "kms:GenerateMac"],
         "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:EncryptionContext:a": "b"}}}]}))
    world.other = LibraryFace(kms.as_caller(alice))
    yield world
    kms.close()


def _more_keys(world: World) -> list[str]:
    """Keys in the other states and kinds a request may meet: RSA and ML-KEM
    encryption, key agreement, EXTERNAL waiting for its material, a
    multi-Region primary with a replica, and an AWS managed key."""
    made = [world.ok("CreateKey", {"KeySpec": spec, "KeyUsage": usage})["KeyMetadata"]["KeyId"]
            for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE"),
                                ("ECC_NIST_P256", "KEY_AGREEMENT"))]
    made.append(world.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"])
    primary = world.ok("CreateKey", {"MultiRegion": True})["KeyMetadata"]["KeyId"]
    replica = world.ok("ReplicateKey", {"KeyId": primary, "ReplicaRegion": "eu-west-1"})["ReplicaKeyMetadata"]["Arn"]
    made += [primary, replica, "alias/aws/ssm"]
    return made


def _flipped(blob: bytes, at: int) -> bytes:
    out = bytearray(blob)
    out[at % len(out)] ^= 1
    return bytes(out)


def _strategy(shape_name: str, member: str, world: World, depth: int = 0,
              shapes: dict[str, dict[str, Any]] = kit.SHAPES) -> st.SearchStrategy[Any]:
    shape = shapes[shape_name]
    kind = shape["type"]
    low = member.lower()

    def inner(name: str, of: str) -> st.SearchStrategy[Any]:
        return _strategy(name, of, world, depth + 1, shapes)

    if kind == "string":
        text = st.text(max_size=40)
        if "enum" in shape:
            return st.sampled_from(shape["enum"]) | text
        if shape_name == "KeyIdType" or low.endswith("keyid"):
            real = [world.key, world.arn(world.key), world.alias, world.disabled, world.pending, world.signer,
                    world.mac, "alias/none-such", f"arn:aws:kms:eu-west-1:111122223333:key/{world.key}",
                    *getattr(world, "extra", ())]
            return st.sampled_from(real) | text
        if "alias" in low:
            return st.sampled_from([world.alias, "alias/fuzz-a", "alias/fuzz-b", "alias/aws/s3"]) | text
        if "principal" in low:
            return st.sampled_from([ROOT, "arn:aws:iam::111122223333:user/fuzz", "rds.amazonaws.com"]) | text
        if low == "grantid":
            return st.sampled_from([world.grant_id, "0" * 64]) | text
        if low in ("name", "path", "names") or shape_name in ("PSParameterName", "PSParameterSelector"):
            return st.sampled_from(PARAMETER_NAMES) | text
        return text
    if kind in ("integer", "long"):
        bounds = [shape.get("min", 0), shape.get("max", 1024)]
        return st.sampled_from([b + d for b in bounds for d in (-1, 0, 1)]) | st.integers(-5, 5000)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.sampled_from([world.blob]) | st.builds(_flipped, st.just(world.blob), st.integers(0, 500)) | \
            st.binary(max_size=300)
    if kind == "timestamp":
        return st.integers(0, 2_000_000_000)
    if kind in ("double", "float"):
        return st.floats(0, 100)
    if kind == "list":
        return st.lists(inner(shape["member"]["shape"], member), max_size=3 if depth < 3 else 0)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), inner(shape["value"]["shape"], member),
                               max_size=3 if depth < 3 else 0)
    if kind == "structure":
        required = set(shape.get("required", ()))
        members = {name: inner(spec["shape"], name) for name, spec in shape["members"].items()
                   if name not in DECLINED}
        return st.fixed_dictionaries({n: s for n, s in members.items() if n in required},
                                     optional={n: s for n, s in members.items() if n not in required})
    raise AssertionError(f"a shape type this test does not know: {kind}")


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(kit.IMPLEMENTED))
    op = kit.RAW["operations"][operation]
    params = draw(_strategy(op["input"]["shape"], operation, world)) if "input" in op else {}
    return operation, params


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=st.data())
def test_any_well_typed_request_gets_a_listed_answer(fuzz_world: World, data: st.DataObject) -> None:
    operation, params = data.draw(requests(fuzz_world))
    face = data.draw(st.sampled_from([fuzz_world.face, fuzz_world.other]))  # the root, or a limited user
    outcome = face.call(operation, params)  # anything but a KMSError propagates and fails
    event(f"answer: {outcome.code or 'success'}")
    if outcome.response is None:
        assert outcome.code in kit.allowed_errors(operation), (operation, outcome)
    elif (shape := kit.output_shape(operation)) is not None:  # a success has the model's output shape
        assert kit.shape_problems(shape, outcome.response) == [], (operation, params)


@pytest.fixture(scope="module")
def served_fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same world behind a real `keyledger serve` of its own (SigV4 on), reached by boto3."""
    with Served(tmp_path_factory.mktemp("served-fuzz")) as served:
        world = World(ServerFace(served.url, served.root))
        world.signer = world.ok("CreateKey", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"})[
            "KeyMetadata"]["KeyId"]
        world.mac = world.ok("CreateKey", {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"})[
            "KeyMetadata"]["KeyId"]
        world.extra = _more_keys(world)
        world.other = ServerFace(served.url, served.alice)  # a user without any policy: refused
        yield world


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=st.data())
def test_any_well_typed_request_over_http_gets_a_listed_answer(served_fuzz_world: World,
                                                               data: st.DataObject) -> None:
    """The same property through boto3 (client-side validation off) and the
    server: the HTTP face decodes, signs, plans and encodes on its own."""
    operation, params = data.draw(requests(served_fuzz_world))
    face = data.draw(st.sampled_from([served_fuzz_world.face, served_fuzz_world.other]))
    outcome = face.call(operation, params)
    event(f"answer: {outcome.code or 'success'}")
    if outcome.response is None:
        assert outcome.code in kit.allowed_errors(operation), (operation, outcome)
        assert outcome.body is not None and outcome.body.get("__type") == outcome.code
    elif (shape := kit.output_shape(operation)) is not None:
        assert kit.shape_problems(shape, outcome.response) == [], (operation, params)


@st.composite
def ssm_requests(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(sorted(ssm.OPERATIONS)))
    params = draw(_strategy(SSM["operations"][operation]["input"]["shape"], operation, world,
                            shapes=SSM["shapes"]))
    return operation, params


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=st.data())
def test_any_well_typed_parameter_store_request_gets_a_listed_answer(fuzz_world: World,
                                                                       data: st.DataObject) -> None:
    """The same for the parameter store, against botocore's SSM model."""
    operation, params = data.draw(ssm_requests(fuzz_world))
    op = ssm.OPERATIONS[operation]
    try:
        to_aws(getattr(fuzz_world.face.kms.parameters, op.method)(**request_kwargs(op, kit.to_document(params))))
        event("answer: success")
    except KMSError as error:
        event(f"answer: {error.code}")
        listed = {e["shape"] for e in SSM["operations"][operation].get("errors", ())} | kit.COMMON_ERRORS
        assert error.code in listed, (operation, params, error)


def test_the_fuzzed_ledger_replays_and_verifies(fuzz_world: World) -> None:
    """Runs after the property (file order): whatever the requests did, the
    log folds to the live tables and its chain and tree verify."""
    kms = fuzz_world.face.kms
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
        assert report.ok, report.differences
        assert audit.verify(snap).ok
