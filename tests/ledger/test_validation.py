"""Every request validation rule, hit at its edge: the last value accepted
and the first refused, with the AWS KMS error name.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import keyledger
from keyledger.errors import (
    AlreadyExistsException, InvalidMarkerException, NotAuthorizedException,
    KMSInvalidStateException, LimitExceededException, NotFoundException, TagException,
    ValidationException,
)

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class FixedClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class KeyIdRecorder:
    """An rng that remembers every 16-byte draw: CreateKey's key id is the
    only one, so a test can name the key a refused CreateKey would have made."""

    def __init__(self) -> None:
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        value = os.urandom(n)
        if n == 16:
            self.draws.append(value)
        return value


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def rng():
    return KeyIdRecorder()


@pytest.fixture
def kms(tmp_path, clock, rng):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock, rng=rng) as service:
        yield service


@pytest.fixture
def key(kms):
    return kms.create_key(description="validation").key_metadata.key_id


def arn_prefix(kms) -> str:
    return f"arn:aws:kms:{kms.region}:{kms.account}:"


# -- plaintext ----------------------------------------------------------------

def test_plaintext_4096_bytes_is_accepted(kms, key):
    plaintext = os.urandom(4096)
    blob = kms.encrypt(key, plaintext).ciphertext_blob
    assert kms.decrypt(blob).plaintext == plaintext


@pytest.mark.parametrize("size", [0, 4097])
def test_plaintext_of_0_or_4097_bytes_is_refused(kms, key, size):
    with pytest.raises(ValidationException) as info:
        kms.encrypt(key, b"p" * size)
    assert "p" * 16 not in str(info.value)  # the value itself is never echoed


def test_plaintext_must_be_bytes(kms, key):
    with pytest.raises(ValidationException):
        kms.encrypt(key, "text, not bytes")  # type: ignore[arg-type]


def test_one_byte_plaintext(kms, key):
    assert kms.decrypt(kms.encrypt(key, b"\x00").ciphertext_blob).plaintext == b"\x00"


# -- deletion window ------------------------------------------------------------

@pytest.mark.parametrize("days", [6, 31, 0, -1])
def test_pending_window_outside_7_to_30_is_refused(kms, key, days):
    with pytest.raises(ValidationException):
        kms.schedule_key_deletion(key, pending_window_in_days=days)
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"


@pytest.mark.parametrize("days", [7, 30])
def test_pending_window_edges_are_accepted(kms, key, clock, days):
    response = kms.schedule_key_deletion(key, pending_window_in_days=days)
    assert response.pending_window_in_days == days
    assert response.deletion_date == clock.now + timedelta(days=days)
    metadata = kms.describe_key(key).key_metadata
    assert metadata.key_state == "PendingDeletion"
    assert metadata.deletion_date == clock.now + timedelta(days=days)
    # AWS shows PendingDeletionWindowInDays only in PendingReplicaDeletion
    assert metadata.pending_deletion_window_in_days is None


def test_pending_window_defaults_to_30_days(kms, key, clock):
    response = kms.schedule_key_deletion(key)
    assert response.pending_window_in_days == 30
    assert response.deletion_date == clock.now + timedelta(days=30)


# -- rotation period ------------------------------------------------------------

@pytest.mark.parametrize("days", [89, 2561, 0, -90])
def test_rotation_period_outside_90_to_2560_is_refused(kms, key, days):
    with pytest.raises(ValidationException):
        kms.enable_key_rotation(key, rotation_period_in_days=days)
    assert kms.get_key_rotation_status(key).key_rotation_enabled is False


@pytest.mark.parametrize("days", [90, 2560])
def test_rotation_period_edges_are_accepted(kms, key, clock, days):
    kms.enable_key_rotation(key, rotation_period_in_days=days)
    status = kms.get_key_rotation_status(key)
    assert status.key_rotation_enabled is True
    assert status.rotation_period_in_days == days
    assert status.next_rotation_date == clock.now + timedelta(days=days)


def test_rotation_period_defaults_to_365_days(kms, key, clock):
    kms.enable_key_rotation(key)
    status = kms.get_key_rotation_status(key)
    assert status.rotation_period_in_days == 365
    assert status.next_rotation_date == clock.now + timedelta(days=365)


# -- on-demand rotations --------------------------------------------------------

def test_the_eleventh_on_demand_rotation_exceeds_the_limit(kms, key, clock):
    for n in range(10):
        clock.now += timedelta(minutes=1)
        kms.rotate_key_on_demand(key)
    with pytest.raises(LimitExceededException):
        kms.rotate_key_on_demand(key)
    rotations = kms.list_key_rotations(key).rotations
    assert len(rotations) == 10
    assert {r.rotation_type for r in rotations} == {"ON_DEMAND"}
    # the refusal added no version: new ciphertexts still use version 11
    blob = kms.encrypt(key, b"x").ciphertext_blob
    assert int.from_bytes(blob[19:23], "big") == 11


def test_on_demand_rotation_of_a_disabled_key_is_disabled_before_its_spec_is_looked_at(kms):
    """AWS answers a disabled RSA key DisabledException (recorded against AWS,
    2025), an enabled one UnsupportedOperationException with no message."""
    from keyledger.errors import DisabledException, UnsupportedOperationException
    key = kms.create_key(key_usage="SIGN_VERIFY", key_spec="RSA_2048").key_metadata
    with pytest.raises(UnsupportedOperationException) as info:
        kms.rotate_key_on_demand(key.key_id)
    assert info.value.message == ""
    kms.disable_key(key.key_id)
    with pytest.raises(DisabledException) as disabled:
        kms.rotate_key_on_demand(key.key_id)
    assert disabled.value.message == f"{key.arn} is disabled."


def test_the_on_demand_limit_is_per_key(kms, key):
    for _ in range(10):
        kms.rotate_key_on_demand(key)
    other = kms.create_key().key_metadata.key_id
    kms.rotate_key_on_demand(other)  # unaffected


# -- aliases ------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "example",                # no alias/ prefix
    "aliasx/example",
    "ALIAS/example",
    "alias/",                 # nothing after the prefix
    "alias/has space",
    "alias/dot.ted",
    "alias/caf\u00e9",
    "alias/star*",
    "alias/colon:name",
    "",
])
def test_alias_names_outside_the_rules_are_refused(kms, key, name):
    with pytest.raises(ValidationException):
        kms.create_alias(name, key)
    assert kms.list_aliases(key_id=key).aliases == []


def test_alias_charset_letters_digits_slash_underscore_dash(kms, key):
    kms.create_alias("alias/Az09/_-sub/Path", key)
    assert [a.alias_name for a in kms.list_aliases(key_id=key).aliases] == ["alias/Az09/_-sub/Path"]


def test_alias_name_length_256_vs_257(kms, key):
    longest = "alias/" + "a" * 250
    assert len(longest) == 256
    kms.create_alias(longest, key)
    with pytest.raises(ValidationException):
        kms.create_alias(longest + "b", key)
    assert kms.describe_key(longest).key_metadata.key_id == key


@pytest.mark.parametrize("name", ["alias/aws/s3", "alias/aws/anything/deeper"])
def test_alias_aws_prefix_is_reserved(kms, key, name):
    with pytest.raises(NotAuthorizedException) as info:  # as AWS answers a customer
        kms.create_alias(name, key)
    assert info.value.message == ""


def test_a_name_that_merely_starts_with_aws_is_fine(kms, key):
    kms.create_alias("alias/awsome", key)
    assert kms.describe_key("alias/awsome").key_metadata.key_id == key


def test_duplicate_alias_already_exists(kms, key):
    other = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/dup", key)
    for target in (key, other):
        with pytest.raises(AlreadyExistsException):
            kms.create_alias("alias/dup", target)
    assert kms.describe_key("alias/dup").key_metadata.key_id == key


def test_update_or_delete_of_a_missing_alias_is_not_found(kms, key):
    with pytest.raises(NotFoundException):
        kms.update_alias("alias/missing", key)
    with pytest.raises(NotFoundException):
        kms.delete_alias("alias/missing")
    kms.create_alias("alias/once", key)
    kms.delete_alias("alias/once")
    with pytest.raises(NotFoundException):
        kms.delete_alias("alias/once")
    with pytest.raises(NotFoundException):
        kms.describe_key("alias/once")


def test_one_alias_names_one_key(kms, key):
    other = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/moving", key)
    kms.update_alias("alias/moving", other)
    assert kms.describe_key("alias/moving").key_metadata.key_id == other
    assert kms.list_aliases(key_id=key).aliases == []
    assert [a.alias_name for a in kms.list_aliases(key_id=other).aliases] == ["alias/moving"]
    everywhere = [a for a in kms.list_aliases().aliases if a.alias_name == "alias/moving"]
    assert [a.target_key_id for a in everywhere] == [other]


def test_a_key_may_have_many_aliases(kms, key):
    names = ["alias/one", "alias/two", "alias/three"]
    for name in names:
        kms.create_alias(name, key)
    assert sorted(a.alias_name for a in kms.list_aliases(key_id=key).aliases) == sorted(names)
    for name in names:
        assert kms.describe_key(name).key_metadata.key_id == key


def test_alias_target_must_be_a_key_id_or_key_arn(kms, key):
    kms.create_alias("alias/first", key)
    # an alias name that exists: AWS's own words; an alias ARN, or a name that
    # exists nowhere, is an invalid key id as in every other key-id-only field
    with pytest.raises(ValidationException, match=r"^ValidationException: Aliases must refer to keys\. Not aliases$"):
        kms.create_alias("alias/second", "alias/first")
    with pytest.raises(ValidationException, match="Aliases must refer to keys"):
        kms.update_alias("alias/first", "alias/first")
    for target in (arn_prefix(kms) + "alias/first", "alias/nowhere"):
        with pytest.raises(NotFoundException, match="Invalid keyId"):
            kms.create_alias("alias/second", target)
        with pytest.raises(NotFoundException, match="Invalid keyId"):
            kms.update_alias("alias/first", target)
    assert [a.alias_name for a in kms.list_aliases(key_id=key).aliases] == ["alias/first"]
    kms.create_alias("alias/by-arn", arn_prefix(kms) + "key/" + key)
    assert kms.describe_key("alias/by-arn").key_metadata.key_id == key


def test_alias_target_must_exist(kms):
    with pytest.raises(NotFoundException):
        kms.create_alias("alias/orphan", str(uuid.uuid4()))


def test_alias_to_a_key_pending_deletion_is_invalid_state(kms, key):
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException):
        kms.create_alias("alias/late", key)


# -- tags -----------------------------------------------------------------------

def test_aws_prefixed_tag_keys_are_refused(kms, key):
    with pytest.raises(TagException):
        kms.create_key(tags=[{"TagKey": "aws:owner", "TagValue": "x"}])
    with pytest.raises(TagException):
        kms.tag_resource(key, [{"TagKey": "aws:owner", "TagValue": "x"}])
    assert kms.list_resource_tags(key).tags == []


def test_tag_key_128_vs_129(kms, key):
    kms.tag_resource(key, {"k" * 128: "v"})
    with pytest.raises(ValidationException):
        kms.tag_resource(key, {"k" * 129: "v"})
    with pytest.raises(ValidationException):
        kms.tag_resource(key, {"": "v"})
    assert [t.tag_key for t in kms.list_resource_tags(key).tags] == ["k" * 128]


def test_tag_value_256_vs_257(kms, key):
    kms.tag_resource(key, {"empty": "", "full": "v" * 256})
    with pytest.raises(ValidationException):
        kms.tag_resource(key, {"over": "v" * 257})
    assert {t.tag_key: t.tag_value for t in kms.list_resource_tags(key).tags} == {"empty": "", "full": "v" * 256}


def test_fifty_tags_at_creation_and_not_fifty_one(kms, rng):
    fifty = {f"k{i:02d}": str(i) for i in range(50)}
    created = kms.create_key(tags=fifty).key_metadata.key_id
    assert len(kms.list_resource_tags(created).tags) == 50
    keys_before = {k.key_id for k in kms.list_keys().keys}
    draws = len(rng.draws)
    with pytest.raises(TagException, match="^TagException: Too many tags$"):
        kms.create_key(tags={**fifty, "k50": "50"})
    # The refused CreateKey made no key: refused before a key id or KEK was drawn.
    assert len(rng.draws) == draws
    assert {k.key_id for k in kms.list_keys().keys} == keys_before
    assert kms.store.kek(created) is not None


def test_fifty_tags_per_key_across_tag_resource(kms, key):
    kms.tag_resource(key, {f"k{i:02d}": "v" for i in range(49)})
    kms.tag_resource(key, {"k49": "v"})
    with pytest.raises(TagException):
        kms.tag_resource(key, {"k50": "v"})
    kms.tag_resource(key, {"k00": "overwritten"})  # replacing a tag adds none
    kms.untag_resource(key, ["k00"])
    kms.tag_resource(key, {"k50": "v"})
    tags = {t.tag_key: t.tag_value for t in kms.list_resource_tags(key, limit=50).tags}
    assert len(tags) == 50 and "k00" not in tags and "k50" in tags


# -- description ------------------------------------------------------------------

def test_description_8192_vs_8193(kms, key):
    created = kms.create_key(description="d" * 8192).key_metadata
    assert created.description == "d" * 8192
    with pytest.raises(ValidationException):
        kms.create_key(description="d" * 8193)
    kms.update_key_description(key, "e" * 8192)
    with pytest.raises(ValidationException):
        kms.update_key_description(key, "e" * 8193)
    assert kms.describe_key(key).key_metadata.description == "e" * 8192


# -- data keys and random bytes -----------------------------------------------------

@pytest.mark.parametrize("generate", ["generate_data_key", "generate_data_key_without_plaintext"])
def test_data_key_needs_exactly_one_of_key_spec_and_number_of_bytes(kms, key, generate):
    call = getattr(kms, generate)
    with pytest.raises(ValidationException):
        call(key)
    with pytest.raises(ValidationException):
        call(key, key_spec="AES_256", number_of_bytes=32)
    with pytest.raises(ValidationException):
        call(key, key_spec="AES_512")


@pytest.mark.parametrize("n", [0, 1025, -1])
def test_data_key_number_of_bytes_outside_1_to_1024(kms, key, n):
    with pytest.raises(ValidationException):
        kms.generate_data_key(key, number_of_bytes=n)
    with pytest.raises(ValidationException):
        kms.generate_data_key_without_plaintext(key, number_of_bytes=n)


@pytest.mark.parametrize("n", [1, 1024])
def test_data_key_number_of_bytes_edges(kms, key, n):
    response = kms.generate_data_key(key, number_of_bytes=n)
    assert len(response.plaintext) == n
    assert kms.decrypt(response.ciphertext_blob).plaintext == response.plaintext
    without = kms.generate_data_key_without_plaintext(key, number_of_bytes=n)
    assert len(kms.decrypt(without.ciphertext_blob).plaintext) == n


@pytest.mark.parametrize("spec, size", [("AES_128", 16), ("AES_256", 32)])
def test_data_key_specs(kms, key, spec, size):
    response = kms.generate_data_key(key, key_spec=spec)
    assert len(response.plaintext) == size
    assert kms.decrypt(response.ciphertext_blob).plaintext == response.plaintext


@pytest.mark.parametrize("n", [1, 1024])
def test_generate_random_edges(kms, n):
    assert len(kms.generate_random(number_of_bytes=n).plaintext) == n


@pytest.mark.parametrize("n", [0, 1025])
def test_generate_random_outside_1_to_1024(kms, n):
    with pytest.raises(ValidationException):
        kms.generate_random(number_of_bytes=n)


# -- listing --------------------------------------------------------------------

@pytest.mark.parametrize("listing, high", [
    ("list_keys", 1000), ("list_aliases", 100), ("list_resource_tags", 50), ("list_key_rotations", 1000)])
def test_limit_range(kms, key, listing, high):
    call = getattr(kms, listing)
    args = (key,) if listing in ("list_resource_tags", "list_key_rotations") else ()
    call(*args, limit=1)
    call(*args, limit=high)
    for bad in (0, high + 1):
        with pytest.raises(ValidationException):
            call(*args, limit=bad)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


# Each of these is a position no listing could have handed out: not base64,
# empty, not UTF-8 (keys, aliases, tags), not a 4-byte version (rotations),
# too long for a tag key and not a key id or alias name.
BAD_MARKERS = [
    "garbage",
    "!!!!",
    "nonsense",
    _b64(b"\xff\xfe\x00"),
    _b64(b"x" * 129),
]


@pytest.mark.parametrize("marker", BAD_MARKERS)
@pytest.mark.parametrize("listing", ["list_keys", "list_aliases", "list_resource_tags", "list_key_rotations"])
def test_markers_that_were_never_issued_are_refused(kms, key, listing, marker):
    call = getattr(kms, listing)
    args = (key,) if listing in ("list_resource_tags", "list_key_rotations") else ()
    with pytest.raises(InvalidMarkerException):
        call(*args, marker=marker)


def test_a_marker_from_one_listing_is_refused_by_another(kms, key):
    kms.create_key()
    for n in range(3):
        kms.create_alias(f"alias/m{n}", key)
    keys_marker = kms.list_keys(limit=1).next_marker
    aliases_marker = kms.list_aliases(limit=1).next_marker
    assert keys_marker and aliases_marker
    with pytest.raises(InvalidMarkerException):
        kms.list_aliases(marker=keys_marker)
    with pytest.raises(InvalidMarkerException):
        kms.list_keys(marker=aliases_marker)
    with pytest.raises(InvalidMarkerException):
        kms.list_key_rotations(key, marker=aliases_marker)


def test_issued_markers_page_to_the_end(kms):
    created = {kms.create_key().key_metadata.key_id for _ in range(5)}
    seen, marker, pages = [], None, 0
    while True:
        page = kms.list_keys(limit=2, marker=marker)
        seen += [k.key_id for k in page.keys]
        pages += 1
        if not page.truncated:
            assert page.next_marker is None
            break
        marker = page.next_marker
    assert pages == 3 and len(seen) == 5 and set(seen) == created


# -- key identifiers -------------------------------------------------------------------

def test_all_four_key_id_forms_resolve(kms, key):
    kms.create_alias("alias/forms", key)
    prefix = arn_prefix(kms)
    forms = [key, prefix + "key/" + key, "alias/forms", prefix + "alias/forms"]
    for form in forms:
        assert kms.describe_key(form).key_metadata.key_id == key
        blob = kms.encrypt(form, b"by " + form.encode()).ciphertext_blob
        assert kms.decrypt(blob, key_id=form).plaintext == b"by " + form.encode()
    assert kms.describe_key(key).key_metadata.arn == prefix + "key/" + key


@pytest.mark.parametrize("other", ["region", "account"])
def test_arns_of_another_region_or_account_are_not_found(kms, key, other):
    kms.create_alias("alias/here", key)
    region = "eu-west-1" if other == "region" else kms.region
    account = "444455556666" if other == "account" else kms.account
    for suffix in ("key/" + key, "alias/here"):
        with pytest.raises(NotFoundException):
            kms.describe_key(f"arn:aws:kms:{region}:{account}:{suffix}")
        with pytest.raises(NotFoundException):
            kms.encrypt(f"arn:aws:kms:{region}:{account}:{suffix}", b"x")


@pytest.mark.parametrize("key_id", [
    str(uuid.UUID(int=0x1234)),  # well formed, never created
    "alias/never-created",
    "not-a-key",
    "arn:aws:kms:us-east-1:111122223333:key/not-a-uuid",
    "arn:aws:s3:::bucket",
])
def test_unknown_or_malformed_key_ids_are_not_found(kms, key_id):
    with pytest.raises(NotFoundException):
        kms.describe_key(key_id)


def test_empty_key_id_is_a_validation_error(kms):
    with pytest.raises(ValidationException):
        kms.describe_key("")
