"""The key-spec table against AWS: which spec/usage pairs CreateKey takes,
the algorithm lists DescribeKey shows for each (as AWS lists them), AWS's
refusals for the rest, and rotation refused for asymmetric and HMAC keys."""

from __future__ import annotations

from pathlib import Path

import keyledger
import pytest
from keyledger import events as ev
from keyledger import crypto, keyspecs
from keyledger.errors import (
    InvalidKeyUsageException,
    UnsupportedOperationException,
    ValidationException,
)
from keyledger.responses import to_aws

RSA_SIGN = ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
            "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"]
RSA_ENC = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]

#: (spec, usage) -> the algorithm lists AWS's DescribeKey shows (absent lists omitted)
AWS_TABLE = {
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"): {"EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]},
    **{(f"RSA_{n}", "ENCRYPT_DECRYPT"): {"EncryptionAlgorithms": RSA_ENC} for n in (2048, 3072, 4096)},
    **{(f"RSA_{n}", "SIGN_VERIFY"): {"SigningAlgorithms": RSA_SIGN} for n in (2048, 3072, 4096)},
    ("ECC_NIST_P256", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_256"]},
    ("ECC_NIST_P384", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_384"]},
    ("ECC_NIST_P521", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_512"]},
    ("ECC_SECG_P256K1", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_256"]},
    **{(f"ECC_NIST_P{n}", "KEY_AGREEMENT"): {"KeyAgreementAlgorithms": ["ECDH"]} for n in (256, 384, 521)},
    **{(f"HMAC_{n}", "GENERATE_VERIFY_MAC"): {"MacAlgorithms": [f"HMAC_SHA_{n}"]} for n in (224, 256, 384, 512)},
    **{(f"ML_DSA_{n}", "SIGN_VERIFY"): {"SigningAlgorithms": ["ML_DSA_SHAKE_256"]} for n in (44, 65, 87)},
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"): {"SigningAlgorithms": ["ED25519_SHA_512", "ED25519_PH_SHA_512"]},
    **{(f"ML_KEM_{n}", "ENCAPSULATE_DECAPSULATE"): {"EncapsulationAlgorithms": ["ML_KEM"]}
       for n in (512, 768, 1024)},
}
ALGORITHM_FIELDS = ("EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms",
                    "EncapsulationAlgorithms")


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("specs"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.mark.parametrize("spec, usage", sorted(AWS_TABLE))
def test_every_aws_pair_creates_and_describes_as_aws(kms: keyledger.KeyLedger, spec: str, usage: str) -> None:
    missing = crypto.unavailable_families()
    if spec in missing or keyspecs.SPECS[spec].family in missing:  # ML_KEM_512: see test_ml_kem.py
        pytest.skip(f"the installed cryptography cannot make {spec}")
    created = kms.create_key(key_spec=spec, key_usage=usage).key_metadata
    shown = to_aws(kms.describe_key(created.key_id))["KeyMetadata"]
    assert shown["KeySpec"] == shown["CustomerMasterKeySpec"] == spec and shown["KeyUsage"] == usage
    assert {f: shown[f] for f in ALGORITHM_FIELDS if f in shown} == AWS_TABLE[(spec, usage)]
    assert to_aws(created) == shown  # CreateKey answers the same metadata


def test_the_table_has_every_model_spec_and_only_aws_pairs() -> None:
    assert set(keyspecs.SPECS) == set(keyspecs.KEY_SPEC_NAMES)
    creatable = {(s.name, u) for s in keyspecs.SPECS.values() if s.unsupported is None and not s.china_only
                 for u in s.usages}
    assert creatable == set(AWS_TABLE)


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "HMAC_256", "ML_DSA_44"])
def test_a_non_symmetric_spec_needs_a_key_usage(kms: keyledger.KeyLedger, spec: str) -> None:
    with pytest.raises(ValidationException) as info:
        kms.create_key(key_spec=spec)
    assert info.value.message == ("You must specify a KeyUsage value for all KMS keys except for "
                                  "symmetric encryption keys.")


@pytest.mark.parametrize("spec, usage", [
    ("RSA_2048", "KEY_AGREEMENT"), ("RSA_4096", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
    ("ECC_SECG_P256K1", "KEY_AGREEMENT"), ("HMAC_256", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"),
    ("ML_DSA_65", "ENCRYPT_DECRYPT"), ("ML_KEM_768", "SIGN_VERIFY"), ("ML_KEM_1024", "KEY_AGREEMENT"),
])
def test_wrong_pairs_get_aws_message(kms: keyledger.KeyLedger, spec: str, usage: str) -> None:
    with pytest.raises(ValidationException) as info:
        kms.create_key(key_spec=spec, key_usage=usage)
    assert info.value.message == f"KeyUsage {usage} is not compatible with KeySpec {spec}"
    last = list(kms.store.records())[-1]
    assert isinstance(last.event, ev.RequestDenied) and last.event.error_code == "ValidationException"


@pytest.mark.parametrize("spec, usage", [("SM2", "SIGN_VERIFY"), ("ML_KEM_512", "ENCAPSULATE_DECAPSULATE")])
def test_specs_keyledger_cannot_serve_are_refused_with_the_reason(kms: keyledger.KeyLedger, spec: str,
                                                                  usage: str) -> None:
    with pytest.raises(UnsupportedOperationException) as info:
        kms.create_key(key_spec=spec, key_usage=usage)
    assert spec in info.value.message


def test_sm2_is_refused_outside_china_as_aws_does(kms: keyledger.KeyLedger, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperationException, match="only in China Regions"):
        kms.create_key(key_spec="SM2", key_usage="SIGN_VERIFY")
    with keyledger.open(tmp_path, create=True, region="cn-north-1") as china, \
            pytest.raises(UnsupportedOperationException, match="does not implement SM2"):
        china.create_key(key_spec="SM2", key_usage="SIGN_VERIFY")


def test_customer_master_key_spec_is_the_old_name(kms: keyledger.KeyLedger) -> None:
    meta = kms.create_key(customer_master_key_spec="ECC_NIST_P384", key_usage="SIGN_VERIFY").key_metadata
    assert meta.key_spec == "ECC_NIST_P384" and meta.signing_algorithms == ["ECDSA_SHA_384"]


def test_key_spec_and_customer_master_key_spec_are_not_both_taken(kms: keyledger.KeyLedger) -> None:
    before = len(kms.list_keys().keys)
    for same in ("RSA_2048", "SYMMETRIC_DEFAULT"):
        with pytest.raises(ValidationException) as info:
            kms.create_key(key_spec=same, customer_master_key_spec=same,
                           key_usage="ENCRYPT_DECRYPT")
        assert info.value.message == ("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
                                      "CustomerMasterKeySpec is deprecated.")
    assert len(kms.list_keys().keys) == before
    created = [r.event for r in kms.store.records() if r.operation == "CreateKey"]
    assert [type(e).__name__ for e in created[-2:]] == ["RequestDenied"] * 2  # refused, and recorded so


@pytest.mark.parametrize("spec, usage", [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                         ("HMAC_224", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "KEY_AGREEMENT")])
def test_rotation_is_refused_for_asymmetric_and_hmac_keys(kms: keyledger.KeyLedger, spec: str, usage: str) -> None:
    key = kms.create_key(key_spec=spec, key_usage=usage).key_metadata.key_id
    for call in (lambda: kms.enable_key_rotation(key), lambda: kms.disable_key_rotation(key),
                 lambda: kms.rotate_key_on_demand(key)):
        with pytest.raises(UnsupportedOperationException) as info:
            call()
        assert info.value.message == ""  # AWS answers these without a message
    assert kms.get_key_rotation_status(key).key_rotation_enabled is False
    # ListKeyRotations lists none, and takes IncludeKeyMaterial only for a key that can rotate
    assert kms.list_key_rotations(key).rotations == []
    with pytest.raises(UnsupportedOperationException):
        kms.list_key_rotations(key, include_key_material="ALL_KEY_MATERIAL")


def test_operations_on_the_wrong_kind_of_key(kms: keyledger.KeyLedger) -> None:
    sym = kms.create_key().key_metadata
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata
    rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata
    signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata
    cases = [
        (lambda: kms.sign(mac.key_id, b"m", "ECDSA_SHA_256"), InvalidKeyUsageException,
         f"{mac.arn} key usage is GENERATE_VERIFY_MAC which is not valid for Sign."),
        (lambda: kms.verify(sym.key_id, b"m", b"s", "ECDSA_SHA_256"), InvalidKeyUsageException,
         f"{sym.arn} key usage is ENCRYPT_DECRYPT which is not valid for Verify."),
        (lambda: kms.generate_mac(sym.key_id, b"m", "HMAC_SHA_256"), InvalidKeyUsageException,
         f"{sym.arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac."),
        (lambda: kms.encrypt(signer.key_id, b"m"), InvalidKeyUsageException,
         f"{signer.arn} key usage is SIGN_VERIFY which is not valid for Encrypt."),
        (lambda: kms.encrypt(mac.key_id, b"m"), InvalidKeyUsageException,
         f"{mac.arn} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt."),
        (lambda: kms.encrypt(rsa.key_id, b"m"), InvalidKeyUsageException,
         "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."),
        (lambda: kms.encrypt(sym.key_id, b"m", encryption_algorithm="RSAES_OAEP_SHA_1"), InvalidKeyUsageException,
         "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT."),
        (lambda: kms.generate_data_key(rsa.key_id, key_spec="AES_256"), InvalidKeyUsageException,
         f"{rsa.arn} key spec is RSA_2048 which is not valid for GenerateDataKey."),
        (lambda: kms.generate_data_key(mac.key_id, key_spec="AES_256"), InvalidKeyUsageException,
         f"{mac.arn} key usage is GENERATE_VERIFY_MAC which is not valid for GenerateDataKey."),
        (lambda: kms.derive_shared_secret(signer.key_id, "ECDH", b"k"), InvalidKeyUsageException,
         f"{signer.arn} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret."),
        (lambda: kms.get_public_key(sym.key_id), UnsupportedOperationException,
         f"{sym.arn} key spec is SYMMETRIC_DEFAULT which is not valid for GetPublicKey."),
        (lambda: kms.generate_mac(mac.key_id, b"m", "HMAC_SHA_512"), InvalidKeyUsageException,
         "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256."),
        (lambda: kms.re_encrypt(kms.encrypt(sym.key_id, b"m").ciphertext_blob, rsa.key_id),
         InvalidKeyUsageException, "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert info.value.message == message
