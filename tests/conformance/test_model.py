"""Model-driven conformance: every implemented operation, through the
library and through `keyledger serve` with boto3.

(a) each response against its output shape; (b) each input constraint the
model declares, with AWS's exact exception and message; (c) each error an
operation answers is one the model lists for it (or one AWS answers to
any operation). New operations are picked up from `OPERATIONS`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import kit
from keyledger import commands as cmd

CASES = [case for op in kit.IMPLEMENTED for case in kit.constraint_cases(op, kit.static_baseline(op))]
#: answered with the model's errors for a store, cluster or proxy that does not exist (service/custom_key_stores.py)
NEVER_SUCCEED = {"ConnectCustomKeyStore", "DisconnectCustomKeyStore", "UpdateCustomKeyStore", "DeleteCustomKeyStore",
                 "CreateCustomKeyStore"}


def _check_error(operation: str, outcome: Any) -> None:
    assert outcome.code in kit.allowed_errors(operation), \
        f"{operation} answered {outcome.code}, which the model does not list for it: {outcome.message}"
    assert outcome.body is not None and outcome.body.get("__type") == outcome.code


# -- (a) responses ---------------------------------------------------------------------

@pytest.mark.parametrize("operation", kit.IMPLEMENTED)
def test_response_matches_the_output_shape(world: Any, operation: str) -> None:
    params = world.baseline(operation)
    outcome = world.face.call(operation, params)
    if outcome.response is None:
        _check_error(operation, outcome)
        if operation in NEVER_SUCCEED:
            pytest.skip(f"{operation} never succeeds in a ledger, which has no custom key stores")
        pytest.skip(f"no succeeding baseline request for {operation} yet: add one to World.baseline "
                    f"({outcome.code}: {outcome.message})")
    shape = kit.output_shape(operation)
    if shape is None:
        assert outcome.response == {}
        return
    assert kit.shape_problems(shape, outcome.response) == []


# -- (b) input constraints ----------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_input_constraint_is_refused_as_aws_refuses_it(world: Any, case: kit.Case) -> None:
    params = kit.static_baseline(case.operation)
    case.change(params)
    outcome = world.face.call(case.operation, params)
    assert (outcome.code, outcome.message) == ("ValidationException", case.message)


def test_the_baselines_break_no_constraint(world: Any) -> None:
    for operation in kit.IMPLEMENTED:
        outcome = world.face.call(operation, kit.static_baseline(operation))
        assert outcome.code != "ValidationException" or not outcome.message.startswith(
            ("1 validation error", "2 validation errors")), (operation, outcome)


def test_several_violations_are_joined_as_aws_joins_them(world: Any) -> None:
    outcome = world.face.call("CreateKey", {"KeySpec": "NOPE", "KeyUsage": "NEITHER"})
    assert outcome.code == "ValidationException"
    key_spec = kit.SHAPES["KeySpec"]["enum"]
    usage = kit.SHAPES["KeyUsageType"]["enum"]
    assert outcome.message == (
        "2 validation errors detected: "
        f"Value 'NOPE' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: "
        f"[{', '.join(key_spec)}]; "
        f"Value 'NEITHER' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: "
        f"[{', '.join(usage)}]")


# -- (c) errors ------------------------------------------------------------------------------

def _key_forms(world: Any) -> dict[str, str]:
    return {
        "missing key": "0000aaaa-0000-4000-8000-000000000000",
        "not a key id": "not-a-key",
        "alias name": world.alias,
        "alias ARN": f"arn:aws:kms:us-east-1:111122223333:{world.alias}",
        "key ARN of another region": f"arn:aws:kms:eu-west-1:111122223333:key/{world.key}",
        "disabled key": world.disabled,
        "key pending deletion": world.pending,
    }


@pytest.mark.parametrize("operation", kit.IMPLEMENTED)
def test_every_error_is_one_the_model_lists(world: Any, operation: str) -> None:
    members = kit.keyid_members(operation)
    if not members:
        pytest.skip("no KeyId member")
    for member, takes_alias in members.items():
        for form, value in _key_forms(world).items():
            params = world.baseline(operation) if operation in ("ReEncrypt", "Decrypt") else \
                {**kit.static_baseline(operation), **_good(world, operation)}
            params[member] = value
            outcome = world.face.call(operation, params)
            if outcome.response is not None:
                continue
            _check_error(operation, outcome)
            if outcome.code == "ValidationException":  # the rest of the request was refused first
                continue
            if form == "missing key" and member != "KeyId" or operation in ("Decrypt",) and member == "KeyId":
                continue
            if form.startswith("alias") and not takes_alias and operation not in cmd.ALIAS_OPERATIONS:
                assert (outcome.code, outcome.message) == ("NotFoundException", f"Invalid keyId '{value}'"), \
                    (operation, member, form)
            if form == "not a key id":
                assert (outcome.code, outcome.message) == ("NotFoundException", "Invalid keyId 'not-a-key'")
            if form == "missing key":
                assert (outcome.code, outcome.message) == (
                    "NotFoundException", f"Key 'arn:aws:kms:us-east-1:111122223333:key/{value}' does not exist")


def _good(world: Any, operation: str) -> dict[str, Any]:
    """The parts of a succeeding request that are not the key (a real ciphertext, ...)."""
    if operation == "RetireGrant":
        return {"GrantId": world.grant_id}
    return {k: v for k, v in world.baseline(operation).items() if k not in kit.keyid_members(operation)} \
        if operation in ("CreateGrant", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                         "PutKeyPolicy", "TagResource", "UntagResource", "UpdateKeyDescription",
                         "EnableKeyRotation", "GetKeyPolicy") else {}


def test_alias_acceptance_follows_the_model_documentation() -> None:
    """An operation whose KeyId documentation offers "alias name" takes
    aliases; one that says "Specify the key ID or key ARN" does not."""
    for operation in kit.RAW["operations"]:
        for member, takes_alias in kit.keyid_members(operation).items():
            doc = re.sub(r"<[^>]+>", "", kit.input_shape(operation)["members"][member].get("documentation", ""))
            if takes_alias:
                assert operation in cmd.ALIAS_OPERATIONS, (operation, member)
            elif "Specify the key ID or key ARN" in doc:
                assert operation not in cmd.ALIAS_OPERATIONS, (operation, member)


def test_the_faces_agree(library_world: Any, server_world: Any) -> None:
    """Same request, same answer (ids aside) from the library and the server."""
    def norm(world: Any, text: str | None) -> str | None:
        for value, name in ((world.key, "<key>"), (world.disabled, "<disabled>"), (world.pending, "<pending>"),
                            (world.alias, "<alias>")):
            text = text.replace(value, name) if text else text
        return text
    for operation in kit.IMPLEMENTED:
        for form in ("missing key", "not a key id", "alias name", "disabled key", "key pending deletion"):
            answers = []
            for world in (library_world, server_world):
                params = kit.static_baseline(operation)
                for member in kit.keyid_members(operation):
                    params[member] = _key_forms(world)[form]
                outcome = world.face.call(operation, params)
                answers.append((outcome.code, norm(world, outcome.message)))
            assert answers[0] == answers[1], (operation, form, answers)
