"""The parameter store (SSM Parameter Store semantics) through a real ledger:
types and versions, names and limits in SSM's words, selectors and labels,
paths and paging, SecureString encryption by the ledger's own Encrypt with
SSM's context through the service (kms:ViaService) and authorization as
AWS does it (ssm:* on the parameter's ARN and kms:Decrypt on the key),
every call on record, replay equal to the live tables, checkpoints of the
old and the new state digest, and no SecureString value in the raw files."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import audit, crypto
from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger import parameters as ps
from keyledger.errors import AccessDeniedException, ValidationException
from keyledger.projections import TABLES, digest, merkle, replay

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "111122223333"
SSM = "ssm.us-east-1.amazonaws.com"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock) as service:
        yield service


def records(kms) -> list[ev.Record]:
    return list(kms.store.records())


def arn(name: str) -> str:
    return f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/{name.lstrip('/')}"


def user(kms, name: str, *statements: dict) -> keyledger.KeyLedger:
    principal = kms.create_user(name).arn
    kms.put_principal_policy(principal, "p", json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return kms.as_caller(principal)


# -- types, versions, selectors ------------------------------------------------------------

def test_string_stringlist_and_securestring(kms) -> None:
    p = kms.parameters
    assert p.put_parameter("/app/prod/url", "https://db", type="String").version == 1
    assert p.put_parameter("/app/prod/hosts", "a,b,c", type="StringList", description="hosts").version == 1
    assert p.put_parameter("/app/prod/db-password", "hunter2-secret", type="SecureString").tier == "Standard"
    got = p.get_parameter("/app/prod/url").parameter
    assert (got.name, got.type, got.value, got.version, got.arn, got.data_type) == \
        ("/app/prod/url", "String", "https://db", 1, arn("/app/prod/url"), "text")
    assert p.get_parameter("/app/prod/hosts").parameter.value == "a,b,c"
    secret = p.get_parameter("/app/prod/db-password", with_decryption=True).parameter
    assert secret.value == "hunter2-secret" and "hunter2" not in repr(secret)
    hidden = p.get_parameter("/app/prod/db-password").parameter.value  # SSM answers the ciphertext
    blob = base64.b64decode(hidden)
    assert b"hunter2" not in blob
    # the ciphertext is the ledger's own, under alias/aws/ssm, bound to SSM's context
    key_id = kms.describe_key("alias/aws/ssm").key_metadata.key_id
    via = kms.via_service(SSM)
    assert via.decrypt(blob, encryption_context={"PARAMETER_ARN": arn("/app/prod/db-password")}).plaintext \
        == b"hunter2-secret"
    with pytest.raises(keyledger.errors.InvalidCiphertextException):
        via.decrypt(blob, encryption_context={"PARAMETER_ARN": arn("/app/prod/other")})
    with pytest.raises(AccessDeniedException):  # the managed key is usable only through SSM
        kms.decrypt(blob, encryption_context={"PARAMETER_ARN": arn("/app/prod/db-password")})
    meta = {m.name: m for m in p.describe_parameters().parameters}
    assert meta["/app/prod/db-password"].key_id == "alias/aws/ssm" and meta["/app/prod/url"].key_id is None
    assert meta["/app/prod/hosts"].description == "hosts"
    put = [r.event for r in records(kms) if isinstance(r.event, ev.ParameterPut)]
    assert [e.key_id for e in put if e.parameter_type == "SecureString"] == [key_id]


def test_a_customer_key_and_an_alias(kms) -> None:
    key = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/params", key)
    p = kms.parameters
    p.put_parameter("/a", "v1-secret-value", type="SecureString", key_id="alias/params")
    p.put_parameter("/b", "v2-secret-value", type="SecureString", key_id=key)
    assert p.get_parameters(["/a", "/b", "/nope"], with_decryption=True).invalid_parameters == ["/nope"]
    assert {m.name: m.key_id for m in p.describe_parameters().parameters} == {"/a": "alias/params", "/b": key}
    encrypts = [r.event for r in records(kms) if isinstance(r.event, ev.Encrypted)]
    assert [e.key_id for e in encrypts] == [key, key] and all(e.via_service == SSM for e in encrypts)
    assert encrypts[0].encryption_context == {"PARAMETER_ARN": arn("/a")}


def test_versions_overwrite_and_selectors(kms) -> None:
    p = kms.parameters
    p.put_parameter("/svc/token", "first-value", type="SecureString")
    with pytest.raises(ps.ParameterAlreadyExists) as exc:
        p.put_parameter("/svc/token", "second-value")
    assert exc.value.message == ps.ALREADY_EXISTS
    assert p.put_parameter("/svc/token", "second-value", overwrite=True).version == 2  # the type is kept
    assert p.get_parameter("/svc/token", with_decryption=True).parameter.value == "second-value"
    old = p.get_parameter("/svc/token:1", with_decryption=True).parameter
    assert (old.value, old.version, old.selector, old.name) == ("first-value", 1, ":1", "/svc/token")
    p.label_parameter_version("/svc/token", ["stable"], parameter_version=1)
    assert p.get_parameter("/svc/token:stable", with_decryption=True).parameter.value == "first-value"
    with pytest.raises(ps.ParameterVersionNotFound):
        p.get_parameter("/svc/token:7")
    with pytest.raises(ps.ParameterNotFound) as missing:
        p.get_parameter("/svc/none")
    assert missing.value.message == ""
    assert p.get_parameters(["/svc/token:9", "/svc/token:stable"]).invalid_parameters == ["/svc/token:9"]
    history = p.get_parameter_history("/svc/token", with_decryption=True).parameters
    assert [(h.version, h.value, h.labels, h.key_id) for h in history] == \
        [(1, "first-value", ["stable"], "alias/aws/ssm"), (2, "second-value", [], "alias/aws/ssm")]
    assert history[0].last_modified_user == f"arn:aws:iam::{ACCOUNT}:root"
    # an overwrite may change the type; a String keeps no key
    p.put_parameter("/svc/token", "now-plain", type="String", overwrite=True)
    assert p.get_parameter("/svc/token").parameter.value == "now-plain"


def test_labels_move_and_are_checked(kms) -> None:
    p = kms.parameters
    for i in range(3):
        p.put_parameter("/l", f"v{i}", type="String", overwrite=i > 0)
    result = p.label_parameter_version("/l", ["prod", "1st", "awsy", "ssmx", "bad label", "ok.v-1_"],
                                       parameter_version=1)
    assert result.invalid_labels == ["1st", "awsy", "ssmx", "bad label"] and result.parameter_version == 1
    assert p.label_parameter_version("/l", ["prod"]).parameter_version == 3  # moved to the latest
    labels = {h.version: h.labels for h in p.get_parameter_history("/l").parameters}
    assert labels == {1: ["ok.v-1_"], 2: [], 3: ["prod"]}
    p.label_parameter_version("/l", [f"l{i}" for i in range(9)])
    with pytest.raises(ps.ParameterVersionLabelLimitExceeded):
        p.label_parameter_version("/l", ["one-more"])
    with pytest.raises(ps.ParameterVersionNotFound):
        p.label_parameter_version("/l", ["x"], parameter_version=9)
    with pytest.raises(ValidationException):
        p.label_parameter_version("/l", ["x" * 101])


def test_unlabel(kms) -> None:
    p = kms.parameters
    p.put_parameter("/u", "v1", type="String")
    p.put_parameter("/u", "v2", overwrite=True)
    p.label_parameter_version("/u", ["prod", "stable"], parameter_version=1)
    p.label_parameter_version("/u", ["next"], parameter_version=2)
    out = p.unlabel_parameter_version("/u", 1, ["prod", "missing", "next", "prod"])
    assert (out.removed_labels, out.invalid_labels) == (["prod"], ["missing", "next"])  # "next" is on version 2
    labels = {h.version: h.labels for h in p.get_parameter_history("/u").parameters}
    assert labels == {1: ["stable"], 2: ["next"]}
    with pytest.raises(ps.ParameterVersionNotFound):
        p.get_parameter("/u:prod")
    assert p.get_parameter("/u:stable").parameter.version == 1
    nothing = p.unlabel_parameter_version("/u", 1, ["missing"])
    assert (nothing.removed_labels, nothing.invalid_labels) == ([], ["missing"])
    with pytest.raises(ps.ParameterVersionNotFound, match="could not find version 9 of /u"):
        p.unlabel_parameter_version("/u", 9, ["stable"])
    with pytest.raises(ps.ParameterNotFound):
        p.unlabel_parameter_version("/nope", 1, ["stable"])
    for bad in ([], ["x"] * 11, ["x" * 101]):
        with pytest.raises(ValidationException):
            p.unlabel_parameter_version("/u", 1, bad)
    unlabeled = [r.event for r in records(kms) if isinstance(r.event, ev.ParameterUnlabeled)]
    assert [(e.name, e.version, e.labels) for e in unlabeled] == [("/u", 1, ["prod"]), ("/u", 1, [])]


def test_tags(kms) -> None:
    p = kms.parameters
    p.put_parameter("/t", "v", type="String", tags=[{"Key": "env", "Value": "dev"}])
    p.add_tags_to_resource("Parameter", "/t", [{"Key": "team", "Value": "core"}, {"Key": "env", "Value": "prod"}])
    listed = p.list_tags_for_resource("Parameter", "/t").tag_list
    assert [(t.key, t.value) for t in listed] == [("env", "prod"), ("team", "core")]
    assert [m.name for m in p.describe_parameters(
        parameter_filters=[{"Key": "tag:team", "Values": ["core"]}]).parameters] == ["/t"]
    p.remove_tags_from_resource("Parameter", "/t", ["team", "absent"])
    assert [(t.key, t.value) for t in p.list_tags_for_resource("Parameter", "/t").tag_list] == [("env", "prod")]
    assert p.describe_parameters(parameter_filters=[{"Key": "tag:team", "Values": ["core"]}]).parameters == []
    p.put_parameter("/t", "v2", overwrite=True)  # a new version keeps the tags
    assert [t.key for t in p.list_tags_for_resource("Parameter", "/t").tag_list] == ["env"]
    with pytest.raises(ps.InvalidResourceId):
        p.list_tags_for_resource("Parameter", "/nope")
    with pytest.raises(ps.InvalidResourceId):
        p.add_tags_to_resource("Parameter", "not a name!", [{"Key": "a", "Value": "b"}])
    with pytest.raises(ps.InvalidResourceType, match="parameters only, not Document"):
        p.add_tags_to_resource("Document", "/t", [{"Key": "a", "Value": "b"}])
    with pytest.raises(ValidationException, match="enum value set"):
        p.list_tags_for_resource("Bucket", "/t")
    p.add_tags_to_resource("Parameter", "/t", [{"Key": f"k{i}", "Value": "v"} for i in range(49)])
    with pytest.raises(ps.TooManyTagsError):
        p.add_tags_to_resource("Parameter", "/t", [{"Key": "one-more", "Value": "v"}])
    p.add_tags_to_resource("Parameter", "/t", [{"Key": "k0", "Value": "overwritten"}])  # 50 still
    for bad in ([{"Key": "aws:x", "Value": "v"}], [{"Key": "", "Value": "v"}], [{"Key": "k" * 129, "Value": "v"}],
                [{"Key": "a", "Value": "v" * 257}], [{"Key": "a*b", "Value": "v"}], [{"Key": "a"}], []):
        with pytest.raises(ValidationException):
            p.add_tags_to_resource("Parameter", "/t", bad)
    with pytest.raises(ValidationException):
        p.put_parameter("/t2", "v", type="String", tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    with pytest.raises(ValidationException):
        p.put_parameter("/t2", "v", type="String", tags=[{"Key": "aws:reserved", "Value": "v"}])
    assert len(p.list_tags_for_resource("Parameter", "t").tag_list) == 50  # a root-level name either way
    p.delete_parameter("/t")
    p.put_parameter("/t", "again", type="String")
    assert p.list_tags_for_resource("Parameter", "/t").tag_list == []  # a deleted parameter's tags go with it
    log = records(kms)
    kinds = [type(r.event).__name__ for r in log if r.operation.endswith("Resource")]
    assert "ParameterTagged" in kinds and "ParameterUntagged" in kinds and "ParametersRead" in kinds
    denied = [r.event for r in log if isinstance(r.event, ev.RequestDenied)]
    assert {"InvalidResourceId", "InvalidResourceType", "TooManyTagsError"} <= {e.error_code for e in denied}


def test_tag_and_unlabel_authorization(kms) -> None:
    kms.parameters.put_parameter("/app/x", "v", type="String")
    kms.parameters.label_parameter_version("/app/x", ["live"])
    tagger = user(kms, "tagger", {"Effect": "Allow", "Action": ["ssm:AddTagsToResource", "ssm:ListTagsForResource"],
                                  "Resource": arn("/app/x")})
    tagger.parameters.add_tags_to_resource("Parameter", "/app/x", [{"Key": "a", "Value": "b"}])
    assert len(tagger.parameters.list_tags_for_resource("Parameter", "/app/x").tag_list) == 1
    for call in (lambda: tagger.parameters.remove_tags_from_resource("Parameter", "/app/x", ["a"]),
                 lambda: tagger.parameters.unlabel_parameter_version("/app/x", 1, ["live"])):
        with pytest.raises(AccessDeniedException, match="ssm:(RemoveTagsFromResource|UnlabelParameterVersion) on "
                                                        "resource: " + arn("/app/x")):
            call()
    assert kms.parameters.get_parameter("/app/x:live").parameter.version == 1  # nothing changed
    putter = user(kms, "putter", {"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": arn("/app/*")})
    putter.parameters.put_parameter("/app/plain", "v", type="String")
    with pytest.raises(AccessDeniedException, match="ssm:AddTagsToResource on resource: " + arn("/app/tagged")):
        putter.parameters.put_parameter("/app/tagged", "v", type="String", tags=[{"Key": "a", "Value": "b"}])
    with pytest.raises(ps.ParameterNotFound):
        kms.parameters.get_parameter("/app/tagged")


def test_a_hundred_versions(kms) -> None:
    p = kms.parameters
    for i in range(100):
        p.put_parameter("/v", f"value {i}", type="String", overwrite=True)
    p.label_parameter_version("/v", ["oldest"], parameter_version=1)
    with pytest.raises(ps.ParameterMaxVersionLimitExceeded) as exc:
        p.put_parameter("/v", "value 100", overwrite=True)
    assert "Version 1, the oldest version, can't be deleted" in exc.value.message
    p.label_parameter_version("/v", ["oldest"], parameter_version=2)  # move the label away: 1 may go
    assert p.put_parameter("/v", "value 100", overwrite=True).version == 101
    history = p.get_parameter_history("/v").parameters
    assert len(history) == 50 and history[0].version == 2 and history[0].labels == ["oldest"]  # a page
    with pytest.raises(ps.ParameterVersionNotFound):
        p.get_parameter("/v:1")
    with pytest.raises(ps.ParameterMaxVersionLimitExceeded) as exc:  # now version 2 is the labeled oldest
        p.put_parameter("/v", "value 101", overwrite=True)
    assert "Version 2, the oldest version" in exc.value.message
    page = p.get_parameter_history("/v", max_results=30)
    assert len(page.parameters) == 30 and page.next_token is not None
    rest = p.get_parameter_history("/v", max_results=50, next_token=page.next_token)
    assert [h.version for h in rest.parameters] == list(range(32, 82)) and rest.next_token is not None


# -- names and limits, in SSM's words ------------------------------------------------

@pytest.mark.parametrize(("name", "error", "message"), [
    ("aws-thing", ValidationException, 'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive).'),
    ("SSMx", ValidationException, 'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive).'),
    ("/ssm/x", ValidationException, "If formed as a path"),
    ("/aws/service/x", AccessDeniedException, "No access to reserved parameter name: /aws/service/x."),
    ("/app/has space", ValidationException, "If formed as a path"),
    ("/app//double", ValidationException, "If formed as a path"),
    ("app/prod/x", ValidationException, "Parameter name must be a fully qualified name."),
    ("/" + "/".join(f"l{i}" for i in range(16)), ps.HierarchyLevelLimitExceededException,
     "A hierarchy can have a maximum of 15 levels."),
    ("/" + "n" * 1011, ValidationException, "less than or equal to 1011"),
])
def test_names_as_ssm_has_them(kms, name, error, message) -> None:
    with pytest.raises(error) as exc:
        kms.parameters.put_parameter(name, "v", type="String")
    assert message in exc.value.message


def test_fifteen_levels_and_plain_names_are_fine(kms) -> None:
    p = kms.parameters
    deep = "/" + "/".join(f"l{i}" for i in range(15))
    assert p.put_parameter(deep, "v", type="String").version == 1
    assert p.put_parameter("  plain-name.v_1  ", "v", type="String").version == 1  # spaces around are removed
    assert p.get_parameter("plain-name.v_1").parameter.arn == arn("plain-name.v_1")


def test_a_root_level_name_with_or_without_its_slash_is_one_parameter(kms) -> None:
    """As in SSM: `x` and `/x` name one parameter (one ARN); a read answers
    the name as it was asked for, a write goes to the parameter there is."""
    p = kms.parameters
    p.put_parameter("param-x", "123", type="String")
    got = p.get_parameter("/param-x").parameter
    assert (got.name, got.value, got.arn) == ("/param-x", "123", arn("param-x"))
    both = p.get_parameters(["/param-x", "param-x"])
    assert [(q.name, q.value) for q in both.parameters] == [("/param-x", "123"), ("param-x", "123")]
    assert both.invalid_parameters == []
    with pytest.raises(ps.ParameterAlreadyExists):
        p.put_parameter("/param-x", "456", type="String")
    assert p.put_parameter("/param-x", "456", overwrite=True).version == 2
    assert [h.value for h in p.get_parameter_history("param-x").parameters] == ["123", "456"]
    p.label_parameter_version("/param-x", ["prod"])
    assert p.get_parameter("param-x:prod").parameter.value == "456"
    assert [q.name for q in p.describe_parameters().parameters] == ["param-x"]
    p.delete_parameter("/param-x")
    with pytest.raises(ps.ParameterNotFound):
        p.get_parameter("param-x")
    # a path's name has one spelling
    p.put_parameter("/app/x", "v", type="String")
    with pytest.raises(ValidationException, match="sub-paths divided by slash symbol"):
        p.get_parameter("app/x")


def test_reads_take_the_parameters_arn(kms) -> None:
    """GetParameter, GetParameters and GetParameterHistory take a parameter's
    ARN for its name (a root-level one answers without its slash, as AWS
    does); an ARN of another account or region names nothing here."""
    p = kms.parameters
    p.put_parameter("/test/param-x", "1", type="String")
    p.put_parameter("/test/param-x", "2", type="String", overwrite=True)
    p.put_parameter("rooted", "r", type="String")
    got = p.get_parameter(arn("/test/param-x")).parameter
    assert (got.name, got.value, got.arn) == ("/test/param-x", "2", arn("/test/param-x"))
    assert p.get_parameter(arn("/test/param-x") + ":1").parameter.value == "1"
    assert p.get_parameter(arn("rooted")).parameter.name == "rooted"
    foreign = "arn:aws:ssm:us-east-1:999999999999:parameter/test/param-x"
    listed = p.get_parameters([arn("/test/param-x"), arn("/test/missing"), foreign])
    assert [q.name for q in listed.parameters] == ["/test/param-x"]
    assert listed.invalid_parameters == [arn("/test/missing"), foreign]
    assert [h.version for h in p.get_parameter_history(arn("/test/param-x")).parameters] == [1, 2]
    with pytest.raises(ps.ParameterNotFound):
        p.get_parameter(f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/test/param-x")
    with pytest.raises(ValidationException):  # writes take only names, as AWS's documentation says
        p.delete_parameter(arn("/test/param-x"))


def test_values_and_other_members(kms) -> None:
    p = kms.parameters
    with pytest.raises(ValidationException) as exc:
        p.put_parameter("/big", "x" * 4097, type="SecureString")
    assert exc.value.message.startswith("Standard tier parameters support a maximum parameter value of 4096")
    assert p.put_parameter("/big", "x" * 4096, type="SecureString").version == 1
    with pytest.raises(ValidationException):
        p.put_parameter("/empty", "", type="String")
    with pytest.raises(ValidationException) as exc:
        p.put_parameter("/new", "v")
    assert exc.value.message == "A parameter type is required when you create a parameter."
    with pytest.raises(ValidationException) as exc:
        p.put_parameter("/k", "v", type="String", key_id="alias/aws/ssm")
    assert exc.value.message == "KeyId is required for SecureString type parameter only."
    with pytest.raises(ValidationException) as exc:
        p.put_parameter("/t", "v", type="Text")
    assert "Member must satisfy enum value set: [SecureString, StringList, String]" in exc.value.message
    with pytest.raises(ValidationException) as exc:
        p.put_parameter("/digits", "12a", type="SecureString", allowed_pattern=r"^\d+$")
    assert exc.value.message == r"Parameter value, cannot be validated against allowedPattern: ^\d+$"
    assert "12a" not in str(exc.value)
    p.put_parameter("/digits", "123", type="String", allowed_pattern=r"^\d+$")
    with pytest.raises(ValidationException):  # the pattern stays with the parameter
        p.put_parameter("/digits", "abc", overwrite=True)
    with pytest.raises(ps.InvalidAllowedPatternException):
        p.put_parameter("/p", "v", type="String", allowed_pattern="([")
    with pytest.raises(ValidationException):
        p.put_parameter("/tagged", "v", type="String", overwrite=True, tags=[{"Key": "a", "Value": "b"}])
    with pytest.raises(ValidationException):
        p.put_parameter("/adv", "v", type="String", tier="Advanced")
    assert p.put_parameter("/it", "v", type="String", tier="Intelligent-Tiering").tier == "Standard"


def test_key_errors_are_wrapped_as_ssm_does(kms) -> None:
    p = kms.parameters
    with pytest.raises(ps.InvalidKeyId) as exc:
        p.put_parameter("/x", "secret-value", type="SecureString", key_id="alias/none")
    assert exc.value.message.startswith("Alias arn:aws:kms:us-east-1:111122223333:alias/none is not found. "
                                        "(Service: AWSKMS; Status Code: 400; Error Code: NotFoundException;")
    key = kms.create_key().key_metadata.key_id
    p.put_parameter("/y", "secret-value", type="SecureString", key_id=key)
    kms.disable_key(key)
    with pytest.raises(ps.InvalidKeyId) as exc:
        p.get_parameter("/y", with_decryption=True)
    assert "Error Code: DisabledException" in exc.value.message
    assert p.get_parameter("/y").parameter.version == 1  # without decryption the key is not used
    denied = [r for r in records(kms) if isinstance(r.event, ev.RequestDenied)]
    assert [(r.operation, r.event.error_code) for r in denied[-2:]] == \
        [("Decrypt", "DisabledException"), ("GetParameter", "InvalidKeyId")]
    assert denied[-1].request_id == denied[-2].request_id


# -- paths, paging, filters -------------------------------------------------------

def test_get_parameters_by_path(kms) -> None:
    p = kms.parameters
    names = ["/app/a", "/app/b", "/app/c", "/app/sub/d", "/app/sub/deeper/e", "/apple/x", "/other/f", "flat"]
    for n in names:
        p.put_parameter(n, f"value of {n}", type="SecureString" if n.endswith("d") else "String")
    one = p.get_parameters_by_path("/app")
    assert [x.name for x in one.parameters] == ["/app/a", "/app/b", "/app/c"] and one.next_token is None
    deep = p.get_parameters_by_path("/app/", recursive=True, with_decryption=True)
    assert [x.name for x in deep.parameters] == ["/app/a", "/app/b", "/app/c", "/app/sub/d", "/app/sub/deeper/e"]
    assert deep.parameters[3].value == "value of /app/sub/d"
    seen, token = [], None
    while True:
        page = p.get_parameters_by_path("/app", recursive=True, max_results=2, next_token=token)
        assert len(page.parameters) <= 2
        seen += [x.name for x in page.parameters]
        token = page.next_token
        if token is None:
            break
    assert seen == [x.name for x in deep.parameters]
    assert [x.name for x in p.get_parameters_by_path("/", recursive=True).parameters] == sorted(names[:-1])
    only = p.get_parameters_by_path("/app", recursive=True,
                                    parameter_filters=[{"Key": "Type", "Values": ["SecureString"]}])
    assert [x.name for x in only.parameters] == ["/app/sub/d"]
    with pytest.raises(ps.InvalidNextToken):
        p.get_parameters_by_path("/app", next_token="not-a-token!")
    with pytest.raises(ValidationException):
        p.get_parameters_by_path("/app", max_results=11)
    with pytest.raises(ValidationException):
        p.get_parameters_by_path("app")
    with pytest.raises(ps.InvalidFilterKey):
        p.get_parameters_by_path("/app", parameter_filters=[{"Key": "Name", "Values": ["x"]}])


def test_describe_parameters(kms) -> None:
    p = kms.parameters
    for i in range(12):
        p.put_parameter(f"/d/p{i:02d}", "v", type="SecureString" if i % 2 else "String",
                        tags=[{"Key": "team", "Value": "blue" if i < 4 else "red"}])
    first = p.describe_parameters()
    assert len(first.parameters) == 10 and first.next_token is not None
    rest = p.describe_parameters(next_token=first.next_token)
    assert [m.name for m in first.parameters + rest.parameters] == [f"/d/p{i:02d}" for i in range(12)]
    assert rest.next_token is None
    secure = p.describe_parameters(parameter_filters=[{"Key": "Type", "Values": ["SecureString"]}],
                                   max_results=50)
    assert len(secure.parameters) == 6
    blue = p.describe_parameters(parameter_filters=[{"Key": "tag:team", "Values": ["blue"]}])
    assert [m.name for m in blue.parameters] == [f"/d/p{i:02d}" for i in range(4)]
    named = p.describe_parameters(filters=[{"Key": "Name", "Values": ["/d/p1"]}])
    assert [m.name for m in named.parameters] == ["/d/p10", "/d/p11"]
    path = p.describe_parameters(parameter_filters=[{"Key": "Path", "Values": ["/d"]}], max_results=50)
    assert len(path.parameters) == 12
    with pytest.raises(ValidationException):
        p.describe_parameters(filters=[{"Key": "Name", "Values": ["x"]}],
                              parameter_filters=[{"Key": "Name", "Values": ["x"]}])
    with pytest.raises(ps.InvalidFilterOption):
        p.describe_parameters(parameter_filters=[{"Key": "Path", "Option": "Equals", "Values": ["/d"]}])


def test_delete(kms) -> None:
    p = kms.parameters
    for n in ("/x/1", "/x/2", "/x/3"):
        p.put_parameter(n, "v", type="String")
    p.delete_parameter("/x/1")
    with pytest.raises(ps.ParameterNotFound):
        p.delete_parameter("/x/1")
    result = p.delete_parameters(["/x/2", "/x/3", "/x/9"])
    assert result.deleted_parameters == ["/x/2", "/x/3"] and result.invalid_parameters == ["/x/9"]
    assert p.describe_parameters().parameters == []
    assert p.put_parameter("/x/1", "again", type="String").version == 1  # a new parameter, a new history


# -- authorization, as AWS does it --------------------------------------------------

def test_authorization_needs_ssm_and_kms(kms) -> None:
    key = kms.create_key().key_metadata.key_id
    p = kms.parameters
    p.put_parameter("/app/prod/db", "db-password-value", type="SecureString", key_id=key)
    p.put_parameter("/app/prod/managed", "managed-secret-value", type="SecureString")
    p.put_parameter("/other/x", "v", type="String")
    ssm_only = user(kms, "reader", {"Effect": "Allow", "Action": ["ssm:GetParameter*"],
                                    "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/*"})
    got = ssm_only.parameters.get_parameter("/app/prod/db")  # no decryption: ssm alone suffices
    assert got.parameter.type == "SecureString"
    with pytest.raises(AccessDeniedException) as exc:
        ssm_only.parameters.get_parameter("/app/prod/db", with_decryption=True)
    assert f"is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:{ACCOUNT}:key/{key}" \
        in exc.value.message and "(Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException;" \
        in exc.value.message
    # the AWS managed key lets anyone in the account decrypt through SSM
    assert ssm_only.parameters.get_parameter("/app/prod/managed", with_decryption=True).parameter.value \
        == "managed-secret-value"
    with pytest.raises(AccessDeniedException) as exc:
        ssm_only.parameters.get_parameter("/other/x")
    assert exc.value.message == (f"User: arn:aws:iam::{ACCOUNT}:user/reader is not authorized to perform: "
                                 f"ssm:GetParameter on resource: {arn('/other/x')} because no identity-based "
                                 "policy allows the ssm:GetParameter action")
    with pytest.raises(AccessDeniedException):
        ssm_only.parameters.put_parameter("/app/prod/new", "v", type="String")
    both = user(kms, "app", {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": arn("/app/prod/db")},
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*",
                 "Condition": {"StringEquals": {"kms:ViaService": SSM,
                                                "kms:EncryptionContext:PARAMETER_ARN": arn("/app/prod/db")}}})
    assert both.parameters.get_parameter("/app/prod/db", with_decryption=True).parameter.value \
        == "db-password-value"
    with pytest.raises(AccessDeniedException):  # kms:ViaService: never directly
        both.decrypt(base64.b64decode(p.get_parameter("/app/prod/db").parameter.value),
                     encryption_context={"PARAMETER_ARN": arn("/app/prod/db")})
    log = records(kms)
    decrypts = [r for r in log if isinstance(r.event, ev.Decrypted)]
    assert decrypts[-1].principal == f"arn:aws:iam::{ACCOUNT}:user/app" and decrypts[-1].event.via_service == SSM
    denied = [r for r in log if isinstance(r.event, ev.RequestDenied)]
    assert ("Decrypt", f"arn:aws:iam::{ACCOUNT}:user/reader") in [(r.operation, r.principal) for r in denied]
    assert ("GetParameter", "AccessDeniedException") in [(r.operation, r.event.error_code) for r in denied]


# -- the log: replay, checkpoints, raw files ------------------------------------------------

def test_replay_equals_live_and_checkpoints_cover_parameters(kms, tmp_path) -> None:
    p = kms.parameters
    p.put_parameter("/r/a", "secret-a-value", type="SecureString")
    p.put_parameter("/r/a", "secret-a-value-2", overwrite=True)
    p.put_parameter("/r/b", "plain", type="StringList", tags=[{"Key": "k", "Value": "v"}])
    p.label_parameter_version("/r/a", ["x", "y"], parameter_version=1)
    p.unlabel_parameter_version("/r/a", 1, ["y"])
    p.add_tags_to_resource("Parameter", "/r/a", [{"Key": "t", "Value": "1"}, {"Key": "u", "Value": "2"}])
    p.remove_tags_from_resource("Parameter", "/r/a", ["u"])
    p.delete_parameter("/r/b")
    kms.checkpoint()
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
        assert report.ok, report
        assert set(snap.tables()["parameters"]) == {b"/r/a"}
        verified = audit.verify(snap)
    assert verified.ok and verified.states_ok, verified


def test_the_digest_versions() -> None:
    assert digest.DIGEST_VERSION == cp.STATE_VERSION
    assert set(digest.DIGEST_TABLES) == set(TABLES)
    assert digest.DIGEST_VERSIONS[1] == digest.DIGEST_TABLES[:len(digest.DIGEST_VERSIONS[1])]
    assert "parameters" not in digest.DIGEST_VERSIONS[1]


def test_a_v1_checkpoint_still_verifies(kms) -> None:
    """A note signed with the v1 state line (before the parameters table) is
    checked against a v1 digest; a v2 digest labeled v1 is not accepted."""
    kms.create_key()
    kms.parameters.put_parameter("/p", "v", type="String")
    with kms.store.snapshot() as snap:
        live = snap.tables()
        tree = audit.CompactRange()
        for raw in snap.raw_records():
            tree.append(merkle.leaf_hash(raw.body))
        origin = snap.meta()["origin"].decode()
    assert digest.state_digest(live, 1) != digest.state_digest(live)  # v2 covers the parameters
    verifier = (origin, crypto.ed25519_public_key(kms._signer))
    old = cp.sign(origin, tree.size, tree.root(), kms._signer, digest.state_digest(live, 1), 1)
    assert b"keyledger-state/v1 " in old.note and cp.parse(old.note)[0].state_version == 1
    with kms.store.snapshot() as snap:
        report = audit.verify(snap, extra_checkpoints=[old.note], verifier=verifier)
    assert report.ok and report.states_ok == [tree.size], report
    forged = cp.sign(origin, tree.size, tree.root(), kms._signer, digest.state_digest(live), 1)
    with kms.store.snapshot() as snap:
        assert not audit.verify(snap, extra_checkpoints=[forged.note], verifier=verifier).ok


def test_no_securestring_value_in_the_raw_files(tmp_path) -> None:
    home = tmp_path / "raw"
    secrets = {}
    with keyledger.open(home, create=True) as kms:
        p = kms.parameters
        for i in range(8):
            value = "SSM-SECRET-" + os.urandom(24).hex()
            secrets[f"/raw/{i}"] = value
            p.put_parameter(f"/raw/{i}", value, type="SecureString")
            p.put_parameter(f"/raw/{i}", value + "-v2", overwrite=True)
            assert p.get_parameter(f"/raw/{i}", with_decryption=True).parameter.value == value + "-v2"
        p.get_parameters_by_path("/raw", with_decryption=True)
        p.get_parameter_history("/raw/0", with_decryption=True)
        plain = "PLAIN-STRING-" + os.urandom(16).hex()
        p.put_parameter("/raw/plain", plain, type="String")
    blob = b"".join((home / f).read_bytes() for f in ("data.mdb", "lock.mdb") if (home / f).exists())
    assert plain.encode() in blob  # String values are plain by SSM semantics: the scan does see values
    for name, value in secrets.items():
        for v in (value, value + "-v2"):
            for piece in {v[i:i + 16] for i in range(0, len(v) - 15, 8)} | {v}:
                assert piece.encode() not in blob, f"a piece of {name}'s value is in the raw files"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["put", "put", "label", "unlabel", "tag", "untag", "delete"]),
                          st.sampled_from(["/h/a", "/h/b/c"]), st.integers(1, 4)), min_size=1, max_size=12))
def test_any_history_replays_to_the_live_tables(tmp_path_factory, steps) -> None:
    home = tmp_path_factory.mktemp("prop") / "ledger"
    expected: dict[str, list[str]] = {}
    tags: dict[str, dict[str, str]] = {}
    with keyledger.open(home, create=True) as kms:
        p = kms.parameters
        for op, name, n in steps:
            try:
                if op == "put":
                    value = f"value-{len(expected.get(name, []))}-{n}"
                    p.put_parameter(name, value, type="SecureString" if n % 2 else "String", overwrite=True)
                    expected.setdefault(name, []).append(value)
                    tags.setdefault(name, {})
                elif op == "label":
                    p.label_parameter_version(name, [f"L{n}"], parameter_version=n)
                elif op == "unlabel":
                    p.unlabel_parameter_version(name, n, [f"L{n}", "L1"])
                elif op == "tag":
                    p.add_tags_to_resource("Parameter", name, [{"Key": f"k{n}", "Value": f"v{len(steps)}"}])
                    tags[name][f"k{n}"] = f"v{len(steps)}"
                elif op == "untag":
                    p.remove_tags_from_resource("Parameter", name, [f"k{n}"])
                    tags[name].pop(f"k{n}", None)
                else:
                    p.delete_parameter(name)
                    expected.pop(name, None)
                    tags.pop(name, None)
            except (ps.ParameterNotFound, ps.ParameterVersionNotFound, ps.InvalidResourceId):
                pass
        for name, values in expected.items():
            assert p.get_parameter(name, with_decryption=True).parameter.value == values[-1]
            assert p.get_parameter(name).parameter.version == len(values)
            assert {t.key: t.value for t in p.list_tags_for_resource("Parameter", name).tag_list} == tags[name]
        with kms.store.snapshot() as snap:
            assert replay.check(snap).ok


def test_the_bill_prices_the_kms_calls_not_the_standard_tier(kms) -> None:
    from fractions import Fraction

    from keyledger.projections import billing
    p = kms.parameters
    for i in range(3):
        p.put_parameter(f"/b/{i}", f"billed-secret-{i}", type="SecureString")
    p.put_parameter("/b/plain", "v", type="String")
    p.get_parameter("/b/0")
    p.get_parameters_by_path("/b", with_decryption=True)  # three Decrypts, one GetParametersByPath
    with pytest.raises(ps.ParameterNotFound):
        p.get_parameter("/b/none")
    bill = billing.compute(records(kms), "2030-01")
    assert dict(bill.requests) == {"Encrypt": 3, "Decrypt": 3}
    assert bill.request_cost == 6 * billing.PER_10K_REQUESTS / 10_000 == Fraction(18, 1_000_000)
    assert bill.total == bill.request_cost  # the AWS managed key costs nothing either
