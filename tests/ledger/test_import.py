"""Imported key material (Origin EXTERNAL) through a real ledger: the
import flow with material wrapped by `cryptography` and by the `openssl`
command line, every wrapping algorithm and wrapping key spec, the token's
checks, re-import of the same material only, expiry driven by the injected
clock, DeleteImportedKeyMaterial, rotation to NEW_KEY_MATERIAL, HMAC and
asymmetric material, two ledgers holding the same material, and replay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from clockkit import Clock
import keyledger
from keyledger import commands as cmd
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException, ExpiredImportTokenException, IncorrectKeyMaterialException,
    InvalidCiphertextException, InvalidImportTokenException, KMSInvalidStateException, NotFoundException,
    UnsupportedOperationException, ValidationException,
)
from keyledger.projections import replay

DAY = timedelta(days=1)
HASHES = {"SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256}



@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock) as service:
        yield service


def wrap(public_der: bytes, algorithm: str, material: bytes) -> bytes:
    """What a customer does offline, with pyca/cryptography (AWS's recipe)."""
    public = serialization.load_der_public_key(public_der)
    h = HASHES[algorithm.rsplit("_", 2)[-2] + "_" + algorithm.rsplit("_", 1)[-1]]
    oaep = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def external_key(kms, **kwargs) -> str:
    return kms.create_key(origin="EXTERNAL", **kwargs).key_metadata.key_id


def do_import(kms, key_id: str, material: bytes, *, algorithm: str = "RSAES_OAEP_SHA_256",
              spec: str = "RSA_2048", **kwargs):
    params = kms.get_parameters_for_import(key_id, algorithm, spec)
    if "valid_to" not in kwargs and kwargs.get("expiration_model") is None:
        kwargs["expiration_model"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    return kms.import_key_material(key_id, params.import_token, wrap(params.public_key, algorithm, material),
                                   **kwargs)


def records(kms) -> list[ev.Record]:
    with kms.store.snapshot() as snap:
        return list(snap.records(0))


# -- the flow -------------------------------------------------------------------------

def test_external_key_waits_for_its_material(kms) -> None:
    meta = kms.create_key(origin="EXTERNAL", description="byok").key_metadata
    assert (meta.origin, meta.key_state, meta.enabled) == ("EXTERNAL", "PendingImport", False)
    assert meta.current_key_material_id is None and meta.expiration_model is None
    with pytest.raises(KMSInvalidStateException, match=f"{meta.arn} is pending import.$"):
        kms.encrypt(meta.key_id, b"x")
    for call in (kms.enable_key, kms.disable_key):
        with pytest.raises(KMSInvalidStateException, match="is pending import"):
            call(meta.key_id)
    with pytest.raises(UnsupportedOperationException):
        kms.enable_key_rotation(meta.key_id)
    (created,) = [r.event for r in records(kms) if isinstance(r.event, ev.KeyCreated)]
    assert created.origin == "EXTERNAL" and created.material.wrapped == b""  # nothing was generated


@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
                                       "RSA_AES_KEY_WRAP_SHA_256"])
def test_every_wrapping_algorithm_and_key_spec(kms, clock, algorithm: str, spec: str) -> None:
    if spec != "RSA_2048" and algorithm != "RSAES_OAEP_SHA_256":
        pytest.skip("one algorithm is enough for the longer wrapping keys")
    key = external_key(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(key, algorithm, spec)
    assert params.key_id == cmd.key_arn(kms.region, kms.account, key)
    assert params.parameters_valid_to == clock.now + DAY
    public = serialization.load_der_public_key(params.public_key)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == int(spec[4:])
    out = kms.import_key_material(key, params.import_token, wrap(params.public_key, algorithm, material),
                                  expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert out.key_material_id == cmd.key_material_id(key, 1)
    meta = kms.describe_key(key).key_metadata
    assert (meta.key_state, meta.expiration_model, meta.valid_to) == ("Enabled", "KEY_MATERIAL_DOES_NOT_EXPIRE",
                                                                      None)
    assert meta.current_key_material_id == out.key_material_id
    blob = kms.encrypt(key, b"secret", encryption_context={"a": "b"}).ciphertext_blob
    assert blob[:2] == b"KL"  # the ledger's own ciphertext format
    assert kms.decrypt(blob, encryption_context={"a": "b"}).plaintext == b"secret"


def test_nothing_secret_reaches_the_log(kms) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")
    kms.import_key_material(key, params.import_token, wrap(params.public_key, "RSAES_OAEP_SHA_256", material),
                            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    with kms.store.snapshot() as snap:
        raw = b"".join(r.body for r in snap.raw_records(0))
    assert material not in raw and params.import_token not in raw
    (issued,) = [r.event for r in records(kms) if isinstance(r.event, ev.ImportParametersIssued)]
    assert issued.public_key == params.public_key
    assert len(issued.wrapped_private_key) > 1000  # a PKCS#8 RSA-2048 key, sealed
    assert issued.wrapped_private_key[12:40] not in params.import_token  # sealed again inside the token


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"])
def test_material_wrapped_by_openssl(kms, tmp_path, algorithm: str) -> None:
    """The flow of AWS's guide, with openssl doing the wrapping."""
    key = external_key(kms)
    params = kms.get_parameters_for_import(key, algorithm, "RSA_4096")
    (tmp_path / "WrappingPublicKey.der").write_bytes(params.public_key)
    material = tmp_path / "PlaintextKeyMaterial.bin"
    subprocess.run(["openssl", "rand", "-out", str(material), "32"], check=True)
    md = "sha256" if algorithm.endswith("256") else "sha1"
    oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}"]
    rsa_encrypt = ["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "WrappingPublicKey.der"),
                   "-keyform", "DER", *oaep]
    out = tmp_path / "EncryptedKeyMaterial.bin"
    if algorithm.startswith("RSAES"):
        subprocess.run([*rsa_encrypt, "-in", str(material), "-out", str(out)], check=True)
    else:
        aes = tmp_path / "aes-key.bin"
        subprocess.run(["openssl", "rand", "-out", str(aes), "32"], check=True)
        wrapped = tmp_path / "key-material-wrapped.bin"
        subprocess.run(["openssl", "enc", "-id-aes256-wrap-pad", "-K", aes.read_bytes().hex(), "-iv", "A65959A6",
                        "-in", str(material), "-out", str(wrapped)], check=True)
        subprocess.run([*rsa_encrypt, "-in", str(aes), "-out", str(tmp_path / "aes-key-wrapped.bin")], check=True)
        out.write_bytes((tmp_path / "aes-key-wrapped.bin").read_bytes() + wrapped.read_bytes())
    kms.import_key_material(key, params.import_token, out.read_bytes(),
                            expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(key, b"hello").ciphertext_blob
    assert kms.decrypt(blob).plaintext == b"hello"
    # the same material again, wrapped with cryptography under fresh parameters, is a re-import
    do_import(kms, key, material.read_bytes())


# -- the token and the material are checked ------------------------------------------

def test_tokens_bind_key_wrapping_key_and_time(kms, clock) -> None:
    key, other = external_key(kms), external_key(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")
    wrapped = wrap(params.public_key, "RSAES_OAEP_SHA_256", material)
    no_expiry = {"expiration_model": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
    with pytest.raises(InvalidImportTokenException):  # another key's token
        kms.import_key_material(other, params.import_token, wrapped, **no_expiry)
    tampered = bytearray(params.import_token)
    tampered[-1] ^= 1
    for token in (bytes(tampered), b"not a token", params.import_token[:40]):
        with pytest.raises(InvalidImportTokenException):
            kms.import_key_material(key, token, wrapped, **no_expiry)
    # material wrapped under another (fresh) wrapping key does not unwrap with this token
    fresh = kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")
    with pytest.raises(InvalidCiphertextException):
        kms.import_key_material(key, params.import_token, wrap(fresh.public_key, "RSAES_OAEP_SHA_256", material),
                                **no_expiry)
    clock.advance(DAY)  # exactly 24 hours later the parameters are void
    with pytest.raises(ExpiredImportTokenException):
        kms.import_key_material(key, params.import_token, wrapped, **no_expiry)
    denied = [r.event for r in records(kms) if isinstance(r.event, ev.RequestDenied)]
    assert [d.error_code for d in denied][-1] == "ExpiredImportTokenException"
    assert kms.describe_key(key).key_metadata.key_state == "PendingImport"


def test_material_must_fit_the_key_spec(kms) -> None:
    key = external_key(kms)
    for bad in (os.urandom(16), os.urandom(33), b""):
        with pytest.raises((IncorrectKeyMaterialException, InvalidCiphertextException)):
            do_import(kms, key, bad)
    hmac_key = external_key(kms, key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, hmac_key, os.urandom(31))


def test_expiration_model_rules(kms, clock) -> None:
    key = external_key(kms)
    with pytest.raises(ValidationException, match="validTo"):
        do_import(kms, key, os.urandom(32), expiration_model="KEY_MATERIAL_EXPIRES")
    with pytest.raises(ValidationException):
        do_import(kms, key, os.urandom(32), expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
                  valid_to=clock.now + DAY)
    with pytest.raises(ValidationException):
        do_import(kms, key, os.urandom(32), valid_to=clock.now - DAY)
    with pytest.raises(ValidationException):
        do_import(kms, key, os.urandom(32), valid_to=clock.now + 366 * DAY)


def test_only_external_keys_import(kms) -> None:
    key = kms.create_key().key_metadata.key_id
    for call in (lambda: kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048"),
                 lambda: kms.delete_imported_key_material(key)):
        with pytest.raises(UnsupportedOperationException, match="origin is AWS_KMS"):
            call()


# -- re-import, expiry, deletion -------------------------------------------------------

def test_reimport_only_the_same_material(kms) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    do_import(kms, key, material)
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, key, os.urandom(32))  # default after the first: EXISTING_KEY_MATERIAL
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, key, material, import_type="NEW_KEY_MATERIAL")  # already the key's
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, key, material, key_material_id="0" * 64)
    again = do_import(kms, key, material, key_material_id=cmd.key_material_id(key, 1))
    assert again.key_material_id == cmd.key_material_id(key, 1)


def test_expiry_by_the_clock_and_reimport(kms, clock) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    valid_to = clock.now + 10 * DAY
    do_import(kms, key, material, valid_to=valid_to)
    meta = kms.describe_key(key).key_metadata
    assert (meta.expiration_model, meta.valid_to) == ("KEY_MATERIAL_EXPIRES", valid_to)
    blob = kms.encrypt(key, b"before").ciphertext_blob
    clock.advance(10 * DAY)
    with pytest.raises(KMSInvalidStateException, match="pending import"):
        kms.decrypt(blob)
    assert kms.describe_key(key).key_metadata.key_state == "PendingImport"
    (expired,) = [r for r in records(kms) if isinstance(r.event, ev.ImportedKeyMaterialExpired)]
    assert expired.principal == ev.SERVICE_PRINCIPAL and expired.operation == "DeleteExpiredKeyMaterial"
    assert expired.event.expiration_date == int(valid_to.timestamp()) * 1_000_000
    (rotation,) = kms.list_key_rotations(key, include_key_material="ALL_KEY_MATERIAL").rotations
    assert (rotation.import_state, rotation.key_material_state) == ("PENDING_IMPORT", "CURRENT")
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, key, os.urandom(32))
    do_import(kms, key, material)  # the same material: usable again, old ciphertexts too
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"
    assert kms.decrypt(blob).plaintext == b"before"


def test_expiry_by_the_sweep(kms, clock) -> None:
    key = external_key(kms)
    do_import(kms, key, os.urandom(32), valid_to=clock.now + DAY)
    clock.advance(2 * DAY)
    kms.rotate_due()
    assert [r.event.key_id for r in records(kms) if isinstance(r.event, ev.ImportedKeyMaterialExpired)] == [key]


def test_delete_imported_key_material(kms) -> None:
    key = external_key(kms)
    with pytest.raises(KMSInvalidStateException):
        kms.delete_imported_key_material(key)  # nothing imported yet
    material = os.urandom(32)
    do_import(kms, key, material)
    blob = kms.encrypt(key, b"x").ciphertext_blob
    kms.disable_key(key)
    out = kms.delete_imported_key_material(key)
    assert out.key_material_id == cmd.key_material_id(key, 1)
    meta = kms.describe_key(key).key_metadata
    assert meta.key_state == "PendingImport"
    # as AWS describes it (recorded, 2025): no ExpirationModel while nothing is imported, the material id kept
    assert (meta.expiration_model, meta.valid_to, meta.current_key_material_id) == \
        (None, None, cmd.key_material_id(key, 1))
    with pytest.raises(KMSInvalidStateException):
        kms.decrypt(blob)
    with pytest.raises(KMSInvalidStateException):
        kms.delete_imported_key_material(key)  # already gone
    do_import(kms, key, material)
    assert kms.decrypt(blob).plaintext == b"x"
    assert kms.describe_key(key).key_metadata.expiration_model == "KEY_MATERIAL_DOES_NOT_EXPIRE"


def test_pending_deletion_is_kept_and_cancel_returns_to_pending_import(kms) -> None:
    key = external_key(kms)
    do_import(kms, key, os.urandom(32))
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    kms.delete_imported_key_material(key)
    assert kms.describe_key(key).key_metadata.key_state == "PendingDeletion"
    kms.cancel_key_deletion(key)
    assert kms.describe_key(key).key_metadata.key_state == "PendingImport"
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException, match="pending deletion"):
        kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")


# -- rotation with imported material (2025) -----------------------------------------------

def test_rotation_to_new_key_material(kms) -> None:
    key = external_key(kms)
    first, second = os.urandom(32), os.urandom(32)
    do_import(kms, key, first, key_material_description="first")
    old = kms.encrypt(key, b"old").ciphertext_blob
    arn = kms.describe_key(key).key_metadata.arn
    with pytest.raises(KMSInvalidStateException) as info:  # AWS's words (recorded against AWS, 2025)
        kms.rotate_key_on_demand(key)
    assert info.value.message == f"No available key material pending rotation for the key: {arn}."
    out = do_import(kms, key, second, import_type="NEW_KEY_MATERIAL", key_material_description="second")
    assert out.key_material_id == cmd.key_material_id(key, 2)
    with pytest.raises(KMSInvalidStateException) as info:
        do_import(kms, key, os.urandom(32), import_type="NEW_KEY_MATERIAL")  # one pending at a time
    assert info.value.message == (
        f"New key material (id: {cmd.key_material_id(key, 3)}) cannot be imported into KMS key {arn}, "
        f"because another key material (id: {cmd.key_material_id(key, 2)}) is pending rotation.")
    listed = kms.list_key_rotations(key, include_key_material="ALL_KEY_MATERIAL").rotations
    assert [(e.key_material_state, e.import_state, e.key_material_description, e.rotation_date) for e in listed] \
        == [("CURRENT", "IMPORTED", "first", None), ("PENDING_ROTATION", "IMPORTED", "second", None)]
    assert kms.list_key_rotations(key).rotations == []
    assert kms.encrypt(key, b"x").ciphertext_blob[19:23] == (1).to_bytes(4, "big")  # still the first
    kms.rotate_key_on_demand(key)
    meta = kms.describe_key(key).key_metadata
    assert meta.current_key_material_id == cmd.key_material_id(key, 2)
    new = kms.encrypt(key, b"new").ciphertext_blob
    assert new[19:23] == (2).to_bytes(4, "big")
    assert kms.decrypt(old).plaintext == b"old" and kms.decrypt(new).plaintext == b"new"
    rotations = kms.list_key_rotations(key).rotations
    assert [(e.key_material_state, e.rotation_type) for e in rotations] == [("CURRENT", "ON_DEMAND")]
    # deleting the NON_CURRENT material makes the whole key wait for it
    kms.delete_imported_key_material(key, key_material_id=cmd.key_material_id(key, 1))
    assert kms.describe_key(key).key_metadata.key_state == "PendingImport"
    do_import(kms, key, first, key_material_id=cmd.key_material_id(key, 1))
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"


def test_pending_material_can_be_deleted_and_replaced(kms) -> None:
    key = external_key(kms)
    do_import(kms, key, os.urandom(32))
    do_import(kms, key, os.urandom(32), import_type="NEW_KEY_MATERIAL")
    kms.delete_imported_key_material(key, key_material_id=cmd.key_material_id(key, 2))
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"
    assert len(kms.list_key_rotations(key, include_key_material="ALL_KEY_MATERIAL").rotations) == 1
    replacement = os.urandom(32)
    do_import(kms, key, replacement, import_type="NEW_KEY_MATERIAL")
    kms.rotate_key_on_demand(key)
    with pytest.raises(NotFoundException):
        kms.delete_imported_key_material(key, key_material_id="f" * 64)


# -- HMAC and asymmetric material ------------------------------------------------------

def test_imported_hmac_key(kms) -> None:
    key = external_key(kms, key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    secret = os.urandom(32)
    out = do_import(kms, key, secret)
    assert out.key_material_id is None  # symmetric encryption keys only
    import hmac as hmac_
    mac = kms.generate_mac(key, b"message", "HMAC_SHA_256").mac
    assert mac == hmac_.digest(secret, b"message", "sha256")
    with pytest.raises(ValidationException):
        do_import(kms, key, secret, import_type="EXISTING_KEY_MATERIAL")
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(kms, key, os.urandom(32))


def test_imported_ec_signing_key(kms) -> None:
    key = external_key(kms, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    do_import(kms, key, pkcs8, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    public_der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kms.get_public_key(key).public_key == public_der
    signature = kms.sign(key, b"msg", "ECDSA_SHA_256").signature
    private.public_key().verify(signature, b"msg", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(IncorrectKeyMaterialException):  # another curve's key
        do_import(kms, key, ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            algorithm="RSA_AES_KEY_WRAP_SHA_256")


def test_an_ecc_p521_key_is_too_long_for_rsa_2048_oaep(kms) -> None:
    key = external_key(kms, key_spec="ECC_NIST_P521", key_usage="SIGN_VERIFY")
    for algorithm in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"):
        with pytest.raises(ValidationException) as info:
            kms.get_parameters_for_import(key, algorithm, "RSA_2048")
        assert info.value.message == (f"You cannot use the {algorithm} wrapping algorithm with the RSA_2048 "
                                      "wrapping key spec to wrap ECC_NIST_P521 key material.")
    kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_3072")  # a longer wrapping key holds it
    private = ec.generate_private_key(ec.SECP521R1())
    do_import(kms, key, private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()), algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"


def test_imported_rsa_key_needs_rsa_aes_wrapping(kms) -> None:
    key = external_key(kms, key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT")
    with pytest.raises(ValidationException, match="RSA_AES"):
        kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_4096")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    do_import(kms, key, pkcs8, algorithm="RSA_AES_KEY_WRAP_SHA_1")
    blob = kms.encrypt(key, b"to rsa", encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert private.decrypt(blob, oaep) == b"to rsa"
    # a re-import of the same key in another (traditional) encoding is still the same material
    traditional = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
    do_import(kms, key, traditional, algorithm="RSA_AES_KEY_WRAP_SHA_256")


# -- two ledgers, one material; replay -----------------------------------------------------

def test_same_material_in_two_ledgers(tmp_path, clock) -> None:
    """The key id is in the ciphertext header and in the message-key
    derivation, so another ledger's key holding the same material does not
    open this ledger's ciphertexts: only a key with the same id would, and
    key ids are never reused. Within one ledger, two keys with the same
    material do not open each other's ciphertexts either."""
    material = os.urandom(32)
    with keyledger.open(tmp_path / "a", create=True, clock=clock) as a, \
            keyledger.open(tmp_path / "b", create=True, clock=clock) as b:
        key_a, key_b = external_key(a), external_key(b)
        do_import(a, key_a, material)
        do_import(b, key_b, material)
        blob = a.encrypt(key_a, b"shared").ciphertext_blob
        with pytest.raises(InvalidCiphertextException):
            b.decrypt(blob)
        with pytest.raises(InvalidCiphertextException):
            b.decrypt(blob[:3] + bytes.fromhex(key_b.replace("-", "")) + blob[19:])  # relabelled: the tag fails
        key_a2 = external_key(a)
        do_import(a, key_a2, material)
        assert a.decrypt(blob).plaintext == b"shared"
        with pytest.raises(InvalidCiphertextException):
            a.decrypt(blob[:3] + bytes.fromhex(key_a2.replace("-", "")) + blob[19:])


def test_replay_rebuilds_imported_keys(kms, clock) -> None:
    key = external_key(kms)
    do_import(kms, key, os.urandom(32), valid_to=clock.now + DAY)
    do_import(kms, key, os.urandom(32), import_type="NEW_KEY_MATERIAL", expiration_model=None,
              valid_to=clock.now + 2 * DAY)
    kms.rotate_key_on_demand(key)
    clock.advance(DAY)
    kms.rotate_due()
    kms.delete_imported_key_material(key)
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
    assert report.ok, report.differences


def test_import_needs_its_permissions(kms) -> None:
    key = external_key(kms)
    kms.create_user("alice")
    alice = kms.as_caller(f"arn:aws:iam::{kms.account}:user/alice")
    with pytest.raises(AccessDeniedException, match="kms:GetParametersForImport"):
        alice.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")
