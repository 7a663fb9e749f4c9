"""The conformance suite's two faces of one contract (the library, and a
real `keyledger serve` subprocess reached with boto3, client-side validation
off), the server process itself, and the small world of keys, aliases,
grants and a ciphertext each face builds. Test modules import them from
here; conftest.py only makes the fixtures."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from botocore.config import Config
from botocore.exceptions import ClientError

import keyledger
from keyledger.errors import KMSError
from keyledger.operations import OPERATIONS, request_kwargs
from keyledger.server import credentials as creds
from keyledger.server.protocol import encode_response

sys.path.insert(0, str(Path(__file__).parent))
import kit  # noqa: E402

REGION, ACCOUNT = "us-east-1", "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


@dataclass
class Outcome:
    response: dict[str, Any] | None  # the wire JSON of a success
    code: str | None = None
    message: str | None = None
    body: dict[str, Any] | None = None  # the wire JSON of an error

    def __repr__(self) -> str:
        return f"Outcome({self.code or 'OK'}: {self.message!r})"


class LibraryFace:
    """The library, called as the CLI and server call it: a request
    document turned into the method's arguments."""

    name = "library"

    def __init__(self, kms: Any) -> None:
        self.kms = kms

    def call(self, operation: str, params: dict[str, Any]) -> Outcome:
        op = OPERATIONS[operation]
        try:
            kwargs = request_kwargs(op, kit.to_document(params))
            result = getattr(self.kms, op.method)(**kwargs)
        except KMSError as error:
            return Outcome(None, error.code, error.message, {"__type": error.code, "message": error.message})
        raw = encode_response(result)
        return Outcome(json.loads(raw) if raw else {})


class ServerFace:
    """boto3 against `keyledger serve`, parameter validation off."""

    name = "server"

    def __init__(self, url: str, key: creds.AccessKeyLine) -> None:
        self.client = boto3.client(
            "kms", endpoint_url=url, region_name=REGION, aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
        self.last_body: bytes = b""
        self.client.meta.events.register("after-call.kms", self._keep)

    def _keep(self, http_response: Any, **_: Any) -> None:
        self.last_body = http_response.content

    def call(self, operation: str, params: dict[str, Any]) -> Outcome:
        method = getattr(self.client, OPERATIONS[operation].method)
        try:
            method(**params)
        except ClientError as error:
            body = json.loads(self.last_body) if self.last_body else None
            return Outcome(None, error.response["Error"]["Code"], error.response["Error"].get("Message", ""), body)
        return Outcome(json.loads(self.last_body) if self.last_body else {})


class World:
    """Keys, aliases, a grant and a ciphertext, made through one face."""

    POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}]})

    def __init__(self, face: Any) -> None:
        self.face = face
        self.counter = itertools.count()
        self.principal = ROOT
        self.key = self.new_key()
        self.ok("TagResource", {"KeyId": self.key, "Tags": [{"TagKey": "team", "TagValue": "a"}]})
        self.ok("RotateKeyOnDemand", {"KeyId": self.key})
        self.alias = self.fresh_alias()
        self.ok("CreateAlias", {"AliasName": self.alias, "TargetKeyId": self.key})
        self.blob = base64.b64decode(self.ok("Encrypt", {"KeyId": self.key, "Plaintext": b"hello"})["CiphertextBlob"])
        self.disabled = self.new_key()
        self.ok("DisableKey", {"KeyId": self.disabled})
        self.pending = self.pending_key()
        self.grant_id = self.new_grant()

    def ok(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        outcome = self.face.call(operation, params)
        assert outcome.response is not None, (operation, outcome)
        return outcome.response

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"

    def new_key(self) -> str:
        return self.ok("CreateKey", {"Description": "conformance"})["KeyMetadata"]["KeyId"]

    def pending_key(self) -> str:
        key = self.new_key()
        self.ok("ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": 7})
        return key

    def fresh_alias(self) -> str:
        return f"alias/conformance-{next(self.counter)}"

    def alias_of_new_key(self) -> str:
        name = self.fresh_alias()
        self.ok("CreateAlias", {"AliasName": name, "TargetKeyId": self.key})
        return name

    def new_grant(self) -> str:
        return self.ok("CreateGrant", {"KeyId": self.key, "GranteePrincipal": ROOT, "RetiringPrincipal": ROOT,
                                       "Operations": ["Decrypt"]})["GrantId"]

    def new_grant_token(self) -> str:
        return self.ok("CreateGrant", {"KeyId": self.key, "GranteePrincipal": ROOT, "RetiringPrincipal": ROOT,
                                       "Operations": ["Decrypt"]})["GrantToken"]

    # -- one valid request per operation -----------------------------------------------

    def baseline(self, operation: str) -> dict[str, Any]:
        """A request that succeeds (the implemented operations), or a
        well-formed one built from the model (any other: good enough for
        the input checks, which come first)."""
        known = {
            "CancelKeyDeletion": lambda: {"KeyId": self.pending_key()},
            "CreateAlias": lambda: {"AliasName": self.fresh_alias(), "TargetKeyId": self.key},
            "CreateGrant": lambda: {"KeyId": self.key, "GranteePrincipal": ROOT, "Operations": ["Decrypt"],
                                    "Name": "conformance"},
            "CreateKey": lambda: {"Description": "c", "Tags": [{"TagKey": "t", "TagValue": "v"}]},
            "Decrypt": lambda: {"CiphertextBlob": self.blob},
            "DeleteAlias": lambda: {"AliasName": self.alias_of_new_key()},
            "DescribeKey": lambda: {"KeyId": self.key},
            "DisableKey": lambda: {"KeyId": self.new_key()},
            "DisableKeyRotation": lambda: {"KeyId": self.key},
            "EnableKey": lambda: {"KeyId": self.key},
            "EnableKeyRotation": lambda: {"KeyId": self.key, "RotationPeriodInDays": 365},
            "Encrypt": lambda: {"KeyId": self.key, "Plaintext": b"hello", "EncryptionContext": {"a": "b"}},
            "GenerateDataKey": lambda: {"KeyId": self.key, "KeySpec": "AES_256"},
            "GenerateDataKeyWithoutPlaintext": lambda: {"KeyId": self.key, "NumberOfBytes": 32},
            "GenerateRandom": lambda: {"NumberOfBytes": 16},
            "GetKeyPolicy": lambda: {"KeyId": self.key, "PolicyName": "default"},
            "GetKeyRotationStatus": lambda: {"KeyId": self.key},
            "ListAliases": lambda: {"Limit": 10},
            "ListGrants": lambda: {"KeyId": self.key, "Limit": 10},
            "ListKeyPolicies": lambda: {"KeyId": self.key},
            "ListKeyRotations": lambda: {"KeyId": self.key, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"},
            "ListKeys": lambda: {"Limit": 10},
            "ListResourceTags": lambda: {"KeyId": self.key},
            "ListRetirableGrants": lambda: {"RetiringPrincipal": ROOT},
            "PutKeyPolicy": lambda: {"KeyId": self.key, "Policy": self.POLICY, "PolicyName": "default"},
            "ReEncrypt": lambda: {"CiphertextBlob": self.blob, "DestinationKeyId": self.key},
            "RetireGrant": lambda: {"GrantToken": self.new_grant_token()},
            "RevokeGrant": lambda: {"KeyId": self.key, "GrantId": self.new_grant()},
            "RotateKeyOnDemand": lambda: {"KeyId": self.new_key()},
            "ScheduleKeyDeletion": lambda: {"KeyId": self.new_key(), "PendingWindowInDays": 7},
            "TagResource": lambda: {"KeyId": self.key, "Tags": [{"TagKey": "k", "TagValue": "v"}]},
            "UntagResource": lambda: {"KeyId": self.key, "TagKeys": ["k"]},
            "UpdateAlias": lambda: {"AliasName": self.alias, "TargetKeyId": self.key},
            "UpdateKeyDescription": lambda: {"KeyId": self.key, "Description": "d"},
            # multi-Region keys (issue 12): a fresh primary each time, replicated to eu-west-1
            "ReplicateKey": lambda: {"KeyId": self.new_mrk(), "ReplicaRegion": "eu-west-1",
                                     "Description": "replica", "Tags": [{"TagKey": "t", "TagValue": "v"}]},
            "UpdatePrimaryRegion": lambda: {"KeyId": self.new_mrk(replicated=True), "PrimaryRegion": "eu-west-1"},
        }
        known.update(self._other_key_types())
        if operation in known:
            return known[operation]()
        return self._from_model(operation)

    def new_mrk(self, *, replicated: bool = False) -> str:
        """A multi-Region primary key (with a replica in eu-west-1)."""
        key: str = self.ok("CreateKey", {"MultiRegion": True})["KeyMetadata"]["KeyId"]
        if replicated:
            self.ok("ReplicateKey", {"KeyId": key, "ReplicaRegion": "eu-west-1"})
        return key

    def _typed_key(self, spec: str, usage: str) -> str:
        cache = self.__dict__.setdefault("_typed", {})
        if (spec, usage) not in cache:
            cache[spec, usage] = self.ok("CreateKey", {"KeySpec": spec, "KeyUsage": usage})["KeyMetadata"]["KeyId"]
        return cache[spec, usage]

    def _other_key_types(self) -> dict[str, Any]:
        b64 = base64.b64decode
        sign = lambda: self._typed_key("ECC_NIST_P256", "SIGN_VERIFY")  # noqa: E731
        mac = lambda: self._typed_key("HMAC_256", "GENERATE_VERIFY_MAC")  # noqa: E731
        agree = lambda: self._typed_key("ECC_NIST_P256", "KEY_AGREEMENT")  # noqa: E731

        def verify() -> dict[str, Any]:
            signed = self.ok("Sign", {"KeyId": sign(), "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"})
            return {"KeyId": sign(), "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256",
                    "Signature": b64(signed["Signature"])}

        def verify_mac() -> dict[str, Any]:
            made = self.ok("GenerateMac", {"KeyId": mac(), "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"})
            return {"KeyId": mac(), "Message": b"m", "MacAlgorithm": "HMAC_SHA_256", "Mac": b64(made["Mac"])}

        def derive() -> dict[str, Any]:
            other = self._typed_key("ECC_NIST_P256", "KEY_AGREEMENT") and self.new_agreement_peer()
            return {"KeyId": agree(), "KeyAgreementAlgorithm": "ECDH", "PublicKey": other}

        kem = lambda: self._typed_key("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")  # noqa: E731

        def decapsulate() -> dict[str, Any]:
            made = self.ok("Encapsulate", {"KeyId": kem(), "EncapsulationAlgorithm": "ML_KEM"})
            return {"KeyId": kem(), "EncapsulationAlgorithm": "ML_KEM",
                    "SharedSecretCiphertextBlob": b64(made["SharedSecretCiphertextBlob"])}

        return {
            "Sign": lambda: {"KeyId": sign(), "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"},
            "Verify": verify,
            "GetPublicKey": lambda: {"KeyId": sign()},
            "GenerateMac": lambda: {"KeyId": mac(), "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"},
            "VerifyMac": verify_mac,
            "GenerateDataKeyPair": lambda: {"KeyId": self.key, "KeyPairSpec": "ECC_NIST_P256"},
            "GenerateDataKeyPairWithoutPlaintext": lambda: {"KeyId": self.key, "KeyPairSpec": "ECC_NIST_P256"},
            "DeriveSharedSecret": derive,
            "GetParametersForImport": lambda: {"KeyId": self.external_key(), "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                               "WrappingKeySpec": "RSA_2048"},
            "ImportKeyMaterial": lambda: self.import_request(self.external_key()),
            "DeleteImportedKeyMaterial": lambda: {"KeyId": self.imported_key()},
            "Encapsulate": lambda: {"KeyId": kem(), "EncapsulationAlgorithm": "ML_KEM"},
            "Decapsulate": decapsulate,
            "GetKeyLastUsage": lambda: {"KeyId": self.key},
            "DescribeCustomKeyStores": lambda: {"Limit": 10},
        }

    def external_key(self) -> str:
        return self.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]

    def import_request(self, key_id: str) -> dict[str, Any]:
        """What a customer sends after wrapping 32 bytes offline (AWS's recipe)."""
        got = self.ok("GetParametersForImport", {"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                                 "WrappingKeySpec": "RSA_2048"})
        public = serialization.load_der_public_key(base64.b64decode(got["PublicKey"]))
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        return {"KeyId": key_id, "ImportToken": base64.b64decode(got["ImportToken"]),
                "EncryptedKeyMaterial": public.encrypt(os.urandom(32), oaep),  # type: ignore[union-attr]
                "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}

    def imported_key(self) -> str:
        key = self.external_key()
        self.ok("ImportKeyMaterial", self.import_request(key))
        return key

    def new_agreement_peer(self) -> bytes:
        peer = self.ok("CreateKey", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"})["KeyMetadata"]["KeyId"]
        return base64.b64decode(self.ok("GetPublicKey", {"KeyId": peer})["PublicKey"])

    def _from_model(self, operation: str) -> dict[str, Any]:
        shape = kit.input_shape(operation)
        params: dict[str, Any] = {}
        for member in shape.get("required", ()):
            spec = kit.SHAPES[shape["members"][member]["shape"]]
            name = shape["members"][member]["shape"]
            if name == "KeyIdType":
                params[member] = self.key
            elif name == "CiphertextType":
                params[member] = self.blob
            elif name == "PrincipalIdType":
                params[member] = ROOT
            elif spec["type"] == "list":
                params[member] = [kit._sample(kit.SHAPES[spec["member"]["shape"]])]  # noqa: SLF001
            else:
                params[member] = kit._sample(spec)  # noqa: SLF001
        return params


class Served:
    """`python -m keyledger.server serve` on a free loopback port (SigV4 on)."""

    def __init__(self, home: Path) -> None:
        kms = keyledger.open(home, create=True)
        self.keys_file = home / creds.DEFAULT_FILE
        self.root = creds.new_access_key(ROOT)
        creds.append(self.keys_file, self.root)
        alice = kms.create_user("alice").arn
        self.alice = creds.new_access_key(alice, "alice")
        kms.record_access_key(alice, self.alice.access_key_id)
        creds.append(self.keys_file, self.alice)
        kms.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keyledger.server", "serve", "--home", str(home), "--port", "0",
             "--sweep-interval", "0", "--access-log", "off"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.url = ""
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                if '"event":"listening"' in line:
                    self.url = json.loads(line)["url"]
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.proc.kill()
            raise AssertionError("keyledger serve did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def query_client(self, service: str, key: creds.AccessKeyLine) -> Any:
        """A boto3 client of a query-protocol service (iam, sts) on this
        server, signing with `key`, client-side validation off, no retries."""
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=key.access_key_id,
                            aws_secret_access_key=key.secret_access_key,
                            config=Config(retries={"total_max_attempts": 1}, parameter_validation=False))

    def assert_replays_and_verifies(self) -> None:
        """The ledger behind the server folds to its live tables, and its trail verifies."""
        from keyledger import audit
        from keyledger.projections import replay
        from keyledger.store import Store
        store = Store(str(self.keys_file.parent), readonly=True, create=False)
        try:
            with store.snapshot() as snap:
                report = replay.check(snap)
                assert report.ok, report.differences
                assert audit.verify(snap).ok
        finally:
            store.close()
