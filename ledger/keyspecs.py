"""The key-spec table: what each AWS KMS key spec is and what it allows.

One `KeySpec` entry per AWS spec: its family (how `crypto.py` generates,
wraps and uses its material), the key usages it may be created with, and
per usage the operations and the algorithms AWS lists for it in DescribeKey
(`SigningAlgorithms`, `EncryptionAlgorithms`, `MacAlgorithms`,
`KeyAgreementAlgorithms`, `EncapsulationAlgorithms`), plus the limits that
depend on the spec. The
service looks a spec up here and never branches on spec names.

Pure data and the checks that read it: no cryptography (that is
`crypto.py`), no IO. The refusals raise AWS's errors with AWS's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypedDict

from keyledger.errors import (
    InvalidCiphertextException,
    InvalidKeyUsageException,
    UnsupportedOperationException,
    ValidationException,
)

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
SIGN_VERIFY = "SIGN_VERIFY"
GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT = "KEY_AGREEMENT"
ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"

#: botocore's KeyUsageType and KeySpec enums, in the model's order
KEY_USAGES = (SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE)
MESSAGE_TYPES = ("RAW", "DIGEST", "EXTERNAL_MU")
MAX_MESSAGE = 4096  # Sign, Verify, GenerateMac, VerifyMac: PlaintextType
CHINA_REGIONS = ("cn-north-1", "cn-northwest-1")


# -- algorithms ---------------------------------------------------------------

@dataclass(frozen=True)
class SigningAlgorithm:
    name: str
    scheme: str  # "PSS" | "PKCS1" | "ECDSA" | "ML_DSA" | "ED25519" | "ED25519_PH"
    hash: str | None  # hashlib name of the message digest; None: the scheme hashes (ML-DSA, Ed25519)
    digest_bytes: int | None  # the length a DIGEST message must have
    message_types: tuple[str, ...] | None = None  # the MessageType values it takes, if narrower than the key's
    unsupported: str | None = None  # why keyledger cannot sign or verify with it (None: it can)


@dataclass(frozen=True)
class EncryptionAlgorithm:
    name: str
    hash: str | None  # OAEP's hash and MGF1 hash; None for SYMMETRIC_DEFAULT
    hash_bytes: int = 0


@dataclass(frozen=True)
class MacAlgorithm:
    name: str
    hash: str
    mac_bytes: int


def _sig(name: str, scheme: str, bits: int | None) -> SigningAlgorithm:
    return SigningAlgorithm(name, scheme, f"sha{bits}" if bits else None, bits // 8 if bits else None)


SIGNING_ALGORITHMS: Mapping[str, SigningAlgorithm] = MappingProxyType({a.name: a for a in (
    _sig("RSASSA_PSS_SHA_256", "PSS", 256), _sig("RSASSA_PSS_SHA_384", "PSS", 384),
    _sig("RSASSA_PSS_SHA_512", "PSS", 512), _sig("RSASSA_PKCS1_V1_5_SHA_256", "PKCS1", 256),
    _sig("RSASSA_PKCS1_V1_5_SHA_384", "PKCS1", 384), _sig("RSASSA_PKCS1_V1_5_SHA_512", "PKCS1", 512),
    _sig("ECDSA_SHA_256", "ECDSA", 256), _sig("ECDSA_SHA_384", "ECDSA", 384), _sig("ECDSA_SHA_512", "ECDSA", 512),
    _sig("ML_DSA_SHAKE_256", "ML_DSA", None),
    # AWS: ED25519_SHA_512 takes RAW messages only, ED25519_PH_SHA_512 DIGEST (64 bytes) only
    SigningAlgorithm("ED25519_SHA_512", "ED25519", None, None, message_types=("RAW",)),
    SigningAlgorithm("ED25519_PH_SHA_512", "ED25519_PH", "sha512", 64, message_types=("DIGEST",)),
)})
#: botocore's SigningAlgorithmSpec enum (what a request may name at all)
SIGNING_ALGORITHM_NAMES = ("RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
                           "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
                           "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256",
                           "ED25519_SHA_512", "ED25519_PH_SHA_512")
ENCRYPTION_ALGORITHMS: Mapping[str, EncryptionAlgorithm] = MappingProxyType({a.name: a for a in (
    EncryptionAlgorithm(SYMMETRIC_DEFAULT, None), EncryptionAlgorithm("RSAES_OAEP_SHA_1", "sha1", 20),
    EncryptionAlgorithm("RSAES_OAEP_SHA_256", "sha256", 32),
)})
ENCRYPTION_ALGORITHM_NAMES = (SYMMETRIC_DEFAULT, "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")
MAC_ALGORITHMS: Mapping[str, MacAlgorithm] = MappingProxyType({a.name: a for a in (
    MacAlgorithm("HMAC_SHA_224", "sha224", 28), MacAlgorithm("HMAC_SHA_256", "sha256", 32),
    MacAlgorithm("HMAC_SHA_384", "sha384", 48), MacAlgorithm("HMAC_SHA_512", "sha512", 64),
)})
#: the order AWS's validation message lists them in
MAC_ALGORITHM_NAMES = ("HMAC_SHA_384", "HMAC_SHA_256", "HMAC_SHA_224", "HMAC_SHA_512")
KEY_AGREEMENT_ALGORITHMS = ("ECDH",)
#: botocore's EncapsulationAlgorithmSpec enum
ENCAPSULATION_ALGORITHMS = ("ML_KEM",)

RSA_SIGNING = ("RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
               "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512")
RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


# -- usages and operations --------------------------------------------------------

#: the usage an operation needs (GetPublicKey: any usage of an asymmetric key)
OPERATION_USAGE: Mapping[str, str | None] = MappingProxyType({
    "Encrypt": ENCRYPT_DECRYPT, "Decrypt": ENCRYPT_DECRYPT, "ReEncrypt": ENCRYPT_DECRYPT,
    "GenerateDataKey": ENCRYPT_DECRYPT, "GenerateDataKeyWithoutPlaintext": ENCRYPT_DECRYPT,
    "GenerateDataKeyPair": ENCRYPT_DECRYPT, "GenerateDataKeyPairWithoutPlaintext": ENCRYPT_DECRYPT,
    "Sign": SIGN_VERIFY, "Verify": SIGN_VERIFY, "GenerateMac": GENERATE_VERIFY_MAC,
    "VerifyMac": GENERATE_VERIFY_MAC, "DeriveSharedSecret": KEY_AGREEMENT, "GetPublicKey": None,
    "Encapsulate": ENCAPSULATE_DECAPSULATE, "Decapsulate": ENCAPSULATE_DECAPSULATE,
})
#: Grant operations that never take an encryption context (the asymmetric
#: and HMAC operations): a grant with encryption-context constraints cannot
#: list them, and cannot be made on a key whose operations take none.
GRANT_OPERATIONS_WITHOUT_CONTEXT = frozenset({"Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac",
                                              "DeriveSharedSecret", "Encapsulate", "Decapsulate"})
_SYMMETRIC_OPS = frozenset({"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                            "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"})
_RSA_ENCRYPT_OPS = frozenset({"Encrypt", "Decrypt", "ReEncrypt", "GetPublicKey"})
_SIGN_OPS = frozenset({"Sign", "Verify", "GetPublicKey"})
_MAC_OPS = frozenset({"GenerateMac", "VerifyMac"})
_AGREEMENT_OPS = frozenset({"DeriveSharedSecret", "GetPublicKey"})
_KEM_OPS = frozenset({"Encapsulate", "Decapsulate", "GetPublicKey"})


@dataclass(frozen=True)
class Usage:
    """What one usage of one key spec allows: its operations and algorithms."""

    name: str
    operations: frozenset[str]
    signing: tuple[str, ...] = ()
    encryption: tuple[str, ...] = ()
    mac: tuple[str, ...] = ()
    key_agreement: tuple[str, ...] = ()
    encapsulation: tuple[str, ...] = ()
    message_types: tuple[str, ...] = ()  # Sign/Verify's MessageType values


@dataclass(frozen=True)
class KeySpec:
    """One AWS key spec. `family` names the crypto.py recipe for its material:
    SYMMETRIC (256-bit AES-GCM material), RSA, EC (ECDSA/ECDH), ED25519,
    HMAC, ML_DSA, ML_KEM."""

    name: str
    family: str
    size: int  # RSA modulus bits; EC field bits; HMAC key bytes; ML-DSA (44/65/87), ML-KEM (512/768/1024) set
    usages: Mapping[str, Usage]
    curve: str | None = None  # the SEC 2 curve name of EC keys
    data_key_pair: bool = False  # also a DataKeyPairSpec (GenerateDataKeyPair)
    china_only: bool = False
    unsupported: str | None = None  # why keyledger cannot create it (None: it can)
    rsa_max_plaintext: Mapping[str, int] = field(default_factory=dict)  # per OAEP algorithm
    kem_ciphertext_bytes: int = 0  # ML-KEM: the one length a SharedSecretCiphertextBlob may have

    @property
    def asymmetric(self) -> bool:
        return self.family not in ("SYMMETRIC", "HMAC")

    @property
    def kind(self) -> str:
        """The key type an alias keeps (UpdateAlias): symmetric, asymmetric or HMAC."""
        return "HMAC" if self.family == "HMAC" else "asymmetric" if self.asymmetric else "symmetric"

    @property
    def rotatable(self) -> bool:
        """AWS rotates only symmetric encryption keys (automatic and on demand)."""
        return self.family == "SYMMETRIC"

    def usage(self, name: str) -> Usage:
        return self.usages[name]


def _usages(*usages: Usage) -> Mapping[str, Usage]:
    return MappingProxyType({u.name: u for u in usages})


def _rsa(bits: int) -> KeySpec:
    k = bits // 8
    return KeySpec(
        f"RSA_{bits}", "RSA", bits,
        _usages(Usage(ENCRYPT_DECRYPT, _RSA_ENCRYPT_OPS, encryption=RSA_ENCRYPTION),
                Usage(SIGN_VERIFY, _SIGN_OPS, signing=RSA_SIGNING, message_types=("RAW", "DIGEST"))),
        data_key_pair=True,
        # OAEP: k - 2 * hLen - 2 bytes
        rsa_max_plaintext=MappingProxyType({a: k - 2 * ENCRYPTION_ALGORITHMS[a].hash_bytes - 2
                                            for a in RSA_ENCRYPTION}))


def _ecc(name: str, curve: str, bits: int, signing: str, agreement: bool = True) -> KeySpec:
    usages = [Usage(SIGN_VERIFY, _SIGN_OPS, signing=(signing,), message_types=("RAW", "DIGEST"))]
    if agreement:
        usages.append(Usage(KEY_AGREEMENT, _AGREEMENT_OPS, key_agreement=KEY_AGREEMENT_ALGORITHMS))
    return KeySpec(name, "EC", bits, _usages(*usages), curve=curve, data_key_pair=True)


def _hmac(bits: int) -> KeySpec:
    return KeySpec(f"HMAC_{bits}", "HMAC", bits // 8,
                   _usages(Usage(GENERATE_VERIFY_MAC, _MAC_OPS, mac=(f"HMAC_SHA_{bits}",))))


def _ml_dsa(level: int) -> KeySpec:
    return KeySpec(f"ML_DSA_{level}", "ML_DSA", level,
                   _usages(Usage(SIGN_VERIFY, _SIGN_OPS, signing=("ML_DSA_SHAKE_256",),
                                 message_types=("RAW", "EXTERNAL_MU"))))


#: FIPS 203's ciphertext length of each ML-KEM parameter set (AWS's
#: SharedSecretCiphertextBlob: 768, 1088 and 1568 bytes)
ML_KEM_CIPHERTEXT_BYTES = MappingProxyType({512: 768, 768: 1088, 1024: 1568})


def _ml_kem(level: int) -> KeySpec:
    # The private key is kept (and a data key pair's is returned) as PKCS#8
    # in seed form, as AWS returns ML-KEM data key pairs.
    return KeySpec(f"ML_KEM_{level}", "ML_KEM", level,
                   _usages(Usage(ENCAPSULATE_DECAPSULATE, _KEM_OPS, encapsulation=ENCAPSULATION_ALGORITHMS)),
                   data_key_pair=True, kem_ciphertext_bytes=ML_KEM_CIPHERTEXT_BYTES[level])


_NOT_IMPLEMENTED = "keyledger does not implement {what}"

SPECS: Mapping[str, KeySpec] = MappingProxyType({s.name: s for s in (
    _rsa(2048), _rsa(3072), _rsa(4096),
    _ecc("ECC_NIST_P256", "secp256r1", 256, "ECDSA_SHA_256"),
    _ecc("ECC_NIST_P384", "secp384r1", 384, "ECDSA_SHA_384"),
    _ecc("ECC_NIST_P521", "secp521r1", 521, "ECDSA_SHA_512"),
    _ecc("ECC_SECG_P256K1", "secp256k1", 256, "ECDSA_SHA_256", agreement=False),
    KeySpec(SYMMETRIC_DEFAULT, "SYMMETRIC", 32, _usages(Usage(ENCRYPT_DECRYPT, _SYMMETRIC_OPS,
                                                              encryption=(SYMMETRIC_DEFAULT,)))),
    _hmac(224), _hmac(256), _hmac(384), _hmac(512),
    KeySpec("SM2", "SM2", 256, _usages(Usage(SIGN_VERIFY, _SIGN_OPS, signing=("SM2DSA",)),
                                       Usage(ENCRYPT_DECRYPT, _RSA_ENCRYPT_OPS, encryption=("SM2PKE",)),
                                       Usage(KEY_AGREEMENT, _AGREEMENT_OPS, key_agreement=("ECDH",))),
            data_key_pair=True, china_only=True,
            unsupported=_NOT_IMPLEMENTED.format(what="SM2 (the installed cryptography has no SM2)")),
    _ml_dsa(44), _ml_dsa(65), _ml_dsa(87),
    KeySpec("ECC_NIST_EDWARDS25519", "ED25519", 255,
            _usages(Usage(SIGN_VERIFY, _SIGN_OPS, signing=("ED25519_SHA_512", "ED25519_PH_SHA_512"),
                          message_types=("RAW", "DIGEST"))),
            data_key_pair=True),
    _ml_kem(512), _ml_kem(768), _ml_kem(1024),
)})
#: botocore's KeySpec enum order
KEY_SPEC_NAMES = ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
                  "ECC_SECG_P256K1", SYMMETRIC_DEFAULT, "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2",
                  "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768",
                  "ML_KEM_1024")
DATA_KEY_PAIR_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
                       "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")


def spec(name: str) -> KeySpec:
    """The entry of a key spec this ledger holds (a KeyState's key_spec)."""
    return SPECS[name]


# -- checks -----------------------------------------------------------------------

def _enum(field_name: str, value: object, allowed: tuple[str, ...]) -> ValidationException:
    return ValidationException(f"1 validation error detected: Value '{value}' at '{field_name}' failed to "
                               f"satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")


def check_enum(field_name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _enum(field_name, value, allowed)
    return value


def check_create(key_spec: str, key_usage: str | None, region: str,
                 family_available: Mapping[str, str | None] | None = None) -> tuple[KeySpec, str]:
    """The (spec, usage) a CreateKey may have, or AWS's refusal. `family_available`
    maps a family, or one spec's name, to the reason crypto.py cannot serve
    it (None: it can)."""
    check_enum("keySpec", key_spec, KEY_SPEC_NAMES)
    if key_usage is not None:
        check_enum("keyUsage", key_usage, KEY_USAGES)
    entry = SPECS[key_spec]
    if key_usage is None:
        if entry.family != "SYMMETRIC":
            raise ValidationException("You must specify a KeyUsage value for all KMS keys except for "
                                      "symmetric encryption keys.")
        key_usage = ENCRYPT_DECRYPT
    if key_usage not in entry.usages:
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    if entry.china_only and region not in CHINA_REGIONS:
        raise UnsupportedOperationException(f"KeySpec {key_spec} is supported only in China Regions.")
    if entry.unsupported is not None:
        raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported: {entry.unsupported}.")
    reason = _unavailable(entry, family_available)
    if reason is not None:
        raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported: {reason}.")
    return entry, key_usage


def _unavailable(entry: KeySpec, family_available: Mapping[str, str | None] | None) -> str | None:
    """Why crypto.py cannot serve a spec: its whole family, or this one spec
    (ML_KEM_512 where the installed cryptography has ML-KEM-768 and -1024 only)."""
    available = family_available or {}
    return available.get(entry.family) or available.get(entry.name)


def require_operation(key_spec: str, key_usage: str, operation: str, arn: str) -> Usage:
    """The usage entry of a key that may run `operation`, or AWS's refusal."""
    entry = SPECS[key_spec]
    usage = entry.usages.get(key_usage)
    if usage is not None and operation in usage.operations:
        return usage
    needed = OPERATION_USAGE.get(operation)
    if operation == "GetPublicKey":
        raise UnsupportedOperationException(f"{arn} key spec is {key_spec} which is not valid for GetPublicKey.")
    if needed != key_usage:
        raise InvalidKeyUsageException(f"{arn} key usage is {key_usage} which is not valid for {operation}.")
    raise InvalidKeyUsageException(f"{arn} key spec is {key_spec} which is not valid for {operation}.")


def _incompatible(algorithm: str, key_spec: str) -> InvalidKeyUsageException:
    return InvalidKeyUsageException(f"Algorithm {algorithm} is incompatible with key spec {key_spec}.")


def check_signing(key_spec: str, usage: Usage, algorithm: str, message_type: str,
                  message: bytes) -> SigningAlgorithm:
    """The signing algorithm of a Sign/Verify request after AWS's checks."""
    check_enum("signingAlgorithm", algorithm, SIGNING_ALGORITHM_NAMES)
    check_enum("messageType", message_type, MESSAGE_TYPES)
    if algorithm not in usage.signing:
        raise _incompatible(algorithm, key_spec)
    if message_type not in usage.message_types:
        raise ValidationException(f"Message type {message_type} is incompatible with key spec {key_spec}.")
    entry = SIGNING_ALGORITHMS[algorithm]
    if entry.message_types is not None and message_type not in entry.message_types:
        raise ValidationException(f"Message type {message_type} is incompatible with signing algorithm "
                                  f"{algorithm}.")
    if entry.unsupported is not None:
        raise UnsupportedOperationException(f"Signing algorithm {algorithm} is not supported: {entry.unsupported}.")
    if message_type == "DIGEST" and len(message) != entry.digest_bytes:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    if message_type == "EXTERNAL_MU" and len(message) != 64:
        raise ValidationException(f"External mu is invalid length for algorithm {algorithm}.")
    return entry


def check_mac(key_spec: str, usage: Usage, algorithm: str) -> MacAlgorithm:
    check_enum("macAlgorithm", algorithm, MAC_ALGORITHM_NAMES)
    if algorithm not in usage.mac:
        raise _incompatible(algorithm, key_spec)
    return MAC_ALGORITHMS[algorithm]


def check_encryption(key_spec: str, usage: Usage, algorithm: str) -> EncryptionAlgorithm:
    check_enum("encryptionAlgorithm", algorithm, ENCRYPTION_ALGORITHM_NAMES)
    if algorithm not in usage.encryption:
        raise _incompatible(algorithm, key_spec)
    return ENCRYPTION_ALGORITHMS[algorithm]


def check_asymmetric_encryption(key_spec: str, algorithm: EncryptionAlgorithm, plaintext: bytes | None,
                                encryption_context: Mapping[str, str]) -> None:
    """An RSA Encrypt/Decrypt: no encryption context (AWS supports it only
    with symmetric keys) and, to encrypt, OAEP's plaintext limit."""
    if encryption_context:
        raise ValidationException("EncryptionContext is not supported with asymmetric KMS keys.")
    limit = SPECS[key_spec].rsa_max_plaintext.get(algorithm.name)
    if plaintext is not None and limit is not None and len(plaintext) > limit:
        raise ValidationException(f"Algorithm {algorithm.name} and key spec {key_spec} cannot encrypt data "
                                  f"larger than {limit} bytes.")


def check_key_agreement(key_spec: str, usage: Usage, algorithm: str) -> str:
    check_enum("keyAgreementAlgorithm", algorithm, KEY_AGREEMENT_ALGORITHMS)
    if algorithm not in usage.key_agreement:
        raise _incompatible(algorithm, key_spec)
    return algorithm


def check_encapsulation(key_spec: str, usage: Usage, algorithm: str) -> str:
    """The EncapsulationAlgorithm of an Encapsulate/Decapsulate request."""
    check_enum("encapsulationAlgorithm", algorithm, ENCAPSULATION_ALGORITHMS)
    if algorithm not in usage.encapsulation:
        raise _incompatible(algorithm, key_spec)
    return algorithm


def check_kem_ciphertext(key_spec: str, blob: bytes) -> None:
    """AWS's one Decapsulate refusal of a blob: a length other than the key
    spec's (InvalidCiphertextException, no reason given). Any blob of the
    right length decapsulates (to a pseudo-random secret if it is not a real
    ciphertext: FIPS 203's implicit rejection)."""
    if len(blob) != SPECS[key_spec].kem_ciphertext_bytes:
        raise InvalidCiphertextException("")


def check_data_key_pair_spec(name: str, family_available: Mapping[str, str | None] | None = None) -> KeySpec:
    check_enum("keyPairSpec", name, DATA_KEY_PAIR_SPECS)
    entry = SPECS[name]
    reason = entry.unsupported or _unavailable(entry, family_available)
    if reason is not None:
        raise UnsupportedOperationException(f"KeyPairSpec {name} is not supported: {reason}.")
    return entry


def require_rotatable(key_spec: str) -> None:
    """AWS refuses rotation (automatic and on demand) of asymmetric and HMAC
    keys with an UnsupportedOperationException without a message."""
    if not SPECS[key_spec].rotatable:
        raise UnsupportedOperationException("")


class AlgorithmLists(TypedDict):
    """KeyMetadata's algorithm fields (spread into it as keywords)."""

    encryption_algorithms: list[str] | None
    signing_algorithms: list[str] | None
    mac_algorithms: list[str] | None
    key_agreement_algorithms: list[str] | None
    encapsulation_algorithms: list[str] | None


def metadata_algorithms(key_spec: str, key_usage: str) -> AlgorithmLists:
    """The algorithm lists DescribeKey shows, as AWS shows them: the lists
    the key's usage has, None (absent) for the others (snake_case names of
    KeyMetadata's fields)."""
    usage = SPECS[key_spec].usages[key_usage]
    return AlgorithmLists(encryption_algorithms=list(usage.encryption) or None,
                          signing_algorithms=list(usage.signing) or None, mac_algorithms=list(usage.mac) or None,
                          key_agreement_algorithms=list(usage.key_agreement) or None,
                          encapsulation_algorithms=list(usage.encapsulation) or None)


__all__ = [
    "SPECS",
    "EncryptionAlgorithm",
    "KeySpec",
    "MacAlgorithm",
    "SigningAlgorithm",
    "Usage",
    "check_create",
    "check_data_key_pair_spec",
    "check_encapsulation",
    "check_encryption",
    "check_kem_ciphertext",
    "check_key_agreement",
    "check_mac",
    "check_signing",
    "metadata_algorithms",
    "require_operation",
    "require_rotatable",
    "spec",
]
