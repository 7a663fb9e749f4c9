"""Authorization through the service, on a real ledger (LMDB in tmp_path).

- Every public operation of KeyLedger is enumerated from the class and
  refused for a principal without permissions (a user made with
  create_user, no IAM policy, the default key policy): AccessDeniedException
  with AWS's message, and exactly one RequestDenied record naming the
  principal, the operation and the key. A new public method that is neither
  in the operation table nor in the short list of non-operations fails
  the test.
- Each operation is allowed by an IAM policy granting exactly its action(s)
  and refused by an explicit Deny of them: the action names are right.
- The three ways in: the key policy naming the principal, an IAM policy
  under the default key policy, a grant (usable at once with its token),
  with encryption-context conditions and constraints enforced; the
  condition keys the service fills in; RetireGrant and RevokeGrant; the
  policy-lockout safety check on PutKeyPolicy and CreateKey and its bypass;
  GetKeyPolicy / ListKeyPolicies.
- Decisions are the same live and after replay: the principals, grants and
  key policies folded from the log equal the live rows, and the pure
  evaluator on the replayed state (at the moment of each call) agrees with
  what the service decided, over random histories of policy and grant
  changes (hypothesis).
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clockkit import Clock
import keyledger
from keyledger import projections
from keyledger import events as ev
from keyledger import policy as authz
from keyledger.errors import (
    AccessDeniedException, CloudHsmClusterNotFoundException, CustomKeyStoreNotFoundException,
    InvalidGrantTokenException, MalformedPolicyDocumentException, NotFoundException, ValidationException,
)
from keyledger.service import KeyLedger, from_us, to_us
from keyledger.projections import key_row, principal_row, replay

sys.path.insert(0, str(Path(__file__).parent))
from test_import import wrap  # noqa: E402  (what a customer does offline to wrap key material)

ACCOUNT = keyledger.DEFAULT_ACCOUNT
REGION = keyledger.DEFAULT_REGION
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
EC = {"dept": "sales"}


def arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def deny(actions: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": actions, "Resource": resource, **extra}


def root_admin(actions: Any = "kms:*") -> dict[str, Any]:
    return {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": actions, "Resource": "*"}


def records(kms: KeyLedger, start: int = 0) -> list[ev.Record]:
    return list(kms.store.records(start))


def head(kms: KeyLedger) -> int:
    return kms.store.head().seq


def denied(call: Callable[[], Any]) -> AccessDeniedException:
    with pytest.raises(AccessDeniedException) as info:
        call()
    return info.value


@dataclass
class World:
    root: KeyLedger
    alice: str  # the principal under test
    bob: str
    key: str  # tagged Project=alpha, alias/orders, a grant for bob
    key2: str
    pending: str  # pending deletion
    blob: bytes  # under key, context EC
    grant_id: str  # on key, grantee bob, retiring bob
    signer: str = ""  # ECC_NIST_P256 SIGN_VERIFY, with `signature` over b"m"
    signature: bytes = b""
    mac_key: str = ""  # HMAC_256, with `mac` over b"m"
    mac: bytes = b""
    agreement: str = ""  # ECC_NIST_P256 KEY_AGREEMENT, and a peer's public key
    peer: bytes = b""
    mrk: str = ""  # a multi-Region primary key, with a replica in eu-west-1
    external: str = ""  # an EXTERNAL key with imported material, and what a re-import needs:
    import_token: bytes = b""  # a fresh token from GetParametersForImport
    wrapped: bytes = b""  # the same material wrapped under that token's public key
    message: bytes = b""  # an AWS Encryption SDK message under `key`, context EC
    tmp: Path = Path()  # where file operations write
    kem: str = ""  # ML_KEM_768 ENCAPSULATE_DECAPSULATE, with `kem_blob` encapsulated under it
    kem_blob: bytes = b""
    bob_key: str = ""  # an access key of bob's (its secret held by the ledger)

    def as_alice(self) -> KeyLedger:
        return self.root.as_caller(self.alice)

    def iam(self, *statements: dict[str, Any], who: str | None = None, name: str = "p") -> None:
        self.root.put_principal_policy(who or self.alice, name, doc(*statements))


@pytest.fixture
def world(kms) -> World:
    alice = kms.create_user("alice").arn
    bob = kms.create_user("bob").arn
    kms.put_principal_policy(bob, "bobs", doc(allow("kms:DescribeKey")))
    kms.create_user("leaving")  # DeleteUser's and DeleteRole's targets: no keys, no policies
    kms.create_role("leaving")
    kms.create_role("assumable", TRUST_ACCOUNT)  # AssumeRole's: its trust policy delegates to IAM
    key = kms.create_key(description="one", tags=[{"TagKey": "Project", "TagValue": "alpha"}]).key_metadata.key_id
    key2 = kms.create_key(description="two").key_metadata.key_id
    pending = kms.create_key(description="going").key_metadata.key_id
    kms.schedule_key_deletion(pending, pending_window_in_days=7)
    kms.create_alias("alias/orders", key)
    blob = kms.encrypt(key, b"secret", encryption_context=EC).ciphertext_blob
    grant_id = kms.create_grant(key, bob, ["Encrypt"], retiring_principal=bob).grant_id
    signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    mac_key = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    agreement = kms.create_key(key_spec="ECC_NIST_P256", key_usage="KEY_AGREEMENT").key_metadata.key_id
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(mrk, "eu-west-1")
    external = kms.create_key(origin="EXTERNAL").key_metadata.key_id
    material = os.urandom(32)
    first = kms.get_parameters_for_import(external, "RSAES_OAEP_SHA_256", "RSA_2048")
    kms.import_key_material(external, first.import_token, wrap(first.public_key, "RSAES_OAEP_SHA_256", material),
                            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    again = kms.get_parameters_for_import(external, "RSAES_OAEP_SHA_256", "RSA_2048")
    message = kms.encrypt_bytes(key, b"envelope", encryption_context=EC)
    tmp = Path(kms.store.path).parent / "files"
    tmp.mkdir()
    (tmp / "plain").write_bytes(b"file data")
    (tmp / "message").write_bytes(message)
    kem = kms.create_key(key_spec="ML_KEM_768", key_usage="ENCAPSULATE_DECAPSULATE").key_metadata.key_id
    kem_blob = kms.encapsulate(kem, "ML_KEM").shared_secret_ciphertext_blob
    made = World(kms, alice, bob, key, key2, pending, blob, grant_id, signer,
                 kms.sign(signer, b"m", "ECDSA_SHA_256").signature, mac_key,
                 kms.generate_mac(mac_key, b"m", "HMAC_SHA_256").mac, agreement,
                 kms.get_public_key(agreement).public_key, mrk, external, again.import_token,
                 wrap(again.public_key, "RSAES_OAEP_SHA_256", material), message, tmp)
    made.kem, made.kem_blob = kem, kem_blob
    made.bob_key = kms.create_access_key(bob).access_key_id
    return made


# -- the operation table --------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    name: str  # the AWS operation, as logged
    actions: tuple[str, ...]  # what an IAM policy must allow (empty: not governed by policies)
    key: str | None  # the World attribute naming the key it is refused on, None for keyless calls
    call: Callable[[KeyLedger, World], Any]
    resource: Callable[[World], str] | None = None  # for keyless calls: the resource in the message


def _star(_: World) -> str:
    return "*"


def _root(_: World) -> str:
    return f"arn:aws:iam::{ACCOUNT}:root"


IAM_DOC = doc(allow("kms:Encrypt"))
TRUST_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
STORE = "cks-1234567890abcdef0"


def _authorized_then_absent(call: Callable[[], Any]) -> None:
    """A custom key store call, once authorized, finds no store (a ledger has none)."""
    with pytest.raises((CustomKeyStoreNotFoundException, CloudHsmClusterNotFoundException)):
        call()
OPERATIONS: dict[str, Op] = {op_name: op for op_name, op in {
    # ReplicateKey also needs kms:CreateKey (in the replica's region), as AWS asks
    "replicate_key": Op("ReplicateKey", ("kms:ReplicateKey", "kms:CreateKey"), "mrk",
                        lambda s, w: s.replicate_key(w.mrk, "ap-south-1")),
    "update_primary_region": Op("UpdatePrimaryRegion", ("kms:UpdatePrimaryRegion",), "mrk",
                                lambda s, w: s.update_primary_region(w.mrk, "eu-west-1")),
    "create_key": Op("CreateKey", ("kms:CreateKey",), None, lambda s, w: s.create_key(description="new"), _star),
    "describe_key": Op("DescribeKey", ("kms:DescribeKey",), "key", lambda s, w: s.describe_key(w.key)),
    "list_keys": Op("ListKeys", ("kms:ListKeys",), None, lambda s, w: s.list_keys(), _star),
    "update_key_description": Op("UpdateKeyDescription", ("kms:UpdateKeyDescription",), "key",
                                 lambda s, w: s.update_key_description(w.key, "changed")),
    "enable_key": Op("EnableKey", ("kms:EnableKey",), "key", lambda s, w: s.enable_key(w.key)),
    "disable_key": Op("DisableKey", ("kms:DisableKey",), "key", lambda s, w: s.disable_key(w.key)),
    "schedule_key_deletion": Op("ScheduleKeyDeletion", ("kms:ScheduleKeyDeletion",), "key",
                                lambda s, w: s.schedule_key_deletion(w.key, pending_window_in_days=7)),
    "cancel_key_deletion": Op("CancelKeyDeletion", ("kms:CancelKeyDeletion",), "pending",
                              lambda s, w: s.cancel_key_deletion(w.pending)),
    "tag_resource": Op("TagResource", ("kms:TagResource",), "key",
                       lambda s, w: s.tag_resource(w.key, [{"TagKey": "Env", "TagValue": "prod"}])),
    "untag_resource": Op("UntagResource", ("kms:UntagResource",), "key",
                         lambda s, w: s.untag_resource(w.key, ["Project"])),
    "list_resource_tags": Op("ListResourceTags", ("kms:ListResourceTags",), "key",
                             lambda s, w: s.list_resource_tags(w.key)),
    "create_alias": Op("CreateAlias", ("kms:CreateAlias",), "key", lambda s, w: s.create_alias("alias/new", w.key)),
    "update_alias": Op("UpdateAlias", ("kms:UpdateAlias",), "key2",
                       lambda s, w: s.update_alias("alias/orders", w.key2)),
    "delete_alias": Op("DeleteAlias", ("kms:DeleteAlias",), "key", lambda s, w: s.delete_alias("alias/orders")),
    "list_aliases": Op("ListAliases", ("kms:ListAliases",), None, lambda s, w: s.list_aliases(), _star),
    "enable_key_rotation": Op("EnableKeyRotation", ("kms:EnableKeyRotation",), "key",
                              lambda s, w: s.enable_key_rotation(w.key)),
    "disable_key_rotation": Op("DisableKeyRotation", ("kms:DisableKeyRotation",), "key",
                               lambda s, w: s.disable_key_rotation(w.key)),
    "get_key_last_usage": Op("GetKeyLastUsage", ("kms:GetKeyLastUsage",), "key",
                             lambda s, w: s.get_key_last_usage(w.key)),
    "get_key_rotation_status": Op("GetKeyRotationStatus", ("kms:GetKeyRotationStatus",), "key",
                                  lambda s, w: s.get_key_rotation_status(w.key)),
    "rotate_key_on_demand": Op("RotateKeyOnDemand", ("kms:RotateKeyOnDemand",), "key",
                               lambda s, w: s.rotate_key_on_demand(w.key)),
    "list_key_rotations": Op("ListKeyRotations", ("kms:ListKeyRotations",), "key",
                             lambda s, w: s.list_key_rotations(w.key)),
    "put_key_policy": Op("PutKeyPolicy", ("kms:PutKeyPolicy",), "key",
                         lambda s, w: s.put_key_policy(w.key, authz.default_key_policy(ACCOUNT))),
    "get_key_policy": Op("GetKeyPolicy", ("kms:GetKeyPolicy",), "key", lambda s, w: s.get_key_policy(w.key)),
    "list_key_policies": Op("ListKeyPolicies", ("kms:ListKeyPolicies",), "key",
                            lambda s, w: s.list_key_policies(w.key)),
    "create_grant": Op("CreateGrant", ("kms:CreateGrant",), "key",
                       lambda s, w: s.create_grant(w.key, w.alice, ["Decrypt"])),
    "list_grants": Op("ListGrants", ("kms:ListGrants",), "key", lambda s, w: s.list_grants(w.key)),
    "list_retirable_grants": Op("ListRetirableGrants", ("kms:ListRetirableGrants",), None,
                                lambda s, w: s.list_retirable_grants(w.bob), _star),
    "retire_grant": Op("RetireGrant", (), "key", lambda s, w: s.retire_grant(key_id=w.key, grant_id=w.grant_id)),
    "revoke_grant": Op("RevokeGrant", ("kms:RevokeGrant",), "key", lambda s, w: s.revoke_grant(w.key, w.grant_id)),
    "create_user": Op("CreateUser", ("iam:CreateUser",), None, lambda s, w: s.create_user("carol"),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:user/carol"),
    "create_role": Op("CreateRole", ("iam:CreateRole",), None, lambda s, w: s.create_role("ops"),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:role/ops"),
    "put_principal_policy": Op("PutUserPolicy", ("iam:PutUserPolicy",), None,
                               lambda s, w: s.put_principal_policy(w.bob, "extra", IAM_DOC), lambda w: w.bob),
    "delete_principal_policy": Op("DeleteUserPolicy", ("iam:DeleteUserPolicy",), None,
                                  lambda s, w: s.delete_principal_policy(w.bob, "bobs"), lambda w: w.bob),
    "delete_user": Op("DeleteUser", ("iam:DeleteUser",), None, lambda s, w: s.delete_user("leaving"),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:user/leaving"),
    "delete_role": Op("DeleteRole", ("iam:DeleteRole",), None, lambda s, w: s.delete_role("leaving"),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:role/leaving"),
    "get_role": Op("GetRole", ("iam:GetRole",), None, lambda s, w: s.get_role("leaving"),
                   lambda w: f"arn:aws:iam::{ACCOUNT}:role/leaving"),
    "list_roles": Op("ListRoles", ("iam:ListRoles",), None, lambda s, w: s.list_roles(), _star),
    "tag_principal": Op("TagUser", ("iam:TagUser",), None, lambda s, w: s.tag_principal(w.bob, {"team": "x"}),
                        lambda w: w.bob),
    "untag_principal": Op("UntagUser", ("iam:UntagUser",), None, lambda s, w: s.untag_principal(w.bob, ["team"]),
                          lambda w: w.bob),
    "list_principal_tags": Op("ListUserTags", ("iam:ListUserTags",), None,
                              lambda s, w: s.list_principal_tags(w.bob), lambda w: w.bob),
    "update_assume_role_policy": Op("UpdateAssumeRolePolicy", ("iam:UpdateAssumeRolePolicy",), None,
                                    lambda s, w: s.update_assume_role_policy("assumable", TRUST_ACCOUNT),
                                    lambda w: f"arn:aws:iam::{ACCOUNT}:role/assumable"),
    "update_role": Op("UpdateRole", ("iam:UpdateRole",), None,
                      lambda s, w: s.update_role("assumable", description="probe", max_session_duration=7200),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:role/assumable"),
    "update_role_description": Op("UpdateRoleDescription", ("iam:UpdateRoleDescription",), None,
                                  lambda s, w: s.update_role_description("assumable", "probe"),
                                  lambda w: f"arn:aws:iam::{ACCOUNT}:role/assumable"),
    "assume_role": Op("AssumeRole", ("sts:AssumeRole",), None,
                      lambda s, w: s.assume_role(f"arn:aws:iam::{ACCOUNT}:role/assumable", "probe"),
                      lambda w: f"arn:aws:iam::{ACCOUNT}:role/assumable"),
    "get_user": Op("GetUser", ("iam:GetUser",), None, lambda s, w: s.get_user(w.bob), lambda w: w.bob),
    "list_users": Op("ListUsers", ("iam:ListUsers",), None, lambda s, w: s.list_users(), _star),
    "list_principal_policies": Op("ListUserPolicies", ("iam:ListUserPolicies",), None,
                                  lambda s, w: s.list_principal_policies(w.bob), lambda w: w.bob),
    "get_principal_policy": Op("GetUserPolicy", ("iam:GetUserPolicy",), None,
                               lambda s, w: s.get_principal_policy(w.bob, "bobs"), lambda w: w.bob),
    "simulate_policy": Op("SimulatePrincipalPolicy", ("iam:SimulatePrincipalPolicy",), None,
                          lambda s, w: s.simulate_policy(w.bob, "kms:Encrypt"), lambda w: w.bob),
    "create_access_key": Op("CreateAccessKey", ("iam:CreateAccessKey",), None,
                            lambda s, w: s.create_access_key(w.bob), lambda w: w.bob),
    "record_access_key": Op("CreateAccessKey", ("iam:CreateAccessKey",), None,
                            lambda s, w: s.record_access_key(w.bob, "AKIAIOSFODNN7EXAMPLE"), lambda w: w.bob),
    # (on the account root's keys, which the ledger does not track, so the world needs none)
    "update_access_key": Op("UpdateAccessKey", ("iam:UpdateAccessKey",), None,
                            lambda s, w: s.update_access_key(_root(w), "AKIAIOSFODNN7EXAMPLE", "Inactive"), _root),
    "delete_access_key": Op("DeleteAccessKey", ("iam:DeleteAccessKey",), None,
                            lambda s, w: s.delete_access_key(_root(w), "AKIAIOSFODNN7EXAMPLE"), _root),
    "get_access_key_last_used": Op("GetAccessKeyLastUsed", ("iam:GetAccessKeyLastUsed",), None,
                                   lambda s, w: s.get_access_key_last_used(w.bob_key), lambda w: w.bob),
    "list_access_keys": Op("ListAccessKeys", ("iam:ListAccessKeys",), None,
                           lambda s, w: s.list_access_keys(w.bob), lambda w: w.bob),
    "encrypt": Op("Encrypt", ("kms:Encrypt",), "key",
                  lambda s, w: s.encrypt(w.key, b"data", encryption_context=EC)),
    "decrypt": Op("Decrypt", ("kms:Decrypt",), "key", lambda s, w: s.decrypt(w.blob, encryption_context=EC)),
    "re_encrypt": Op("ReEncrypt", ("kms:ReEncryptFrom", "kms:ReEncryptTo"), "key",
                     lambda s, w: s.re_encrypt(w.blob, w.key2, source_encryption_context=EC)),
    "generate_data_key": Op("GenerateDataKey", ("kms:GenerateDataKey",), "key",
                            lambda s, w: s.generate_data_key(w.key, key_spec="AES_256", encryption_context=EC)),
    "generate_data_key_without_plaintext": Op(
        "GenerateDataKeyWithoutPlaintext", ("kms:GenerateDataKeyWithoutPlaintext",), "key",
        lambda s, w: s.generate_data_key_without_plaintext(w.key, key_spec="AES_256")),
    "generate_random": Op("GenerateRandom", ("kms:GenerateRandom",), None,
                          lambda s, w: s.generate_random(number_of_bytes=16), _star),
    "describe_custom_key_stores": Op("DescribeCustomKeyStores", ("kms:DescribeCustomKeyStores",), None,
                                     lambda s, w: s.describe_custom_key_stores(), _star),
    "connect_custom_key_store": Op("ConnectCustomKeyStore", ("kms:ConnectCustomKeyStore",), None,
                                   lambda s, w: _authorized_then_absent(lambda: s.connect_custom_key_store(STORE)),
                                   _star),
    "disconnect_custom_key_store": Op(
        "DisconnectCustomKeyStore", ("kms:DisconnectCustomKeyStore",), None,
        lambda s, w: _authorized_then_absent(lambda: s.disconnect_custom_key_store(STORE)), _star),
    "update_custom_key_store": Op(
        "UpdateCustomKeyStore", ("kms:UpdateCustomKeyStore",), None,
        lambda s, w: _authorized_then_absent(lambda: s.update_custom_key_store(STORE, new_custom_key_store_name="n")),
        _star),
    "delete_custom_key_store": Op("DeleteCustomKeyStore", ("kms:DeleteCustomKeyStore",), None,
                                  lambda s, w: _authorized_then_absent(lambda: s.delete_custom_key_store(STORE)),
                                  _star),
    "create_custom_key_store": Op(
        "CreateCustomKeyStore", ("kms:CreateCustomKeyStore",), None,
        lambda s, w: _authorized_then_absent(
            lambda: s.create_custom_key_store("hsm", cloud_hsm_cluster_id="cluster-abcdefghijk")), _star),
    "sign": Op("Sign", ("kms:Sign",), "signer", lambda s, w: s.sign(w.signer, b"m", "ECDSA_SHA_256")),
    "verify": Op("Verify", ("kms:Verify",), "signer",
                 lambda s, w: s.verify(w.signer, b"m", w.signature, "ECDSA_SHA_256")),
    "get_public_key": Op("GetPublicKey", ("kms:GetPublicKey",), "signer", lambda s, w: s.get_public_key(w.signer)),
    "generate_mac": Op("GenerateMac", ("kms:GenerateMac",), "mac_key",
                       lambda s, w: s.generate_mac(w.mac_key, b"m", "HMAC_SHA_256")),
    "verify_mac": Op("VerifyMac", ("kms:VerifyMac",), "mac_key",
                     lambda s, w: s.verify_mac(w.mac_key, b"m", "HMAC_SHA_256", w.mac)),
    "derive_shared_secret": Op("DeriveSharedSecret", ("kms:DeriveSharedSecret",), "agreement",
                               lambda s, w: s.derive_shared_secret(w.agreement, "ECDH", w.peer)),
    "encapsulate": Op("Encapsulate", ("kms:Encapsulate",), "kem", lambda s, w: s.encapsulate(w.kem, "ML_KEM")),
    "decapsulate": Op("Decapsulate", ("kms:Decapsulate",), "kem",
                      lambda s, w: s.decapsulate(w.kem, w.kem_blob, "ML_KEM")),
    "generate_data_key_pair": Op("GenerateDataKeyPair", ("kms:GenerateDataKeyPair",), "key",
                                 lambda s, w: s.generate_data_key_pair(w.key, "ECC_NIST_P256",
                                                                       encryption_context=EC)),
    "generate_data_key_pair_without_plaintext": Op(
        "GenerateDataKeyPairWithoutPlaintext", ("kms:GenerateDataKeyPairWithoutPlaintext",), "key",
        lambda s, w: s.generate_data_key_pair_without_plaintext(w.key, "ECC_NIST_P256", encryption_context=EC)),
    # imported key material (an EXTERNAL key whose material was imported: a re-import of the same material)
    "get_parameters_for_import": Op(
        "GetParametersForImport", ("kms:GetParametersForImport",), "external",
        lambda s, w: s.get_parameters_for_import(w.external, "RSAES_OAEP_SHA_256", "RSA_2048")),
    "import_key_material": Op(
        "ImportKeyMaterial", ("kms:ImportKeyMaterial",), "external",
        lambda s, w: s.import_key_material(w.external, w.import_token, w.wrapped,
                                           expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")),
    "delete_imported_key_material": Op(
        "DeleteImportedKeyMaterial", ("kms:DeleteImportedKeyMaterial",), "external",
        lambda s, w: s.delete_imported_key_material(w.external)),
    # Envelope encryption (keyledger's own methods, the AWS Encryption SDK over the ledger): each is
    # authorized as the one KMS operation it makes for one key (GenerateDataKey to encrypt, Decrypt to
    # decrypt), needs exactly that operation's action, and a refusal is that operation's one record
    "encrypt_bytes": Op("GenerateDataKey", ("kms:GenerateDataKey",), "key",
                        lambda s, w: s.encrypt_bytes(w.key, b"x", encryption_context=EC)),
    "encrypt_stream": Op("GenerateDataKey", ("kms:GenerateDataKey",), "key",
                         lambda s, w: s.encrypt_stream(w.key, io.BytesIO(b"x"), io.BytesIO(), encryption_context=EC)),
    "encrypt_file": Op("GenerateDataKey", ("kms:GenerateDataKey",), "key",
                       lambda s, w: s.encrypt_file(w.key, w.tmp / "plain", w.tmp / "out", encryption_context=EC)),
    "decrypt_bytes": Op("Decrypt", ("kms:Decrypt",), "key", lambda s, w: s.decrypt_bytes(w.message)),
    "decrypt_stream": Op("Decrypt", ("kms:Decrypt",), "key",
                         lambda s, w: s.decrypt_stream(io.BytesIO(w.message), io.BytesIO())),
    "decrypt_file": Op("Decrypt", ("kms:Decrypt",), "key",
                       lambda s, w: s.decrypt_file(w.tmp / "message", w.tmp / "opened")),
}.items()}

#: Public methods that are not AWS operations a caller is authorized for.
NON_OPERATIONS = {
    "close", "as_caller", "in_region", "region_name", "via_service", "from_address", "planned", "now", "checkpoint", "verifier_key", "rotate_due", "record_denied",
    "record_unauthenticated_refusals",  # the HTTP server's summaries of refusals it made itself
    "rotate_root_key",  # root-only, tested in tests/ledger/test_root_rotation.py
    "stage_root_key",  # root-only, a file of this node (tests/cluster/test_append_protocol.py)
    # an integration's hook, not a caller's operation: makes the AWS managed key alias/aws/<service> on a
    # service's first use, as AWS does, recorded as CreateKey by the service principal whoever asks
    # (tests/ledger/test_managed_keys.py); every use of the key is authorized by its managed-key policy
    "managed_key",
    "managed_key_via",  # a name: the kms:ViaService endpoint of a service in this region; no request
    # makes no request: returns the ledger as an ESDK master key provider, whose GenerateDataKey / Encrypt /
    # Decrypt calls are the ledger's own authorized operations (the envelope methods above go through it)
    "master_key_provider",
    # the HTTP server's SigV4 lookup of an access key the ledger holds: the signed request is what is
    # recorded (tests/ledger/test_held_access_keys.py)
    "held_access_key",
    # the same for temporary credentials (a session token): tests/ledger/test_assume_role.py
    "session_credentials",
    # the library's way to act as a session from its credentials (as the server does): a ledger view, no request
    "as_session",
    # STS's GetCallerIdentity needs no permission (AWS: not even an explicit deny stops it); recorded like
    # every request (tests/ledger/test_assume_role.py)
    "get_caller_identity",
}


def test_every_public_operation_is_in_the_table() -> None:
    public = {name for name, member in inspect.getmembers(KeyLedger)
              if not name.startswith("_") and callable(member)}
    unknown = public - OPERATIONS.keys() - NON_OPERATIONS
    assert not unknown, (f"new public KeyLedger method(s) {sorted(unknown)}: add each to OPERATIONS "
                         "(with its authorization check) or, if it is not an operation, to NON_OPERATIONS")
    assert not OPERATIONS.keys() & NON_OPERATIONS
    assert not (OPERATIONS.keys() | NON_OPERATIONS) - public, "the table names methods that no longer exist"


MESSAGE = re.compile(r"^User: (?P<principal>\S+) is not authorized to perform: (?P<action>\S+) "
                     r"on resource: (?P<resource>\S+) (?P<why>because .+|with an explicit deny in an? "
                     r"(resource|identity)-based policy)$")


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_every_operation_is_refused_without_permission(world: World, method: str) -> None:
    op = OPERATIONS[method]
    caller = world.as_alice()
    before = head(world.root)
    error = denied(lambda: op.call(caller, world))
    match = MESSAGE.match(error.message)
    assert match, error.message
    key_id = getattr(world, op.key) if op.key else None
    assert match["principal"] == world.alice
    assert match["action"] == (op.actions[0] if op.actions else "kms:RetireGrant")
    assert match["resource"] == (arn(key_id) if key_id else op.resource(world))
    assert match["why"].startswith("because")
    # exactly one record: the refusal, naming who, what and which key; nothing else changed
    (record,) = records(world.root, before)
    assert record.principal == world.alice
    assert record.operation == op.name
    assert record.event == ev.RequestDenied(op.name, "AccessDeniedException", error.message, key_id)


@pytest.mark.parametrize("method", sorted(m for m, op in OPERATIONS.items() if op.actions))
def test_each_operation_needs_exactly_its_actions(world: World, method: str) -> None:
    """Allowed by an IAM policy naming only its action(s) (default key
    policy); refused when an explicit Deny names any one of them."""
    op = OPERATIONS[method]
    caller = world.as_alice()
    for action in op.actions:
        world.iam(allow(["kms:*", "iam:*"]), deny(action))
        error = denied(lambda: op.call(caller, world))
        assert f"perform: {action} on resource" in error.message
        assert error.message.endswith("with an explicit deny in an identity-based policy")
    world.iam(allow(list(op.actions)))
    op.call(caller, world)
    assert records(world.root, head(world.root) - 1)[0].operation == op.name


def test_alias_and_arn_forms_are_refused_and_recorded_under_the_key_id(world: World) -> None:
    caller = world.as_alice()
    for form in ("alias/orders", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders", arn(world.key)):
        before = head(world.root)
        error = denied(lambda: caller.encrypt(form, b"x"))
        assert f"on resource: {arn(world.key)} " in error.message
        (record,) = records(world.root, before)
        assert record.event.key_id == world.key


# -- the ways in ------------------------------------------------------------------------

def test_key_policy_naming_the_principal(world: World) -> None:
    root, caller = world.root, world.as_alice()
    root.put_key_policy(world.key, doc(
        root_admin(),
        {"Sid": "use", "Effect": "Allow", "Principal": {"AWS": world.alice},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "sales"}}},
        {"Sid": "look", "Effect": "Allow", "Principal": {"AWS": world.alice}, "Action": "kms:DescribeKey",
         "Resource": "*"}))
    # no IAM policy at all: the key policy alone allows
    blob = caller.encrypt(world.key, b"hello", encryption_context=EC).ciphertext_blob
    assert caller.decrypt(blob, encryption_context=EC).plaintext == b"hello"
    assert caller.decrypt(world.blob, encryption_context=EC).plaintext == b"secret"
    caller.generate_data_key_without_plaintext(world.key, key_spec="AES_256", encryption_context=EC)
    caller.encrypt("alias/orders", b"hello", encryption_context=EC)
    assert caller.describe_key(world.key).key_metadata.key_id == world.key
    # the condition is enforced
    for context in ({"dept": "hr"}, {}, {"dept": "Sales"}):
        denied(lambda: caller.encrypt(world.key, b"x", encryption_context=context))
    denied(lambda: caller.disable_key(world.key))
    denied(lambda: caller.encrypt(world.key2, b"x", encryption_context=EC))  # another key: default policy
    # another user is not named (bob's grant on the key is his way in; carol has none)
    carol = root.create_user("carol").arn
    denied(lambda: root.as_caller(carol).encrypt(world.key, b"x", encryption_context=EC))


def test_iam_policy_under_the_default_key_policy(world: World) -> None:
    root, caller = world.root, world.as_alice()
    world.iam(allow(["kms:Encrypt", "kms:Decrypt"], arn(world.key),
                    Condition={"StringEquals": {"kms:EncryptionContext:dept": "sales"}}))
    blob = caller.encrypt(world.key, b"hello", encryption_context=EC).ciphertext_blob
    assert caller.decrypt(blob, encryption_context=EC).plaintext == b"hello"
    denied(lambda: caller.encrypt(world.key, b"x", encryption_context={"dept": "hr"}))
    denied(lambda: caller.encrypt(world.key2, b"x", encryption_context=EC))  # not this key's ARN
    denied(lambda: caller.describe_key(world.key))
    # a wildcard resource covers both keys
    world.iam(allow("kms:Encrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"))
    caller.encrypt(world.key2, b"x")
    # the key policy must delegate: a policy naming the account only for administration does not
    root.put_key_policy(world.key2, doc(root_admin(["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"])))
    error = denied(lambda: caller.encrypt(world.key2, b"x"))
    assert error.message.endswith("because no resource-based policy allows the kms:Encrypt action")
    # detaching the IAM policy takes the permission away again
    root.delete_principal_policy(world.alice, "p")
    denied(lambda: caller.encrypt(world.key, b"x", encryption_context=EC))
    # an explicit Deny in the key policy beats the IAM Allow
    world.iam(allow("kms:*"))
    caller.encrypt(world.key, b"x")
    root.put_key_policy(world.key, doc(root_admin(), {"Effect": "Deny", "Principal": {"AWS": world.alice},
                                                      "Action": "kms:Encrypt", "Resource": "*"}))
    error = denied(lambda: caller.encrypt(world.key, b"x"))
    assert error.message.endswith("with an explicit deny in a resource-based policy")
    caller.describe_key(world.key)


def test_a_grant_and_its_token_work_at_once_with_constraints(world: World) -> None:
    root, caller = world.root, world.as_alice()
    created = root.create_grant(world.key, world.alice, ["Encrypt", "Decrypt"], name="app",
                                constraints={"EncryptionContextSubset": EC})
    tokens = [created.grant_token]
    blob = caller.encrypt(world.key, b"hi", encryption_context={**EC, "extra": "1"},
                          grant_tokens=tokens).ciphertext_blob
    assert caller.decrypt(blob, encryption_context={**EC, "extra": "1"}, grant_tokens=tokens).plaintext == b"hi"
    caller.encrypt(world.key, b"hi", encryption_context={"Dept": "sales"})  # grant keys: any case (AWS)
    for context in ({"dept": "hr"}, {}, {"dept": "SALES"}, {"other": "sales"}):
        denied(lambda: caller.encrypt(world.key, b"x", encryption_context=context, grant_tokens=tokens))
    denied(lambda: caller.generate_data_key(world.key, key_spec="AES_256", encryption_context=EC))  # not granted
    denied(lambda: caller.describe_key(world.key))
    denied(lambda: caller.encrypt(world.key2, b"x", encryption_context=EC))  # grants are per key
    with pytest.raises(InvalidGrantTokenException):
        caller.encrypt(world.key, b"x", encryption_context=EC, grant_tokens=["not-a-token"])
    # EncryptionContextEquals: exactly that context; DescribeKey ignores the constraint
    root.create_grant(world.key, world.alice, ["GenerateDataKey", "DescribeKey"],
                      constraints={"EncryptionContextEquals": EC})
    caller.generate_data_key(world.key, key_spec="AES_256", encryption_context=EC)
    denied(lambda: caller.generate_data_key(world.key, key_spec="AES_256", encryption_context={**EC, "x": "y"}))
    caller.describe_key(world.key)
    # ListGrants shows both, with their constraints; the grantee filter works
    listed = root.list_grants(world.key, grantee_principal=world.alice).grants
    assert {g.grant_id for g in listed} >= {created.grant_id}
    (app,) = [g for g in listed if g.grant_id == created.grant_id]
    assert (app.name, app.operations, app.constraints.encryption_context_subset) == \
        ("app", ["Encrypt", "Decrypt"], EC)
    assert app.issuing_account == ROOT
    # CreateGrant is idempotent on the same name and grant; each call's token
    # is its own (AWS: "unique with every CreateGrant request"), and all work
    again = root.create_grant(world.key, world.alice, ["Encrypt", "Decrypt"], name="app",
                              constraints={"EncryptionContextSubset": EC})
    assert again.grant_id == created.grant_id and again.grant_token != created.grant_token
    caller.encrypt(world.key, b"x", encryption_context=EC, grant_tokens=[again.grant_token, created.grant_token])
    root.retire_grant(grant_token=again.grant_token)
    assert created.grant_id not in {g.grant_id for g in root.list_grants(world.key).grants}
    # a token of the earlier form (no nonce) still names its grant
    old_form = "KLGT1" + base64.urlsafe_b64encode(f"{world.key}:{world.grant_id}".encode()).decode().rstrip("=")
    root.retire_grant(grant_token=old_form)
    assert world.grant_id not in {g.grant_id for g in root.list_grants(world.key).grants}


def test_retire_grant(world: World) -> None:
    root, caller = world.root, world.as_alice()
    bob = root.as_caller(world.bob)
    g1 = root.create_grant(world.key, world.alice, ["Encrypt"], retiring_principal=world.bob).grant_id
    caller.encrypt(world.key, b"x")
    assert {g.grant_id for g in root.list_retirable_grants(world.bob).grants} == {g1, world.grant_id}
    # the grantee cannot retire a grant without the RetireGrant operation
    before = head(root)
    error = denied(lambda: caller.retire_grant(key_id=world.key, grant_id=g1))
    assert MESSAGE.match(error.message)
    (record,) = records(root, before)
    assert (record.principal, record.event.operation, record.event.key_id) == (world.alice, "RetireGrant", world.key)
    # the retiring principal can, with KeyId and GrantId
    bob.retire_grant(key_id=world.key, grant_id=g1)
    assert records(root, head(root) - 1)[0].event == ev.GrantRetired(world.key, g1)
    denied(lambda: caller.encrypt(world.key, b"x"))
    assert g1 not in {g.grant_id for g in root.list_grants(world.key).grants}
    with pytest.raises(NotFoundException):
        bob.retire_grant(key_id=world.key, grant_id=g1)
    # a grantee whose grant lists RetireGrant can retire it, with the token
    g2 = root.create_grant(world.key, world.alice, ["Encrypt", "RetireGrant"])
    caller.encrypt(world.key, b"x")
    caller.retire_grant(grant_token=g2.grant_token)
    denied(lambda: caller.encrypt(world.key, b"x"))
    # the account may retire any grant
    root.retire_grant(key_id=world.key, grant_id=world.grant_id)
    assert root.list_grants(world.key).grants == []


def test_revoke_grant(world: World) -> None:
    root, caller = world.root, world.as_alice()
    g = root.create_grant(world.key, world.alice, ["Encrypt"]).grant_id
    caller.encrypt(world.key, b"x")
    denied(lambda: caller.revoke_grant(world.key, g))  # a grantee cannot revoke
    root.revoke_grant(world.key, g)
    assert records(root, head(root) - 1)[0].event == ev.GrantRevoked(world.key, g)
    denied(lambda: caller.encrypt(world.key, b"x"))
    with pytest.raises(NotFoundException):
        root.revoke_grant(world.key, g)
    world.iam(allow("kms:RevokeGrant", arn(world.key)))
    caller.revoke_grant(world.key, world.grant_id)
    assert root.list_grants(world.key).grants == []


def _only(principal: str) -> str:
    return doc({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:*", "Resource": "*"})


def test_put_key_policy_finds_the_key_and_authorizes_before_reading_the_document(world: World) -> None:
    """A missing key is NotFound and a caller who may not put the policy is
    denied whatever the document holds: the document is read only for a
    caller who may replace it (it was parsed first, so a stranger learned
    whether a document was well formed)."""
    with pytest.raises(NotFoundException):
        world.root.put_key_policy("00000000-0000-0000-0000-000000000000", "not a policy")
    denied(lambda: world.as_alice().put_key_policy(world.key, "not a policy"))
    with pytest.raises(MalformedPolicyDocumentException):
        world.root.put_key_policy(world.key, "not a policy")


def test_the_aws_ram_key_policy_and_the_policy_name_condition_key(world: World) -> None:
    """AWS names two key policies: `default`, which you manage, and `AWS_RAM`,
    which RAM manages for a shared key. A ledger shares nothing through RAM:
    GetKeyPolicy of AWS_RAM is NotFound and PutKeyPolicy of it is AWS's
    ValidationException, each after authorization, which sees the name as
    `kms:PolicyName` ("default" when the request names none)."""
    root = world.root
    policy = root.get_key_policy(world.key).policy
    before = head(root)
    with pytest.raises(ValidationException) as info:
        root.put_key_policy(world.key, policy, policy_name="AWS_RAM")
    assert info.value.message == "The AWS_RAM policy can only be managed by the RAM service."
    with pytest.raises(NotFoundException, match="AWS_RAM"):
        root.get_key_policy(world.key, policy_name="AWS_RAM")
    assert root.list_key_policies(world.key).policy_names == ["default"]
    assert [(r.operation, r.event.error_code) for r in records(root, before)
            if isinstance(r.event, ev.RequestDenied)] == [("PutKeyPolicy", "ValidationException"),
                                                          ("GetKeyPolicy", "NotFoundException")]
    # a caller the condition key refuses is denied first, as AWS documents
    world.iam(allow(["kms:GetKeyPolicy", "kms:PutKeyPolicy"],
                    Condition={"StringEquals": {"kms:PolicyName": "default"}}))
    alice = world.as_alice()
    assert alice.get_key_policy(world.key).policy == policy
    denied(lambda: alice.get_key_policy(world.key, policy_name="AWS_RAM"))
    denied(lambda: alice.put_key_policy(world.key, policy, policy_name="AWS_RAM"))
    alice.put_key_policy(world.key, policy)  # no name given: kms:PolicyName is "default"
    with pytest.raises(NotFoundException, match="No such policy exists: 'custom'"):
        root.get_key_policy(world.key, policy_name="custom")


def test_tags_at_creation_need_tag_resource_too(world: World) -> None:
    """AWS: CreateKey's and ReplicateKey's Tags need kms:TagResource from an
    IAM policy, with the request's tags as aws:RequestTag and aws:TagKeys."""
    alice = world.as_alice()
    tags = [{"TagKey": "Project", "TagValue": "alpha"}]
    world.iam(allow(["kms:CreateKey", "kms:ReplicateKey", "kms:DescribeKey"]))
    alice.create_key(description="untagged")  # no tags: kms:CreateKey is enough
    before = head(world.root)
    message = denied(lambda: alice.create_key(tags=tags)).message
    assert re.fullmatch(rf"User: {re.escape(world.alice)} is not authorized to perform: kms:TagResource on "
                        rf"resource: arn:aws:kms:{REGION}:{ACCOUNT}:key/[0-9a-f-]{{36}} because no identity-based "
                        r"policy allows the kms:TagResource action", message), message
    denied(lambda: alice.replicate_key(world.mrk, "ap-south-1", tags=tags))
    assert [(r.operation, r.event.error_code) for r in records(world.root, before)] == \
        [("CreateKey", "AccessDeniedException"), ("ReplicateKey", "AccessDeniedException")]
    world.iam(allow(["kms:CreateKey", "kms:ReplicateKey", "kms:DescribeKey"]),
              allow("kms:TagResource", Condition={"StringEquals": {"aws:RequestTag/Project": "alpha"}}))
    key = alice.create_key(tags=tags).key_metadata.key_id
    assert world.root.list_resource_tags(key).tags[0].tag_value == "alpha"
    denied(lambda: alice.create_key(tags=[{"TagKey": "Project", "TagValue": "beta"}]))
    alice.replicate_key(world.mrk, "ap-south-1", tags=tags)


def test_policy_lockout_safety_check_on_put_key_policy(world: World) -> None:
    root, caller = world.root, world.as_alice()
    locked = _only(world.alice)
    before = head(root)
    with pytest.raises(MalformedPolicyDocumentException) as info:
        root.put_key_policy(world.key, locked)
    assert "will not allow you to update the key policy" in info.value.message
    (record,) = records(root, before)
    assert (record.event.error_code, record.event.key_id) == ("MalformedPolicyDocumentException", world.key)
    assert json.loads(root.get_key_policy(world.key).policy) == json.loads(authz.default_key_policy(ACCOUNT))
    # a policy that keeps the caller able to change it passes
    root.put_key_policy(world.key, doc(root_admin(["kms:PutKeyPolicy"]), json.loads(locked)["Statement"][0]))
    # the bypass: the root locks itself out, alice (named) keeps control
    root.put_key_policy(world.key, locked, bypass_policy_lockout_safety_check=True)
    assert root.as_caller(world.alice).get_key_policy(world.key).policy == locked
    denied(lambda: root.get_key_policy(world.key))
    denied(lambda: root.put_key_policy(world.key, authz.default_key_policy(ACCOUNT)))
    caller.put_key_policy(world.key, doc(root_admin(), json.loads(locked)["Statement"][0]))
    root.get_key_policy(world.key)
    # the bypass flag is a condition key: a Deny on it applies
    root.put_key_policy(world.key, doc(root_admin(), {
        "Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "*",
        "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}}))
    denied(lambda: root.put_key_policy(world.key, locked, bypass_policy_lockout_safety_check=True))


def test_policy_lockout_safety_check_on_create_key(world: World) -> None:
    root, caller = world.root, world.as_alice()
    locked = _only(world.alice)
    with pytest.raises(MalformedPolicyDocumentException):
        root.create_key(policy=locked)
    assert len(root.list_keys().keys) == 9  # no key was made (3 symmetric, 4 asymmetric/HMAC, 1 multi-Region,
    #                                        1 EXTERNAL)
    key = root.create_key(policy=locked, bypass_policy_lockout_safety_check=True).key_metadata.key_id
    assert caller.get_key_policy(key).policy == locked
    denied(lambda: root.describe_key(key))
    with pytest.raises(MalformedPolicyDocumentException) as info:
        root.create_key(policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}')
    assert "Effect" in info.value.message
    # a principal allowed only CreateKey can still create a key with the default policy:
    # the check applies to a policy the caller gives (AWS CreateKey, Policy parameter)
    world.iam(allow("kms:CreateKey"))
    made = caller.create_key().key_metadata.key_id
    assert json.loads(root.get_key_policy(made).policy) == json.loads(authz.default_key_policy(ACCOUNT))
    with pytest.raises(MalformedPolicyDocumentException):  # ... but not give one that locks it out
        caller.create_key(policy=_only(world.bob))
    world.iam(allow(["kms:CreateKey", "kms:PutKeyPolicy"]))
    caller.create_key(policy=authz.default_key_policy(ACCOUNT))


def test_get_key_policy_and_list_key_policies(world: World) -> None:
    root = world.root
    got = root.get_key_policy(world.key)
    assert got.policy_name == "default"
    assert json.loads(got.policy) == {
        "Version": "2012-10-17", "Id": "key-default-1",
        "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                       "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}]}
    assert root.list_key_policies(world.key).policy_names == ["default"]
    with pytest.raises(NotFoundException):
        root.get_key_policy(world.key, policy_name="other")
    custom = doc(root_admin(), {"Effect": "Allow", "Principal": {"AWS": world.bob}, "Action": "kms:Decrypt",
                                "Resource": "*"})
    root.put_key_policy(world.key, custom)
    assert root.get_key_policy(world.key).policy == custom  # the text, as given
    with pytest.raises(NotFoundException):  # GetKeyPolicy takes a key ID or key ARN, as AWS's does
        root.get_key_policy("alias/orders")
    with pytest.raises(MalformedPolicyDocumentException) as info:
        root.put_key_policy(world.key, '{"Statement": []}')
    assert "Version" in info.value.message
    with pytest.raises(MalformedPolicyDocumentException) as info:
        root.put_principal_policy(world.alice, "bad", doc(root_admin()))
    assert "must not name a Principal" in info.value.message


def test_users_and_their_policies(world: World) -> None:
    root = world.root
    assert {u.arn for u in root.list_users().users} == {world.alice, world.bob, f"arn:aws:iam::{ACCOUNT}:user/leaving"}
    role = root.create_role("app").arn
    assert role == f"arn:aws:iam::{ACCOUNT}:role/app"
    got = root.get_role("app")
    assert (got.user_name, got.arn, got.user_id) == ("app", role, "AROA" + got.user_id[4:])
    assert [x.arn for x in root.list_roles().roles] == [role, f"arn:aws:iam::{ACCOUNT}:role/assumable",
                                                        f"arn:aws:iam::{ACCOUNT}:role/leaving"]
    with pytest.raises(NotFoundException, match="The role with name alice cannot be found."):
        root.get_role("alice")  # a user is no role
    root.put_principal_policy(role, "use", doc(allow("kms:Encrypt")))
    root.as_caller(role).encrypt(world.key, b"x")
    assert root.list_principal_policies(world.bob).policy_names == ["bobs"]
    assert json.loads(root.get_principal_policy(world.bob, "bobs").policy_document) == \
        json.loads(doc(allow("kms:DescribeKey")))
    with pytest.raises(NotFoundException):
        root.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:user/nobody", "p", doc(allow("kms:*")))
    # an IAM administrator (not the root) can manage users
    world.iam(allow(["iam:*"]))
    admin = world.as_alice()
    admin.create_user("dave")
    admin.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:user/dave", "p", doc(allow("kms:DescribeKey")))
    root.as_caller(f"arn:aws:iam::{ACCOUNT}:user/dave").describe_key(world.key)


CONDITION_KEY_CASES = [
    # (IAM condition, an allowed call, a refused call)
    ({"StringEquals": {"kms:RequestAlias": "alias/orders"}},
     lambda s, w: s.encrypt("alias/orders", b"x"), lambda s, w: s.encrypt(w.key, b"x")),
    ({"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/orders"}},
     lambda s, w: s.encrypt(w.key, b"x"), lambda s, w: s.encrypt(w.key2, b"x")),
    ({"StringEquals": {"aws:ResourceTag/Project": "alpha"}},
     lambda s, w: s.encrypt(w.key, b"x"), lambda s, w: s.encrypt(w.key2, b"x")),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["dept"]},
      "Null": {"kms:EncryptionContextKeys": "false"}},
     lambda s, w: s.encrypt(w.key, b"x", encryption_context=EC),
     lambda s, w: s.encrypt(w.key, b"x", encryption_context={**EC, "more": "1"})),
    ({"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}},
     lambda s, w: s.encrypt(w.key, b"x"), lambda s, w: s.describe_key(w.key)),
    ({"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyUsage": "ENCRYPT_DECRYPT",
                       "kms:KeyOrigin": "AWS_KMS"}},
     lambda s, w: s.describe_key(w.key), lambda s, w: s.list_keys()),
    # AWS's deprecated names of kms:KeySpec and kms:KeyUsage, which work the same way
    ({"StringEquals": {"kms:CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                       "kms:CustomerMasterKeyUsage": "ENCRYPT_DECRYPT"}},
     lambda s, w: s.describe_key(w.key), lambda s, w: s.list_keys()),
    ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/al*"}},
     lambda s, w: s.describe_key(w.key), lambda s, w: s.root.as_caller(w.bob).describe_key(w.key)),  # same policy
    ({"DateLessThan": {"aws:CurrentTime": "2030-01-02T00:00:00Z"}},
     lambda s, w: s.describe_key(w.key), "tomorrow"),
    ({"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "Decrypt"]}},
     lambda s, w: s.create_grant(w.key, w.bob, ["Decrypt"]),
     lambda s, w: s.create_grant(w.key, w.bob, ["Decrypt", "CreateGrant"])),
    ({"StringEquals": {"aws:RequestTag/Env": "prod"}},
     lambda s, w: s.tag_resource(w.key, {"Env": "prod"}), lambda s, w: s.tag_resource(w.key, {"Env": "dev"})),
    # context values are compared as given (a builder that folded their case would pass "sales")
    ({"StringEquals": {"kms:EncryptionContext:Dept": "Sales"}},
     lambda s, w: s.encrypt(w.key, b"x", encryption_context={"dept": "Sales"}),
     lambda s, w: s.encrypt(w.key, b"x", encryption_context={"dept": "sales"})),
    ({"StringLike": {"kms:EncryptionContext:dept": "Sal*"}},
     lambda s, w: s.decrypt(s.root.encrypt(w.key, b"x", encryption_context={"Dept": "Sales"}).ciphertext_blob,
                            encryption_context={"Dept": "Sales"}),
     lambda s, w: s.decrypt(s.root.encrypt(w.key, b"x", encryption_context={"Dept": "sales"}).ciphertext_blob,
                            encryption_context={"Dept": "sales"})),
    ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "Dept"}},
     lambda s, w: s.generate_data_key(w.key, key_spec="AES_256", encryption_context={"Dept": "x"}),
     lambda s, w: s.generate_data_key(w.key, key_spec="AES_256", encryption_context={"dept": "x"})),
    ({"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}},
     lambda s, w: s.via_service("ssm.us-east-1.amazonaws.com").encrypt(w.key, b"x"),
     lambda s, w: s.encrypt(w.key, b"x")),
]


@dataclass
class _AsAlice:
    """What a CONDITION_KEY_CASES call receives: the service as alice, and the world."""
    service: KeyLedger
    root: KeyLedger

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)


@pytest.mark.parametrize(("condition", "allowed", "refused"), CONDITION_KEY_CASES,
                         ids=[next(iter(next(iter(c[0].values())))) for c in CONDITION_KEY_CASES])
def test_condition_keys_filled_in_by_the_service(world: World, clock: Clock, condition, allowed, refused) -> None:
    world.iam(allow(["kms:*"], Condition=condition))
    world.iam(allow(["kms:*"], Condition=condition), who=world.bob, name="bobs")  # bob: the same policy
    caller = _AsAlice(world.as_alice(), world.root)
    allowed(caller, world)
    if refused == "tomorrow":
        clock.now = T0 + timedelta(days=2)
        denied(lambda: allowed(caller, world))
    else:
        denied(lambda: refused(caller, world))


def test_update_alias_needs_the_permission_on_both_keys(world: World) -> None:
    """AWS: kms:UpdateAlias on the alias's current key and on the new one."""
    root, caller = world.root, world.as_alice()

    def target() -> str:
        (alias,) = [a for a in root.list_aliases().aliases if a.alias_name == "alias/orders"]
        return alias.target_key_id

    for allowed_on, refusing in ((world.key2, world.key), (world.key, world.key2)):
        world.iam(allow("kms:UpdateAlias", arn(allowed_on)))
        before = head(root)
        error = denied(lambda: caller.update_alias("alias/orders", world.key2))
        assert error.message == (f"User: {world.alice} is not authorized to perform: kms:UpdateAlias on resource: "
                                 f"{arn(refusing)} because no identity-based policy allows the kms:UpdateAlias "
                                 "action")
        (record,) = records(root, before)
        assert (record.principal, record.event.key_id) == (world.alice, refusing)
        assert target() == world.key
    world.iam(allow("kms:UpdateAlias", [arn(world.key), arn(world.key2)]))
    caller.update_alias("alias/orders", world.key2)
    assert target() == world.key2
    # back again: now the current key is key2, the new one key
    world.iam(allow("kms:UpdateAlias", arn(world.key)))
    denied(lambda: caller.update_alias("alias/orders", world.key))
    assert target() == world.key2


SSM = "ssm.us-east-1.amazonaws.com"


@pytest.mark.parametrize(("condition", "direct", "via_ssm", "via_other"), [
    ({"StringEquals": {"kms:ViaService": SSM}}, False, True, False),
    ({"StringEqualsIfExists": {"kms:ViaService": SSM}}, True, True, False),  # absent + IfExists: passes
    ({"Null": {"kms:ViaService": "false"}}, False, True, True),
    ({"StringEquals": {"kms:ViaService": SSM, "kms:CallerAccount": ACCOUNT}}, False, True, False),
    ({"StringEquals": {"kms:ViaService": SSM, "kms:CallerAccount": "444455556666"}}, False, False, False),
], ids=["StringEquals", "StringEqualsIfExists", "Null", "with-CallerAccount", "other-CallerAccount"])
def test_via_service_through_the_service(world: World, condition, direct, via_ssm, via_other) -> None:
    """kms:ViaService is set only for calls an integrated service makes on
    the caller's behalf (`via_service`); library, CLI and server calls are
    direct and have none."""
    world.iam(allow(["kms:Encrypt", "kms:Decrypt"], Condition=condition))
    caller = world.as_alice()
    for service, expected in ((caller, direct), (caller.via_service(SSM), via_ssm),
                              (caller.via_service("secretsmanager.us-east-1.amazonaws.com"), via_other)):
        before = head(world.root)
        try:
            blob = service.encrypt(world.key, b"x", encryption_context=EC).ciphertext_blob
            assert service.decrypt(blob, encryption_context=EC).plaintext == b"x"
            live = True
        except AccessDeniedException:
            live = False
        assert live is expected, service.via
        assert records(world.root, before)[0].principal == world.alice  # logged as the caller
    assert caller.via is None and caller.via_service(SSM).as_caller(world.bob).via == SSM


def test_a_key_policy_for_use_through_one_service_only(world: World) -> None:
    """The shape of an AWS managed key's policy: anyone in the account, but
    only through the service (kms:CallerAccount + kms:ViaService)."""
    world.root.put_key_policy(world.key2, doc(root_admin(), {
        "Sid": "Allow access through SSM for all principals in the account", "Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": SSM}}}))
    caller = world.as_alice()
    denied(lambda: caller.encrypt(world.key2, b"x"))
    blob = caller.via_service(SSM).encrypt(world.key2, b"x").ciphertext_blob
    denied(lambda: caller.decrypt(blob))
    assert caller.via_service(SSM).decrypt(blob).plaintext == b"x"
    denied(lambda: caller.via_service("ec2.us-east-1.amazonaws.com").decrypt(blob))
    outsider = world.root.as_caller("arn:aws:iam::444455556666:user/mallory")
    denied(lambda: outsider.via_service(SSM).decrypt(blob))
    with pytest.raises(ValueError):
        caller.via_service("ssm")


def test_reencrypt_checks_both_keys_and_records_the_refusing_one(world: World) -> None:
    caller = world.as_alice()
    world.iam(allow("kms:ReEncryptFrom", arn(world.key)), allow("kms:ReEncryptTo", arn(world.key2)))
    out = caller.re_encrypt(world.blob, world.key2, source_encryption_context=EC)
    assert out.key_id == arn(world.key2)
    for iam_allows, refusing in (([allow("kms:ReEncryptTo")], world.key),
                                 ([allow("kms:ReEncryptFrom")], world.key2)):
        world.iam(*iam_allows)
        before = head(world.root)
        error = denied(lambda: caller.re_encrypt(world.blob, world.key2, source_encryption_context=EC))
        assert f"on resource: {arn(refusing)} " in error.message
        (record,) = records(world.root, before)
        assert record.event.key_id == refusing


# -- live and replayed decisions agree -----------------------------------------------------

def decision_from(tables: projections.MemoryTables, account: str, principal: str, action: str, key_id: str,
                  ec: dict[str, str] | None, now: int, request_alias: str | None = None) -> authz.Decision:
    """The pure evaluator on replayed state, with the condition context the service builds."""
    state = tables.rows["keys"][key_row(key_id)]
    role = authz.role_of(principal)  # an assumed-role session acts with its role's policies
    found = tables.rows["principals"].get(principal_row(role or principal))
    iam_policies = [authz.parse(d, key_policy=False) for d in found.policies.values()] if found else []
    prefix = f"{key_id}#".encode()
    grants = [authz.Grant.of(g) for row, g in sorted(tables.rows["grants"].items()) if row.startswith(prefix)]
    ctx: dict[str, Any] = {"aws:principalarn": role or principal, "aws:currenttime": from_us(now),
                           "kms:calleraccount": authz.account_of(principal) or "", "kms:keyspec": state.key_spec,
                           "kms:keyusage": state.key_usage, "kms:keyorigin": state.origin,
                           "kms:resourcealiases": list(state.aliases)}
    ctx.update({"aws:resourcetag/" + k.lower(): v for k, v in state.tags.items()})
    if request_alias:
        ctx["kms:requestalias"] = request_alias
    if ec is not None:
        ctx["kms:encryptionalgorithm"] = "SYMMETRIC_DEFAULT"
        ctx["kms:encryptioncontextkeys"] = list(ec)
        ctx.update({"kms:encryptioncontext:" + k.lower(): v for k, v in ec.items()})
    req = authz.Request(principal, action, arn(key_id), ctx, ec)
    key_policy = authz.parse(state.policy or authz.default_key_policy(account))
    return authz.evaluate(req, key_policy=key_policy, iam_policies=iam_policies, grants=grants)


def assert_projections_replay(kms: KeyLedger) -> projections.MemoryTables:
    with kms.store.snapshot() as snap:
        live = snap.tables()
        rebuilt = projections.fold(snap.records())
        report = replay.check(snap)
    assert report.ok, report.differences
    for table in ("principals", "grants", "keys"):
        assert rebuilt.rows[table] == live[table], table
    return rebuilt


def test_decisions_are_the_same_live_and_after_replay(world: World) -> None:
    root = world.root
    world.iam(allow(["kms:Encrypt", "kms:DescribeKey"], arn(world.key)))
    world.iam(deny("kms:DescribeKey"), who=world.bob, name="no-look")
    root.create_grant(world.key2, world.bob, ["Encrypt"], constraints={"EncryptionContextEquals": EC})
    root.put_key_policy(world.key2, doc(root_admin(), {"Effect": "Allow", "Principal": {"AWS": world.alice},
                                                       "Action": "kms:DescribeKey", "Resource": "*"}))
    root.delete_principal_policy(world.bob, "bobs")
    root.revoke_grant(world.key, world.grant_id)
    tables = assert_projections_replay(root)
    users = (world.alice, world.bob, ROOT)
    calls = {"kms:Encrypt": lambda s, k, c: s.encrypt(k, b"x", encryption_context=c),
             "kms:DescribeKey": lambda s, k, c: s.describe_key(k)}
    seen = set()
    for principal in users:
        for key_id in (world.key, world.key2):
            for action, call in calls.items():
                for ec in (EC, {"dept": "hr"}):
                    expected = decision_from(tables, ACCOUNT, principal, action, key_id,
                                             ec if action == "kms:Encrypt" else None, root.now())
                    try:
                        call(root.as_caller(principal), key_id, ec)
                        live = True
                    except AccessDeniedException:
                        live = False
                    assert live is expected.allowed, (principal, action, key_id, ec, expected.reason)
                    seen.add(live)
    assert seen == {True, False}
    assert_projections_replay(root)


# Random histories: policy and grant changes interleaved with calls.

KEY_POLICIES = [
    lambda u: None,  # the default policy
    lambda u: doc(root_admin(), {"Effect": "Allow", "Principal": {"AWS": u["alice"]},
                                 "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
                                 "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "sales"}}}),
    lambda u: doc(root_admin(["kms:PutKeyPolicy", "kms:CreateGrant", "kms:RevokeGrant", "kms:ListGrants"]),
                  {"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}),
    lambda u: doc(root_admin(), {"Effect": "Deny", "Principal": {"AWS": u["bob"]}, "Action": "kms:*",
                                 "Resource": "*"}),
    lambda u: doc(root_admin(), {"Effect": "Allow", "NotPrincipal": {"AWS": u["alice"]},
                                 "NotAction": "kms:Decrypt", "Resource": "*"}),
    lambda u: doc(root_admin(), {"Effect": "Allow", "Principal": {"AWS": u["ops"]},  # a role: its sessions too
                                 "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}),
]
IAM_POLICIES = [
    doc(allow("kms:Encrypt")),
    doc(allow(["kms:Decrypt", "kms:DescribeKey"], f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*")),
    doc(allow("kms:*"), deny("kms:Decrypt", Condition={"StringNotEquals": {"kms:EncryptionContext:dept": "sales"}})),
    doc(allow("kms:*", Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/b*"}})),
    doc({"Effect": "Allow", "NotAction": "kms:Encrypt", "Resource": "*"}),
]
GRANT_OPS = [["Encrypt"], ["Decrypt", "DescribeKey"], ["Encrypt", "Decrypt"]]
CONSTRAINTS = [None, {"EncryptionContextSubset": EC}, {"EncryptionContextEquals": EC},
               {"SourceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders"}]  # allows nobody here
CONTEXTS = [{}, EC, {"dept": "hr"}, {**EC, "x": "y"}]
CALLS = ("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey")
USERS = ("alice", "bob", "ops")  # two users and a role, whose session also calls
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, "Action": "sts:AssumeRole"}]})

changes = st.one_of(
    st.tuples(st.just("key_policy"), st.integers(0, 1), st.integers(0, len(KEY_POLICIES) - 1)),
    st.tuples(st.just("iam"), st.sampled_from(USERS), st.integers(0, len(IAM_POLICIES) - 1)),
    st.tuples(st.just("detach"), st.sampled_from(USERS)),
    # DeleteUser and CreateUser again: the key policies and grants naming the old user name its unique id
    st.tuples(st.just("recreate"), st.sampled_from(USERS)),
    st.tuples(st.just("grant"), st.integers(0, 1), st.sampled_from(USERS), st.integers(0, len(GRANT_OPS) - 1),
              st.integers(0, len(CONSTRAINTS) - 1)),
    st.tuples(st.just("retire"), st.integers(0, 7)),
    st.tuples(st.just("revoke"), st.integers(0, 7)),
)
calls = st.tuples(st.just("call"), st.sampled_from((*USERS, "root", "session")), st.integers(0, 1),
                  st.sampled_from(CALLS), st.integers(0, len(CONTEXTS) - 1), st.booleans())
# each change is followed by a few calls, so every state of the history is probed
steps = st.lists(st.tuples(changes, st.lists(calls, min_size=1, max_size=3)), min_size=1, max_size=8).map(
    lambda pairs: [step for change, probes in pairs for step in (change, *probes)])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=steps)
def test_random_histories_decide_the_same_live_and_replayed(history) -> None:
    with tempfile.TemporaryDirectory() as home, \
            keyledger.open(home, create=True, durability="relaxed", clock=Clock()) as root:
        users = {"alice": root.create_user("alice").arn, "bob": root.create_user("bob").arn, "root": ROOT,
                 "ops": root.create_role("ops", TRUST).arn}
        users["session"] = root.as_caller(users["alice"]).assume_role(users["ops"], "s1").assumed_role_user.arn
        keys = [root.create_key().key_metadata.key_id for _ in range(2)]
        root.create_alias("alias/k0", keys[0])
        blobs = {(k, i): root.encrypt(k, b"p", encryption_context=c).ciphertext_blob
                 for k in keys for i, c in enumerate(CONTEXTS)}
        grants: list[tuple[str, str]] = []
        made_calls: list[tuple[int, str, str, str, dict[str, str], str | None, bool]] = []
        for step in history:
            kind = step[0]
            if kind == "key_policy":
                document = KEY_POLICIES[step[2]](users) or authz.default_key_policy(ACCOUNT)
                root.put_key_policy(keys[step[1]], document)
            elif kind == "iam":
                root.put_principal_policy(users[step[1]], "p", IAM_POLICIES[step[2]])
            elif kind == "detach":
                try:
                    root.delete_principal_policy(users[step[1]], "p")
                except NotFoundException:
                    pass
            elif kind == "recreate":
                if root.list_principal_policies(users[step[1]]).policy_names:
                    root.delete_principal_policy(users[step[1]], "p")
                if step[1] == "ops":
                    root.delete_role("ops")
                    root.create_role("ops", TRUST)
                else:
                    root.delete_user(step[1])
                    root.create_user(step[1])
            elif kind == "grant":
                _, k, user, ops, constraint = step
                g = root.create_grant(keys[k], users[user], GRANT_OPS[ops], constraints=CONSTRAINTS[constraint])
                grants.append((keys[k], g.grant_id))
            elif kind in ("retire", "revoke") and grants:
                key_id, grant_id = grants.pop(step[1] % len(grants))
                if kind == "retire":
                    root.retire_grant(key_id=key_id, grant_id=grant_id)
                else:
                    root.revoke_grant(key_id, grant_id)
            elif kind == "call":
                _, user, k, action, c, by_alias = step
                service = root.as_caller(users[user])
                key_input = "alias/k0" if by_alias and k == 0 else keys[k]
                ec = CONTEXTS[c]
                seq = head(root)
                try:
                    if action == "kms:Encrypt":
                        service.encrypt(key_input, b"x", encryption_context=ec)
                    elif action == "kms:Decrypt":
                        service.decrypt(blobs[(keys[k], c)], encryption_context=ec)
                    else:
                        service.describe_key(key_input)
                    live = True
                except AccessDeniedException:
                    live = False
                alias = "alias/k0" if key_input == "alias/k0" else None
                made_calls.append((seq, users[user], action, keys[k],
                                   ec if action != "kms:DescribeKey" else None, alias, live))
        assert_projections_replay(root)
        with root.store.snapshot() as snap:
            for seq, principal, action, key_id, ec, alias, live in made_calls:
                then, report = replay.state_at(snap, until_seq=seq - 1)
                assert report.chain_error is None
                expected = decision_from(then, ACCOUNT, principal, action, key_id, ec, to_us(T0), alias)
                assert live is expected.allowed, (principal, action, key_id, ec, expected.reason)
                event(f"{action} {'allowed' if live else 'denied'}: "
                      f"{re.sub(r'grant [0-9a-f]+', 'a grant', expected.reason.split(' the kms')[0])}")
                (record,) = snap.records(seq, seq + 1)  # the call's one record: its event, or the refusal
                assert isinstance(record.event, ev.RequestDenied) is (not live)
                assert record.principal == principal


def test_re_encrypt_on_the_same_key(world: World) -> None:
    """kms:ReEncryptOnSameKey (Bool), on both ReEncryptFrom and ReEncryptTo:
    whether the destination is the key that opens the ciphertext, however
    either is named (alias, ARN, or the ciphertext's own header)."""
    world.iam(allow("kms:ReEncrypt*", Condition={"Bool": {"kms:ReEncryptOnSameKey": "true"}}))
    caller = world.as_alice()
    blob = world.root.encrypt(world.key, b"x").ciphertext_blob
    for destination in (world.key, arn(world.key), "alias/orders"):
        out = caller.re_encrypt(blob, destination)
        assert out.key_id == arn(world.key) and out.source_key_id == arn(world.key)
    caller.re_encrypt(blob, world.key, source_key_id="alias/orders")
    for destination in (world.key2, arn(world.key2)):
        error = denied(lambda: caller.re_encrypt(blob, destination))
        assert "kms:ReEncryptFrom" in error.message
    assert world.root.re_encrypt(blob, world.key2).key_id == arn(world.key2)  # the root needs no condition
    # the opposite rule: rotate data onto another key only
    world.iam(allow("kms:ReEncrypt*", Condition={"Bool": {"kms:ReEncryptOnSameKey": "false"}}))
    assert caller.re_encrypt(blob, world.key2).key_id == arn(world.key2)
    denied(lambda: caller.re_encrypt(blob, "alias/orders"))
    # From on the source alone: the To check sees the same answer
    world.iam(allow("kms:ReEncryptFrom"), allow("kms:ReEncryptTo", Condition={"Bool": {"kms:ReEncryptOnSameKey":
                                                                                        "true"}}))
    caller.re_encrypt(blob, world.key)
    assert "kms:ReEncryptTo" in denied(lambda: caller.re_encrypt(blob, world.key2)).message
