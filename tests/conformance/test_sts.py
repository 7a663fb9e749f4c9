"""STS GetCallerIdentity on `keyledger serve`: the query protocol, XML out,
the account, ARN and user id of the signing principal; an STS action not
served (AssumeRole is: tests/server/test_server_sts.py) or a bad signature
is STS's XML ErrorResponse, never KMS JSON."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


def sts(served: Any, key: Any, secret: str | None = None) -> Any:
    return boto3.client("sts", endpoint_url=served.url, region_name="us-east-1",
                        aws_access_key_id=key.access_key_id,
                        aws_secret_access_key=secret or key.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}))


def test_get_caller_identity_of_the_root(served: Any) -> None:
    identity = sts(served, served.root).get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == \
        ("111122223333", "arn:aws:iam::111122223333:root", "111122223333")


def test_get_caller_identity_of_a_user(served: Any) -> None:
    identity = sts(served, served.alice).get_caller_identity()
    assert identity["Account"] == "111122223333"
    assert identity["Arn"] == "arn:aws:iam::111122223333:user/alice"
    assert identity["UserId"].startswith("AIDA") and len(identity["UserId"]) == 21


def test_the_response_is_sts_xml(served: Any) -> None:
    client = sts(served, served.root)
    raw: dict[str, Any] = {}
    client.meta.events.register("after-call.sts", lambda http_response, **_: raw.update(
        body=http_response.content, type=http_response.headers.get("content-type")))
    client.get_caller_identity()
    assert raw["type"].startswith("text/xml")
    root = ElementTree.fromstring(raw["body"])
    assert root.tag == "{%s}GetCallerIdentityResponse" % NS["sts"]
    result = root.find("sts:GetCallerIdentityResult", NS)
    assert [child.tag.split("}")[1] for child in result] == ["Arn", "UserId", "Account"]
    assert root.find("sts:ResponseMetadata/sts:RequestId", NS).text


def test_other_sts_actions_get_an_xml_error(served: Any) -> None:
    with pytest.raises(ClientError) as info:
        sts(served, served.root).get_session_token()
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_bad_signature_gets_an_xml_error(served: Any) -> None:
    with pytest.raises(ClientError) as info:
        sts(served, served.root, secret="wrong" * 8).get_caller_identity()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unsigned_query_request_is_refused_in_xml(served: Any) -> None:
    url = urlsplit(served.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/", body="Action=GetCallerIdentity&Version=2011-06-15",
                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 403 and resp.getheader("content-type").startswith("text/xml")
    root = ElementTree.fromstring(body)
    assert root.find("sts:Error/sts:Code", NS).text == "MissingAuthenticationToken"


def test_kms_requests_still_get_json(served: Any) -> None:
    kms = boto3.client("kms", endpoint_url=served.url, region_name="us-east-1",
                       aws_access_key_id=served.root.access_key_id,
                       aws_secret_access_key=served.root.secret_access_key)
    assert kms.list_keys()["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"


def test_the_authorization_header_the_verifier_reads_routes_the_request(served: Any) -> None:
    """With two Authorization headers, STS or KMS is chosen by the first,
    the one SigV4 verifies. The route read the last: this request, whose
    first header is scoped to KMS, went to STS, which verified that header
    as STS's and answered in XML."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = "{}"
    request = AWSRequest(method="POST", url=served.url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(served.root.access_key_id, served.root.secret_access_key), "kms",
              "us-east-1").add_auth(request)
    signed = request.headers["Authorization"]
    url = urlsplit(served.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/", skip_accept_encoding=True)
    for name, value in request.headers.items():
        if name.lower() != "authorization":
            conn.putheader(name, value)
    conn.putheader("Authorization", signed)
    conn.putheader("Authorization", signed.replace("/kms/aws4_request", "/sts/aws4_request"))
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body.encode())
    resp = conn.getresponse()
    resp.read()
    assert resp.getheader("content-type") == "application/x-amz-json-1.1"  # KMS's answer, not STS's XML
