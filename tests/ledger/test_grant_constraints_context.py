"""Encryption-context grant constraints apply only where an encryption
context exists (issue 11): CreateGrant refuses Constraints with an operation
that takes none (Sign, Verify, GetPublicKey, GenerateMac, VerifyMac,
DeriveSharedSecret) and on an asymmetric or HMAC key; DescribeKey,
RetireGrant and CreateGrant may ride along on a constrained grant. A grant
without constraints for Sign works; and the policy evaluation fails closed
on a constrained grant for such an operation or key (one an older log could
hold), so no constraint can be bypassed by a context that is not there."""

from __future__ import annotations

from pathlib import Path

import keyledger
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import keyspecs
from keyledger import policy as authz
from keyledger.errors import AccessDeniedException, ValidationException

CONTEXT_FREE = ("Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret")
CONSTRAINT = {"EncryptionContextSubset": {"app": "billing"}}


@pytest.fixture
def kms(tmp_path: Path) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path, create=True, durability="relaxed")
    yield ledger
    ledger.close()


def refused(kms: keyledger.KeyLedger, call: object) -> str:
    with pytest.raises(ValidationException) as info:
        call()  # type: ignore[operator]
    record = list(kms.store.records())[-1]
    assert isinstance(record.event, ev.RequestDenied)
    assert (record.event.operation, record.event.error_code) == ("CreateGrant", "ValidationException")
    return info.value.message


def test_constraints_with_an_operation_without_context_are_refused(kms: keyledger.KeyLedger) -> None:
    signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    bob = kms.create_user("bob").arn
    for op in CONTEXT_FREE:
        message = refused(kms, lambda op=op: kms.create_grant(signer, bob, [op, "DescribeKey"],
                                                              constraints=CONSTRAINT))
        assert message == (f"Encryption context grant constraints are not supported for {op}: these "
                           "operations take no encryption context.")
    message = refused(kms, lambda: kms.create_grant(signer, bob, ["Sign", "Verify", "DescribeKey"],
                                                    constraints={"EncryptionContextEquals": {}}))
    assert "for Sign, Verify:" in message
    assert kms.list_grants(signer).grants == []


def test_a_constraint_value_has_at_most_384_characters(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    bob = kms.create_user("bob").arn
    for kind in ("EncryptionContextEquals", "EncryptionContextSubset"):
        message = refused(kms, lambda kind=kind: kms.create_grant(key, bob, ["Decrypt"],
                                                                  constraints={kind: {"app": "x" * 385}}))
        assert message == "The value of encryption context key 'app' in a grant constraint has 385 characters; " \
                          "the limit is 384."
    assert kms.list_grants(key).grants == []
    grant = kms.create_grant(key, bob, ["Decrypt"], constraints={"EncryptionContextEquals": {"app": "x" * 384}})
    assert [g.grant_id for g in kms.list_grants(key).grants] == [grant.grant_id]


def test_constraints_on_asymmetric_and_hmac_keys_are_refused(kms: keyledger.KeyLedger) -> None:
    rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    bob = kms.create_user("bob").arn
    assert refused(kms, lambda: kms.create_grant(rsa, bob, ["Encrypt", "Decrypt"], constraints=CONSTRAINT)) == \
        "Encryption context grant constraints are not supported with asymmetric KMS keys."
    assert refused(kms, lambda: kms.create_grant(mac, bob, ["DescribeKey"], constraints=CONSTRAINT)) == \
        "Encryption context grant constraints are not supported with HMAC KMS keys."
    kms.create_grant(rsa, bob, ["Encrypt", "Decrypt"])  # without constraints: fine


def test_what_a_constrained_grant_may_list_and_sign_without_constraints(kms: keyledger.KeyLedger) -> None:
    sym = kms.create_key().key_metadata.key_id
    signer = kms.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_metadata.key_id
    bob_arn = kms.create_user("bob").arn
    bob = kms.as_caller(bob_arn)
    kms.create_grant(sym, bob_arn, ["Encrypt", "Decrypt", "GenerateDataKey", "ReEncryptFrom", "ReEncryptTo",
                                    "GenerateDataKeyPair", "DescribeKey", "RetireGrant", "CreateGrant"],
                     constraints=CONSTRAINT)
    bob.encrypt(sym, b"m", encryption_context={"app": "billing"})
    bob.describe_key(sym)  # the constraint does not apply to DescribeKey
    with pytest.raises(AccessDeniedException):
        bob.encrypt(sym, b"m")
    # a grant for Sign without constraints works
    kms.create_grant(signer, bob_arn, ["Sign", "GetPublicKey"])
    bob.sign(signer, b"m", "RSASSA_PSS_SHA_256")
    bob.get_public_key(signer)


def grant(ops: tuple[str, ...], equals: dict[str, str] | None = None,
          subset: dict[str, str] | None = None) -> authz.Grant:
    return authz.Grant("g", "arn:aws:iam::111122223333:user/bob", ops, equals, subset)


def request(action: str, key_spec: str, encryption_context: dict[str, str] | None) -> authz.Request:
    return authz.Request("arn:aws:iam::111122223333:user/bob", f"kms:{action}", "arn:aws:kms:k", {
        "kms:keyspec": key_spec}, encryption_context)


@pytest.mark.parametrize("action", CONTEXT_FREE)
def test_a_constrained_grant_from_an_older_log_allows_nothing_without_context(action: str) -> None:
    """Such a grant cannot be made any more; one that exists fails closed,
    even with an empty constraint that an empty context would satisfy."""
    spec = "HMAC_256" if "Mac" in action else "ECC_NIST_P256"
    assert authz.grant_allows(grant((action,)), request(action, spec, None))
    for constraints in (({}, None), (None, {}), ({"app": "x"}, None), (None, {"app": "x"})):
        assert not authz.grant_allows(grant((action,), *constraints), request(action, spec, None))


def test_a_constrained_grant_on_an_rsa_key_allows_nothing() -> None:
    assert authz.grant_allows(grant(("Encrypt",)), request("Encrypt", "RSA_2048", {}))
    assert not authz.grant_allows(grant(("Encrypt",), None, {}), request("Encrypt", "RSA_2048", {}))
    # the same grant on a symmetric key: the empty subset is met
    assert authz.grant_allows(grant(("Encrypt",), None, {}), request("Encrypt", "SYMMETRIC_DEFAULT", {}))
    assert authz.grant_allows(grant(("DescribeKey",), {"a": "b"}), request("DescribeKey", "RSA_2048", None))


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.sampled_from(cmd.GRANT_OPERATIONS), min_size=1, max_size=6),
       kind=st.sampled_from(["EncryptionContextEquals", "EncryptionContextSubset"]))
def test_constraints_are_accepted_exactly_without_context_free_operations(ops: list[str], kind: str) -> None:
    """The pure check: constrained operations are accepted iff none of them
    is one that takes no encryption context."""
    allowed = not set(ops) & keyspecs.GRANT_OPERATIONS_WITHOUT_CONTEXT
    try:
        equals, subset, source_arn = cmd.check_grant_constraints({kind: {"k": "v"}}, ops)
    except ValidationException:
        assert not allowed
    else:
        assert allowed and (equals or subset) == {"k": "v"} and source_arn is None
    assert cmd.check_grant_constraints(None, ops) == (None, None, None)  # without constraints: any operations
    arn = "arn:aws:rds:us-east-1:111122223333:db:app"  # a SourceArn constraint allows any operations
    assert cmd.check_grant_constraints({"SourceArn": arn}, ops) == (None, None, arn)

