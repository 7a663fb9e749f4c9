"""The global condition keys of who is asking and from where, as IAM sets
them: aws:SourceIp (with the IpAddress / NotIpAddress operators),
aws:SecureTransport, aws:PrincipalType, aws:PrincipalAccount, aws:userid,
aws:username and aws:RequestedRegion. A request that came over no network
(the library, the CLI) has no aws:SourceIp or aws:SecureTransport, and is
decided as AWS decides a request without the key. Where a request came
from is on its records (CloudTrail's sourceIPAddress)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import keyledger
from keyledger import policy as authz
from keyledger.errors import AccessDeniedException, MalformedPolicyDocumentException
from keyledger.projections import cloudtrail
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def holds(operator: str, key: str, values: Any, context: dict[str, Any]) -> bool:
    policy = authz.parse(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Condition": {operator: {key: values}}}]}),
        key_policy=False)
    (statement,) = policy.statements
    return all(authz.condition_holds(c, context) for c in statement.conditions)


def test_ip_address_conditions() -> None:
    inside = {"aws:sourceip": "10.1.2.3"}
    outside = {"aws:sourceip": "192.168.0.9"}
    assert holds("IpAddress", "aws:SourceIp", "10.0.0.0/8", inside)
    assert not holds("IpAddress", "aws:SourceIp", "10.0.0.0/8", outside)
    assert holds("IpAddress", "aws:SourceIp", ["172.16.0.0/12", "192.168.0.9"], outside)  # a bare address
    assert holds("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", outside)
    assert not holds("NotIpAddress", "aws:SourceIp", ["10.0.0.0/8", "192.168.0.0/16"], outside)
    assert holds("IpAddress", "aws:SourceIp", "2001:db8::/32", {"aws:sourceip": "2001:db8::1"})
    assert not holds("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:sourceip": "2001:db8::1"})
    assert holds("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:sourceip": "::ffff:10.0.0.1"})  # v4-mapped
    assert not holds("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:sourceip": "not an address"})
    # no network, no key: IpAddress never holds, NotIpAddress always does (AWS's rule for a missing key)
    assert not holds("IpAddress", "aws:SourceIp", "0.0.0.0/0", {})
    assert holds("NotIpAddress", "aws:SourceIp", "0.0.0.0/0", {})
    assert holds("IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8", {})
    for bad in ("10.0.0.0/33", "example.com", "", "10.0.0.0/8/8"):
        with pytest.raises(MalformedPolicyDocumentException, match="IP addresses or CIDR ranges"):
            holds("IpAddress", "aws:SourceIp", bad, inside)


@given(address=st.ip_addresses(), network=st.ip_addresses().flatmap(
    lambda a: st.integers(0, a.max_prefixlen).map(lambda n: f"{a}/{n}")))
def test_ip_address_is_membership_and_not_ip_address_its_negation(address: Any, network: str) -> None:
    import ipaddress
    net = ipaddress.ip_network(network, strict=False)
    plain = getattr(address, "ipv4_mapped", None) or address  # ::ffff:a.b.c.d is the IPv4 address it maps
    member = plain.version == net.version and plain in net
    context = {"aws:sourceip": str(address)}
    assert holds("IpAddress", "aws:SourceIp", network, context) == member
    assert holds("NotIpAddress", "aws:SourceIp", network, context) == (not member)


def test_who_is_asking() -> None:
    def context(principal: str) -> dict[str, Any]:
        return authz.request_context(principal, NOW, region="eu-west-1")
    user = context(ALICE)
    assert (user["aws:principaltype"], user["aws:username"], user["aws:principalaccount"]) == ("User", "alice",
                                                                                                ACCOUNT)
    assert user["aws:userid"] == authz.unique_id(ALICE) and user["aws:requestedregion"] == "eu-west-1"
    root = context(ROOT)
    assert (root["aws:principaltype"], root["aws:userid"]) == ("Account", ACCOUNT) and "aws:username" not in root
    session = context(f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job")
    assert session["aws:principaltype"] == "AssumedRole" and "aws:username" not in session
    assert session["aws:userid"] == authz.unique_id(f"arn:aws:iam::{ACCOUNT}:role/app") + ":job"
    assert "aws:sourceip" not in user and "aws:securetransport" not in user  # no network
    over = authz.request_context(ALICE, NOW, source_ip="10.0.0.1", secure_transport=True)
    assert (over["aws:sourceip"], over["aws:securetransport"]) == ("10.0.0.1", True)
    assert user["aws:epochtime"] == int(NOW.timestamp()) and user["aws:principalisawsservice"] is False
    # AWS: aws:MultiFactorAuthPresent is absent for long-term credentials, false for a session without MFA
    assert "aws:multifactorauthpresent" not in user and session["aws:multifactorauthpresent"] is False
    for operator, value, expected in (("NumericLessThan", int(NOW.timestamp()) + 1, True),
                                      ("NumericGreaterThan", int(NOW.timestamp()), False),
                                      ("DateLessThan", "2100-01-01T00:00:00Z", True)):
        assert holds(operator, "aws:EpochTime", value, user) is expected, operator
    assert holds("BoolIfExists", "aws:MultiFactorAuthPresent", "false", session)
    assert not holds("Bool", "aws:MultiFactorAuthPresent", "false", user)


def key_policy(*extra: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": ["kms:Encrypt", "kms:Decrypt"],
         "Resource": "*"}, *extra]})


def test_a_key_usable_only_from_the_office_network_over_tls(kms: KeyLedger) -> None:
    kms.create_user("alice")
    office = {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
              "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
                            "Bool": {"aws:ViaAWSService": "false"}}}
    tls = {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    key = kms.create_key(policy=key_policy(office, tls), bypass_policy_lockout_safety_check=True) \
        .key_metadata.key_id
    alice = kms.as_caller(ALICE)
    at_office = alice.from_address("10.20.30.40", True)
    blob = at_office.encrypt(key, b"payroll").ciphertext_blob
    assert at_office.decrypt(blob).plaintext == b"payroll"
    assert alice.from_address("2001:db8::7", True).decrypt(blob).plaintext == b"payroll"
    with pytest.raises(AccessDeniedException, match="explicit deny in a resource-based policy"):
        alice.from_address("203.0.113.5", True).encrypt(key, b"x")  # from elsewhere
    with pytest.raises(AccessDeniedException):
        alice.from_address("10.20.30.40", False).decrypt(blob)  # at the office, but in the clear
    at_office.from_address("10.20.30.40", False).encrypt(key, b"x")  # (the TLS rule is Decrypt's only)
    with pytest.raises(AccessDeniedException):  # no network at all: no aws:SourceIp, so NotIpAddress holds
        alice.encrypt(key, b"x")


def test_the_records_say_where_a_request_came_from(kms: KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    kms.from_address("192.0.2.10", True).encrypt(key, b"x")
    with pytest.raises(AccessDeniedException):
        kms.as_caller(ALICE).from_address("192.0.2.11", False).encrypt(key, b"x")
    local, remote, refused = list(kms.store.records())[-3:]
    assert (remote.operation, remote.source) == ("Encrypt", "192.0.2.10")
    assert (refused.principal, refused.source) == (ALICE, "192.0.2.11")
    assert local.operation == "CreateKey" and not isinstance(local.source, str)  # the library: no network
    trail = [cloudtrail.render(r, region="us-east-1", account=ACCOUNT) for r in (local, remote, refused)]
    assert [t["sourceIPAddress"] for t in trail] == ["keyledger", "192.0.2.10", "192.0.2.11"]
