"""TLS between nodes and etcd (`etcds://...?cacert=&cert=&key=`): a real etcd
member serving its client port over HTTPS only with `--client-cert-auth`,
certificates made here (a CA, a server certificate for IP 127.0.0.1, a
client certificate). A ledger works end to end over it; every way the TLS
settings can be wrong ends in one clear LedgerError, at once, never in a
fallback to plain HTTP; the URL's TLS parameters are parsed strictly."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import keyledger
from keyledger import cluster as cluster_
from keyledger.cluster.etcd import Etcd, EtcdTlsError, EtcdUnavailable, TlsFiles
from keyledger.errors import LedgerError
from keyledger.store import LogUnavailable

from etcdkit import EtcdCluster, EtcdTls, etcd_binary, free_ports

pytestmark = pytest.mark.cluster


# -- certificates -------------------------------------------------------------------


@dataclass(frozen=True)
class _Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _authority(directory: Path, name: str) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return _Authority(name, key, cert, path)


def _issue(ca: _Authority, directory: Path, name: str, *, server: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                              critical=False))
    if server:  # the member at 127.0.0.1 (not "localhost")
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    cert_path = directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, _write_key(key, directory / f"{name}-key.pem")


@dataclass(frozen=True)
class _Pki:
    tls: EtcdTls
    other_ca: Path  # an unrelated CA
    other_cert: Path  # a client certificate the unrelated CA signed
    other_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _authority(directory, "ca")
    server_cert, server_key = _issue(ca, directory, "etcd-server", server=True)
    client_cert, client_key = _issue(ca, directory, "n1", server=False)
    other = _authority(directory, "other-ca")
    other_cert, other_key = _issue(other, directory, "intruder", server=False)
    return _Pki(EtcdTls(ca.path, server_cert, server_key, client_cert, client_key), other.path, other_cert,
                other_key)


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory, pki: _Pki) -> Iterator[EtcdCluster]:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-tls"), size=1, tls=pki.tls).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _url(etcd: EtcdCluster, prefix: str, **files: Path | str) -> str:
    query = "&".join(f"{name}={quote(str(path))}" for name, path in files.items())
    return f"etcds://{etcd.endpoints}/{prefix}" + (f"?{query}" if query else "")


def _refusal(home: Path, url: str, **settings: Any) -> LedgerError:
    """The error opening a node with `url` ends in (it must end in one)."""
    cfg = cluster_.config(url, node="n1", **settings)
    with pytest.raises(LedgerError) as caught:
        keyledger.open(home, create=True, cluster=cfg).close()
    return caught.value


# -- a ledger over TLS ---------------------------------------------------------------------


def test_a_ledger_on_a_tls_etcd_with_client_certificates(tmp_path: Path, tls_etcd: EtcdCluster, pki: _Pki,
                                                          prefix: str) -> None:
    url = tls_etcd.url(prefix)
    assert url.startswith("etcds://") and "cacert=" in url and "cert=" in url and "key=" in url
    first = keyledger.open(tmp_path / "n0", create=True, cluster=cluster_.config(url, node="n0"))
    try:
        root = (tmp_path / "n0" / "root.key").read_bytes()
        second = keyledger.open(tmp_path / "n1", create=True, cluster=cluster_.config(url, node="n1"),
                                root_key=root)
        try:
            key = first.create_key(description="over TLS").key_metadata.key_id
            blob = first.encrypt(key, b"across the wire, encrypted").ciphertext_blob
            deadline = time.monotonic() + 15
            while second.store.head().seq < first.store.head().seq and time.monotonic() < deadline:
                time.sleep(0.05)  # the second node's watch (HTTPS too) wakes it
            assert second.store.head() == first.store.head()
            assert second.decrypt(blob).plaintext == b"across the wire, encrypted"
            assert second.encrypt(key, b"back").ciphertext_blob
            for kms in (first, second):  # the upkeep threads (watch, reports) speak TLS as well
                node = kms.store.log
                deadline = time.monotonic() + 15
                while node.state != "ready" and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert (node.state, node.error) == ("ready", None)
            status = cluster_.status(cluster_.config(url, node="status"))
            assert {n["Name"] for n in status["Nodes"]} == {"n0", "n1"}
            assert status["Members"][0]["ClientUrls"] == [f"https://127.0.0.1:{tls_etcd.client_ports[0]}"]
            assert status["Members"][0]["Leader"] is True
        finally:
            second.close()
    finally:
        first.close()


def test_the_member_speaks_only_tls_and_a_plain_url_is_refused_in_words(tmp_path: Path, tls_etcd: EtcdCluster,
                                                                         prefix: str) -> None:
    port = tls_etcd.client_ports[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    status: int | None = None
    try:  # plain HTTP gets no answer from etcd's API (it hangs up, or a Go server's 400)
        conn.request("POST", "/v3/kv/range", json.dumps({"key": "AA=="}))
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    assert status in (None, 400)
    error = _refusal(tmp_path / "plain", f"etcd://{tls_etcd.endpoints}/{prefix}")
    assert isinstance(error, EtcdTlsError)
    assert str(error) == f"etcd 127.0.0.1:{port} speaks only TLS: name the cluster etcds://... (with ?cacert=...)"


def test_a_member_not_speaking_tls_is_refused_in_words(tmp_path: Path, etcd: EtcdCluster, pki: _Pki,
                                                       prefix: str) -> None:
    error = _refusal(tmp_path / "n", _url(etcd, prefix, cacert=pki.tls.ca))
    assert isinstance(error, EtcdTlsError)
    # the first member that answered names itself: a member another test restarts may not have
    ports = {f"TLS to etcd 127.0.0.1:{port} failed: " for port in etcd.client_ports}
    assert str(error).startswith(tuple(ports))
    assert "it speaks plain HTTP, not TLS" in str(error)
    assert "\n" not in str(error)


def test_a_certificate_from_another_ca_is_refused_at_once(tmp_path: Path, tls_etcd: EtcdCluster, pki: _Pki,
                                                          prefix: str) -> None:
    started = time.monotonic()
    error = _refusal(tmp_path / "n", _url(tls_etcd, prefix, cacert=pki.other_ca, cert=pki.tls.client_cert,
                                          key=pki.tls.client_key), timeout=60.0)
    assert time.monotonic() - started < 60.0  # not retried until the commit timeout: a setting, not an outage
    assert isinstance(error, EtcdTlsError) and not isinstance(error, (EtcdUnavailable, LogUnavailable))
    port = tls_etcd.client_ports[0]
    assert str(error).startswith(f"TLS to etcd 127.0.0.1:{port} failed: certificate verify failed: ")
    assert "\n" not in str(error)


def test_a_verify_failure_is_not_waited_out_on_the_other_members(tls_etcd: EtcdCluster, pki: _Pki) -> None:
    down = free_ports(1)[0]  # a member that is down, then one whose certificate does not verify
    client = Etcd([("127.0.0.1", down), ("127.0.0.1", tls_etcd.client_ports[0])], timeout=2.0,
                  tls=TlsFiles(str(pki.other_ca), str(pki.tls.client_cert), str(pki.tls.client_key)))
    try:
        for _ in range(2):  # and not for a txn either (it was never sent)
            with pytest.raises(EtcdTlsError, match=f"^TLS to etcd 127.0.0.1:{tls_etcd.client_ports[0]} failed: "
                                                   "certificate verify failed: "):
                client.txn([], [], [])
    finally:
        client.close()


def test_the_host_name_is_checked_against_the_endpoint(tls_etcd: EtcdCluster, pki: _Pki) -> None:
    # the certificate names 127.0.0.1, not localhost
    client = Etcd([("localhost", tls_etcd.client_ports[0])], timeout=2.0,
                  tls=TlsFiles(str(pki.tls.ca), str(pki.tls.client_cert), str(pki.tls.client_key)))
    try:
        with pytest.raises(EtcdTlsError, match="certificate verify failed: .*(mismatch|localhost)"):
            client.get(b"/anything")
    finally:
        client.close()


def test_without_a_client_certificate_etcd_refuses(tmp_path: Path, tls_etcd: EtcdCluster, pki: _Pki,
                                                    prefix: str) -> None:
    error = _refusal(tmp_path / "n", _url(tls_etcd, prefix, cacert=pki.tls.ca))
    assert isinstance(error, EtcdTlsError), error
    assert str(error).startswith(f"TLS to etcd 127.0.0.1:{tls_etcd.client_ports[0]} failed: ")
    assert "certificate" in str(error)
    # a certificate etcd's CA did not sign: refused the same way
    error = _refusal(tmp_path / "m", _url(tls_etcd, prefix, cacert=pki.tls.ca, cert=pki.other_cert,
                                          key=pki.other_key))
    assert isinstance(error, EtcdTlsError) and "certificate" in str(error)


def test_unusable_files_are_named_not_shown(tmp_path: Path, tls_etcd: EtcdCluster, pki: _Pki, prefix: str) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    error = _refusal(tmp_path / "a", _url(tls_etcd, prefix, cacert=missing))
    assert str(error).startswith(f"cannot use the etcd CA file {missing}: ")
    error = _refusal(tmp_path / "b", _url(tls_etcd, prefix, cacert=pki.tls.ca, cert=pki.tls.client_cert,
                                          key=tmp_path / "n1-key.pem"))
    assert str(error) == (f"cannot read the etcd client key file {tmp_path / 'n1-key.pem'}: "
                          "No such file or directory")
    # a key file given as the certificate (and the CA): its path in the message, never its contents
    key_text = pki.tls.client_key.read_text()
    for url in (_url(tls_etcd, prefix, cacert=pki.tls.client_key),
                _url(tls_etcd, prefix, cacert=pki.tls.ca, cert=pki.tls.client_key, key=pki.tls.client_key),
                _url(tls_etcd, prefix, cacert=pki.tls.ca, cert=pki.tls.client_cert, key=pki.other_key)):
        error = _refusal(tmp_path / "c", url)
        assert isinstance(error, EtcdTlsError) and str(pki.tls.client_key.parent) in str(error)
        assert "PRIVATE KEY" not in str(error) and key_text.splitlines()[1] not in str(error)
        assert "\n" not in str(error)


# -- the URL ----------------------------------------------------------------------------------


def test_plain_urls_are_as_before() -> None:
    cfg = cluster_.config("etcd://10.0.0.1:2379,10.0.0.2/kl", node="n1")
    assert cfg.endpoints == (("10.0.0.1", 2379), ("10.0.0.2", 2379))
    assert (cfg.prefix, cfg.tls) == (b"/kl/", None)


def test_tls_urls_carry_their_files() -> None:
    cfg = cluster_.config("etcds://10.0.0.1:2379,10.0.0.2:2379/keyledger?cacert=/etc/kl/ca.pem"
                          "&cert=/etc/kl/n1.pem&key=/etc/kl/n1-key.pem", node="n1")
    assert cfg.endpoints == (("10.0.0.1", 2379), ("10.0.0.2", 2379))
    assert cfg.prefix == b"/keyledger/"
    assert cfg.tls == TlsFiles("/etc/kl/ca.pem", "/etc/kl/n1.pem", "/etc/kl/n1-key.pem")
    assert "PRIVATE" not in repr(cfg)
    # the system's trust store, no client certificate; default prefix; escaped paths
    assert cluster_.config("etcds://etcd.example:2379", node="n1").tls == TlsFiles()
    assert cluster_.config("etcds://h:1/p?cacert=/a%20b/ca.pem", node="n1").tls == TlsFiles("/a b/ca.pem")
    assert cluster_.config("etcds://h:1?cacert=/ca.pem", node="n1").prefix == b"/keyledger/"


@pytest.mark.parametrize(("url", "words"), [
    ("etcds://h:2379/p?cert=/n1.pem", "needs both cert= and key="),
    ("etcds://h:2379/p?key=/n1-key.pem&cacert=/ca.pem", "needs both cert= and key="),
    ("etcds://h:2379/p?cacert=/ca.pem&insecure=1&verify=no", "unknown cluster URL parameter(s): insecure, verify"),
    ("etcd://h:2379/p?cacert=/ca.pem", "etcds://"),
    ("etcd://h:2379/p?cert=/n1.pem&key=/n1-key.pem", "etcds://"),
    ("etcd://h:2379/p?timeout=3", "unknown cluster URL parameter(s): timeout"),
    ("etcds://h:2379/p?cacert=/a.pem&cacert=/b.pem", "cacert= twice"),
    ("etcds://h:2379/p?cacert=", "cacert= is empty"),
    ("https://h:2379/p", "etcds://"),
])
def test_bad_tls_urls_are_value_errors(url: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        cluster_.config(url, node="n1")
    assert words in str(caught.value)


def test_tls_files_need_cert_and_key_together() -> None:
    with pytest.raises(ValueError, match="both cert= and key="):
        TlsFiles(cacert=None, cert="/n1.pem")
    assert TlsFiles(cert="/n1.pem", key="/n1-key.pem").cacert is None
