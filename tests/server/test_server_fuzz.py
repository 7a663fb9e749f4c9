"""Fuzzing request bodies against a live server: random JSON, random bytes,
deep nesting, members of the wrong type, strings up to and past the body
cap. Every answer is a 200 or a 4xx AWS error (never a 500, never a hang),
and every one is in the log."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyledger import events as ev
from keyledger.server.app import MAX_BODY
from serverkit import Server

TARGETS = ["Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateRandom", "DescribeKey", "ListKeys",
           "CreateAlias", "CreateGrant", "PutKeyPolicy", "TagResource", "ListAliases", "Sign", "Frobnicate"]
MEMBERS = ["KeyId", "Plaintext", "CiphertextBlob", "EncryptionContext", "NumberOfBytes", "GrantTokens",
           "KeySpec", "Description", "Policy", "PolicyName", "AliasName", "TargetKeyId", "GranteePrincipal",
           "Operations", "Limit", "Marker", "Tags", "DestinationKeyId", "DryRun"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16)
requests_like = st.dictionaries(st.sampled_from(MEMBERS), json_values, max_size=6)
bodies = st.one_of(
    requests_like.map(json.dumps),  # wrong types in the right places (and NaN, which is not JSON)
    json_values.map(json.dumps),  # any JSON at all
    st.binary(max_size=300),  # not JSON
    st.integers(0, 4000).map(lambda n: "[" * n + "]" * n),  # deep nesting
    st.integers(0, 4000).map(lambda n: '{"KeyId": ' * n + '"k"' + "}" * n),
    st.sampled_from([100, 5000, 70_000, MAX_BODY - 20, MAX_BODY + 10]).map(  # huge strings, to the cap
        lambda n: json.dumps({"KeyId": "alias/x", "Plaintext": "QQ==", "Description": "d" * n})),
)


def logged(server: Server, request_id: str, start: int) -> bool:
    """A record with this request id, or a refusal summary that counted it."""
    if any(r.request_id == request_id for r in server.records(start)):
        return True
    server.flush()
    return any(isinstance(r.event, ev.UnauthenticatedRequestsRefused) and request_id in r.event.request_ids
               for r in server.records(start))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(target=st.sampled_from(TARGETS), body=bodies | st.binary(max_size=64).map(bytes.hex))
def test_any_body_gets_an_aws_answer_on_record(server: Server, target: str, body: Any) -> None:
    data = body if isinstance(body, bytes) else body.encode()
    before = server.head()
    status, headers, parsed = server.raw(f"TrentService.{target}", data)  # signed as alice
    assert status == 200 or 400 <= status < 500, (status, parsed)
    if status >= 400:  # (serverkit checks the error body's shape)
        assert parsed["__type"] != "KMSInternalException"
    assert logged(server, headers["x-amzn-requestid"], before)
