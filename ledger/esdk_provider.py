"""The AWS Encryption SDK's master key provider over the embedded ledger.

`LedgerMasterKeyProvider` is what the ESDK's own `KMSMasterKey` is, with the
boto3 client replaced by the ledger's methods: a data key is
`generate_data_key(KeyId, NumberOfBytes=suite.kdf_input_len,
EncryptionContext)`, each further key wraps it with `encrypt(KeyId,
Plaintext, EncryptionContext)`, and opening one is `decrypt(CiphertextBlob,
KeyId=<the key ARN>, EncryptionContext)`, with the message's encryption
context (for signing suites it includes `aws-crypto-public-key`, as the ESDK
passes it to KMS). Each of those calls is one record in the log. The
encrypted data keys carry provider id `aws-kms` and the key ARN, exactly as
the ESDK's KMS master key writes them, so a message made here opens with the
stock `StrictAwsKmsMasterKeyProvider` pointed at `keyledger serve` for the
same ledger, and the reverse.

This module imports `aws_encryption_sdk` (the `files` extra); keyledger.envelope
imports it lazily. No AES, framing or header code lives here: the ESDK does all
of that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attr
from aws_encryption_sdk.exceptions import (
    DecryptKeyError,
    EncryptKeyError,
    GenerateKeyError,
    InvalidKeyIdError,
)
from aws_encryption_sdk.internal.str_ops import to_str
from aws_encryption_sdk.key_providers.base import (
    MasterKey,
    MasterKeyConfig,
    MasterKeyProvider,
    MasterKeyProviderConfig,
)
from aws_encryption_sdk.materials_managers.base import CryptoMaterialsManager
from aws_encryption_sdk.materials_managers.default import DefaultCryptoMaterialsManager
from aws_encryption_sdk.structures import DataKey, EncryptedDataKey, MasterKeyInfo

from keyledger.commands import key_arn
from keyledger.errors import KMSError

PROVIDER_ID = "aws-kms"  # what the ESDK's KMS master key writes: interoperable both ways


class Failures:
    """The ledger's refusals met while finding a data key, in order: (the
    operation, the key, the AWS-named error). The ESDK folds them into one
    'Unable to decrypt any data key'; keyledger.envelope shows the real one."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str, KMSError]] = []

    def add(self, operation: str, key: str, error: KMSError) -> None:
        self.errors.append((operation, key, error))


@attr.s(hash=True)
class LedgerMasterKeyConfig(MasterKeyConfig):  # type: ignore[misc]
    """A ledger key as an ESDK master key: `key_id` (any form the ledger's
    GenerateDataKey/Encrypt accept; on decrypt, the key ARN the message names)."""

    provider_id = PROVIDER_ID
    kms: Any = attr.ib(default=None, hash=True, repr=False)
    failures: Any = attr.ib(default=None, hash=True, repr=False)


class LedgerMasterKey(MasterKey):  # type: ignore[misc]
    """One ledger key behind the ESDK's MasterKey interface. Its three
    operations mirror aws_encryption_sdk.key_providers.kms.KMSMasterKey call
    for call, with the ledger in place of the boto3 client."""

    provider_id = PROVIDER_ID
    _config_class = LedgerMasterKeyConfig

    def __init__(self, **kwargs: Any) -> None:
        self._key_id = to_str(self.key_id)

    def _refused(self, operation: str, error: KMSError) -> None:
        if self.config.failures is not None:
            self.config.failures.add(operation, self._key_id, error)

    def _generate_data_key(self, algorithm: Any, encryption_context: Mapping[str, str] | None = None) -> DataKey:
        try:
            response = self.config.kms.generate_data_key(
                self._key_id, number_of_bytes=algorithm.kdf_input_len,
                encryption_context=encryption_context)
        except KMSError as error:
            self._refused("GenerateDataKey", error)
            raise GenerateKeyError(f"Master Key {self._key_id} unable to generate data key") from error
        return DataKey(key_provider=MasterKeyInfo(provider_id=self.provider_id, key_info=response.key_id),
                       data_key=response.plaintext, encrypted_data_key=response.ciphertext_blob)

    def _encrypt_data_key(self, data_key: Any, algorithm: Any,
                          encryption_context: Mapping[str, str] | None = None) -> EncryptedDataKey:
        try:
            response = self.config.kms.encrypt(self._key_id, data_key.data_key,
                                               encryption_context=encryption_context or None)
        except KMSError as error:
            self._refused("Encrypt", error)
            raise EncryptKeyError(f"Master Key {self._key_id} unable to encrypt data key") from error
        return EncryptedDataKey(key_provider=MasterKeyInfo(provider_id=self.provider_id, key_info=response.key_id),
                                encrypted_data_key=response.ciphertext_blob)

    def _decrypt_data_key(self, encrypted_data_key: Any, algorithm: Any,
                          encryption_context: Mapping[str, str] | None = None) -> DataKey:
        edk_key = to_str(encrypted_data_key.key_provider.key_info)
        if edk_key != self._key_id:
            raise DecryptKeyError(f"Cannot decrypt EDK wrapped by key_id={edk_key}, because it does not match "
                                  f"this provider's key_id={self._key_id}")
        try:
            response = self.config.kms.decrypt(encrypted_data_key.encrypted_data_key,
                                               encryption_context=encryption_context or None,
                                               key_id=self._key_id)
        except KMSError as error:
            self._refused("Decrypt", error)
            raise DecryptKeyError(f"Master Key {self._key_id} unable to decrypt data key") from error
        if response.key_id != self._key_id:
            raise DecryptKeyError(f"the ledger returned key {response.key_id} (expected {self._key_id})")
        if len(response.plaintext) != algorithm.data_key_len:
            raise DecryptKeyError("the data key's length does not match the algorithm suite's")
        return DataKey(key_provider=self.key_provider, data_key=response.plaintext,
                       encrypted_data_key=encrypted_data_key.encrypted_data_key)


@attr.s(hash=True)
class LedgerMasterKeyProviderConfig(MasterKeyProviderConfig):  # type: ignore[misc]
    kms: Any = attr.ib(default=None, hash=True, repr=False)
    #: on decrypt, only these key ARNs (empty: any key of this ledger, the
    #: ESDK's discovery mode limited to the ledger's account and region)
    decrypt_key_arns: tuple[str, ...] = attr.ib(default=(), hash=True, converter=tuple)
    failures: Any = attr.ib(default=None, hash=True, repr=False)


class LedgerMasterKeyProvider(MasterKeyProvider):  # type: ignore[misc]
    """The ESDK master key provider of one ledger (provider id `aws-kms`).

    Encrypting, the keys added (`add_master_keys_from_list`) each get the
    data key, the first one generating it. Decrypting, an encrypted data key
    is tried if it names a key ARN of this ledger's account and region (and,
    if `decrypt_key_arns` is given, one of those), so a provider combined
    with other providers (another ledger, another region, a raw key) never
    asks this ledger about a key it cannot have."""

    provider_id = PROVIDER_ID
    _config_class = LedgerMasterKeyProviderConfig

    def __init__(self, **kwargs: Any) -> None:
        kms = self.config.kms
        self._arn_prefix = key_arn(kms.region, kms.account, "")

    def _new_master_key(self, key_id: bytes) -> LedgerMasterKey:
        return LedgerMasterKey(key_id=key_id, kms=self.config.kms, failures=self.config.failures)

    def master_key_for_decrypt(self, key_info: bytes) -> LedgerMasterKey:
        arn = to_str(key_info)
        if not arn.startswith(self._arn_prefix) or len(arn) == len(self._arn_prefix):
            raise InvalidKeyIdError(f"{arn} is not a key of this ledger")
        if self.config.decrypt_key_arns and arn not in self.config.decrypt_key_arns:
            raise InvalidKeyIdError(f"{arn} is not one of the keys allowed to decrypt")
        return super().master_key_for_decrypt(key_info)  # type: ignore[no-any-return]


def provider(kms: Any, key_ids: Sequence[str] = (), *, decrypt_key_arns: Sequence[str] = (),
             failures: Failures | None = None) -> LedgerMasterKeyProvider:
    """A provider over `kms` with `key_ids` added for encryption."""
    mkp = LedgerMasterKeyProvider(kms=kms, decrypt_key_arns=tuple(decrypt_key_arns), failures=failures)
    if key_ids:
        mkp.add_master_keys_from_list(list(key_ids))
    return mkp


class ContextCheck(CryptoMaterialsManager):  # type: ignore[misc]
    """The ESDK's default materials manager, which on decrypt first checks
    that the message's encryption context has every pair the caller expects,
    before any data key is asked for (the check the ESDK's required-context
    manager makes for keyrings). `mismatch` builds the error to raise."""

    def __init__(self, master_key_provider: MasterKeyProvider, expected: Mapping[str, str],
                 mismatch: Any) -> None:
        self._inner = DefaultCryptoMaterialsManager(master_key_provider)
        self._expected = dict(expected)
        self._mismatch = mismatch

    def get_encryption_materials(self, request: Any) -> Any:
        return self._inner.get_encryption_materials(request)

    def decrypt_materials(self, request: Any) -> Any:
        found = request.encryption_context or {}
        differing = sorted(k for k, v in self._expected.items() if found.get(k) != v)
        if differing:
            raise self._mismatch(differing, found)
        return self._inner.decrypt_materials(request)
