"""The parameter store is regional, as SSM's is: a parameter belongs to the
request's region (its row scoped like a key's: the initial region's rows
keep their names, another region's are prefixed "~<region>/"), so one name
can hold two parameters in two regions; ARNs, the SecureString encryption
context and kms:ViaService name the request region; listing and paging
stay inside a region; replay, the state digest and audit verify agree."""

from __future__ import annotations

from datetime import UTC, datetime

import keyledger
import pytest
from keyledger import audit
from keyledger import parameters as ps
from keyledger.projections import parameter_row, replay
from keyledger.projections.digest import state_digest

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ACCOUNT = keyledger.DEFAULT_ACCOUNT
US, EU = "us-east-1", "eu-west-1"


@pytest.fixture
def kms(tmp_path):
    with keyledger.open(tmp_path / "ledger", create=True, clock=lambda: T0, durability="relaxed") as service:
        yield service


def test_one_name_two_regions(kms) -> None:
    us, eu = kms.parameters, kms.in_region(EU).parameters
    us.put_parameter("/app/db", "us-value", type="String")
    eu.put_parameter("/app/db", "eu-value", type="String")  # not ParameterAlreadyExists: another region
    eu.put_parameter("/app/db", "eu-value-2", overwrite=True)
    us_got, eu_got = us.get_parameter("/app/db").parameter, eu.get_parameter("/app/db").parameter
    assert (us_got.value, us_got.version, us_got.arn) == ("us-value", 1, f"arn:aws:ssm:{US}:{ACCOUNT}:parameter/app/db")
    assert (eu_got.value, eu_got.version, eu_got.arn) == ("eu-value-2", 2, f"arn:aws:ssm:{EU}:{ACCOUNT}:parameter/app/db")
    with kms.store.snapshot() as snap:
        assert snap.get("parameters", parameter_row("/app/db")).current.value == "us-value"
        assert snap.get("parameters", b"~eu-west-1//app/db").current.value == "eu-value-2"
        assert parameter_row("/app/db", EU) == b"~eu-west-1//app/db"
    # a parameter of one region does not exist in another
    eu.put_parameter("/eu/only", "x", type="String")
    with pytest.raises(ps.ParameterNotFound):
        us.get_parameter("/eu/only")
    assert us.get_parameters(["/eu/only", "/app/db"]).invalid_parameters == ["/eu/only"]
    # deleting in one region leaves the other's
    us.delete_parameter("/app/db")
    assert eu.get_parameter("/app/db").parameter.value == "eu-value-2"
    with pytest.raises(ps.ParameterNotFound):
        us.get_parameter_history("/app/db")
    assert [h.value for h in eu.get_parameter_history("/app/db").parameters] == ["eu-value", "eu-value-2"]
    eu.label_parameter_version("/app/db", ["prod"], parameter_version=1)
    assert eu.get_parameter("/app/db:prod").parameter.value == "eu-value"


def test_secure_strings_use_the_regions_key_and_arn(kms) -> None:
    eu_kms = kms.in_region(EU)
    us, eu = kms.parameters, eu_kms.parameters
    us.put_parameter("/s", "us-secret", type="SecureString")
    eu.put_parameter("/s", "eu-secret", type="SecureString")
    assert us.get_parameter("/s", with_decryption=True).parameter.value == "us-secret"
    assert eu.get_parameter("/s", with_decryption=True).parameter.value == "eu-secret"
    # each region's aws/ssm key, each value sealed under its own region's ARN as context
    us_key = kms.describe_key("alias/aws/ssm").key_metadata
    eu_key = eu_kms.describe_key("alias/aws/ssm").key_metadata
    assert us_key.key_id != eu_key.key_id and eu_key.arn.startswith(f"arn:aws:kms:{EU}:")
    eu_records = [r for r in kms.store.records() if r.region == EU and type(r.event).__name__ == "Encrypted"]
    assert [r.event.encryption_context for r in eu_records] == [
        {"PARAMETER_ARN": f"arn:aws:ssm:{EU}:{ACCOUNT}:parameter/s"}]
    assert eu_records[0].event.via_service == f"ssm.{EU}.amazonaws.com"
    # a customer key of the other region is not found
    us_cmk = kms.create_key().key_metadata.key_id
    with pytest.raises(ps.InvalidKeyId):
        eu.put_parameter("/t", "x", type="SecureString", key_id=us_cmk)


def test_listing_and_paging_stay_in_the_region(kms) -> None:
    us, eu = kms.parameters, kms.in_region(EU).parameters
    us_names = [f"/app/us{i:02d}" for i in range(13)]
    eu_names = [f"/app/eu{i:02d}" for i in range(12)]
    for name in us_names:
        us.put_parameter(name, "v", type="String")
    for name in eu_names:
        eu.put_parameter(name, "v", type="String")
    eu.put_parameter("/app/us00", "eu twin", type="String")  # an EU parameter named like a US one

    def by_path(store) -> list[str]:
        names, token = [], None
        while True:
            page = store.get_parameters_by_path("/app", max_results=5, next_token=token)
            names += [p.name for p in page.parameters]
            assert all(p.arn.split(":")[3] == store._kms.region for p in page.parameters)
            token = page.next_token
            if token is None:
                return names

    def described(store) -> list[str]:
        names, token = [], None
        while True:
            page = store.describe_parameters(max_results=4, next_token=token)
            names += [p.name for p in page.parameters]
            token = page.next_token
            if token is None:
                return names

    assert by_path(us) == us_names
    assert by_path(eu) == sorted(eu_names + ["/app/us00"])
    assert described(us) == us_names
    assert described(eu) == sorted(eu_names + ["/app/us00"])
    # a token holds a parameter name (never a row): paging goes on inside the request's region
    token = eu.describe_parameters(max_results=1).next_token
    assert [p.name for p in eu.describe_parameters(max_results=50, next_token=token).parameters] == \
        sorted(eu_names + ["/app/us00"])[1:]


def test_replay_digest_and_audit_agree(kms) -> None:
    eu = kms.in_region(EU)
    kms.parameters.put_parameter("/p", "1", type="String")
    eu.parameters.put_parameter("/p", "2", type="SecureString")
    eu.parameters.label_parameter_version("/p", ["x"])
    kms.parameters.put_parameter("/q", "3", type="String")
    eu.parameters.delete_parameter("/p")
    eu.parameters.put_parameter("/p", "4", type="String")
    kms.checkpoint()
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
        assert report.ok, report.differences
        verified = audit.verify(snap)
        assert verified.ok, verified.problems
        live = snap.tables()
        folded = replay.state_at(snap, until_seq=snap.head().seq)[0].rows
        assert state_digest(live) == state_digest(folded)
        assert set(live["parameters"]) == {b"/p", b"/q", b"~eu-west-1//p"}
