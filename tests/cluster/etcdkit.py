"""Real etcd members on 127.0.0.1 for the cluster tests and benchmarks:
free ports, private data directories, started and stopped by us (never
the machine's own etcd service). A module of its own, not conftest, so the
benchmarks can use it too. Plain HTTP by default; `tls=EtcdTls(...)` serves
the client port over HTTPS only, with `--client-cert-auth` (peers stay on
plain loopback HTTP)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@dataclass(frozen=True)
class EtcdTls:
    """PEM files: the CA etcd trusts for client certificates (and that
    signed its own), etcd's server certificate and key (for 127.0.0.1, with
    both serverAuth and clientAuth usage: etcd's JSON gateway dials its own
    gRPC port with it), and a client certificate and key this kit probes
    with."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


class EtcdCluster:
    """`size` etcd members on loopback. `fast`: short heartbeat and election
    timeout (tests); otherwise etcd's defaults (100 ms, 1 s). `tls`: HTTPS
    client URLs with client-certificate authentication."""

    def __init__(self, root: Path, size: int = 3, *, fast: bool = True, tls: EtcdTls | None = None) -> None:
        self.root, self.size, self.fast, self.tls = root, size, fast, tls
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.names = [f"e{i}" for i in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.token = f"kl-{os.getpid()}-{time.monotonic_ns()}"

    @property
    def endpoints(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    @property
    def client_scheme(self) -> str:
        return "http" if self.tls is None else "https"

    def url(self, prefix: str = "keyledger") -> str:
        """The cluster URL for keyledger (with TLS: etcds:// with the CA and
        the client certificate)."""
        if self.tls is None:
            return f"etcd://{self.endpoints}/{prefix}"
        t = self.tls
        return (f"etcds://{self.endpoints}/{prefix}?cacert={quote(str(t.ca))}&cert={quote(str(t.client_cert))}"
                f"&key={quote(str(t.client_key))}")

    def _args(self, i: int, state: str) -> list[str]:
        peers = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports))
        client = f"{self.client_scheme}://127.0.0.1:{self.client_ports[i]}"
        args = [etcd_binary() or "etcd", "--name", self.names[i], "--data-dir", str(self.root / self.names[i]),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-cluster", peers, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token, "--log-level", "error"]
        if self.fast:
            args += ["--heartbeat-interval", "50", "--election-timeout", "500"]
        if self.tls is not None:
            args += ["--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key),
                     "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
        return args

    def connection(self, i: int, timeout: float) -> http.client.HTTPConnection:
        """A connection to member `i`'s client port (HTTPS with the kit's
        client certificate when the members serve TLS)."""
        if self.tls is None:
            return http.client.HTTPConnection("127.0.0.1", self.client_ports[i], timeout=timeout)
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return http.client.HTTPSConnection("127.0.0.1", self.client_ports[i], timeout=timeout, context=context)

    def start(self) -> EtcdCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.size):
            self._spawn(i, "new")
        self.wait_ready()
        return self

    def _spawn(self, i: int, state: str) -> None:
        log = open(self.root / f"{self.names[i]}.log", "ab")
        self.procs[i] = subprocess.Popen(self._args(i, state), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def status(self, i: int, timeout: float = 1.0) -> dict[str, object] | None:
        try:
            conn = self.connection(i, timeout)
            conn.request("POST", "/v3/maintenance/status", b"{}")
            answer = json.loads(conn.getresponse().read())
            conn.close()
            return answer if "error" not in answer else None
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def leader(self) -> int | None:
        for i in range(self.size):
            if self.procs[i] is None:
                continue
            st = self.status(i)
            if st and st.get("leader") and st.get("leader") == st["header"]["member_id"]:  # type: ignore[index]
                return i
        return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leader() is not None and self._can_write():
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not elect a leader in time: " + self._logs())

    def _can_write(self) -> bool:
        for i in range(self.size):
            if self.procs[i] is None:
                continue
            try:
                conn = self.connection(i, 2)
                conn.request("POST", "/v3/kv/put", json.dumps({"key": "X19wcm9iZQ==", "value": ""}))
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return True
            except (OSError, http.client.HTTPException):
                continue
        return False

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(sig)
            proc.wait(timeout=10)
            self.procs[i] = None

    def restart(self, i: int) -> None:
        self._spawn(i, "existing")

    def stop(self) -> None:
        for i in range(self.size):
            proc = self.procs[i]
            if proc is not None:
                proc.terminate()
        for i in range(self.size):
            proc = self.procs[i]
            if proc is not None:
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.procs[i] = None

    def _logs(self) -> str:
        out = []
        for name in self.names:
            path = self.root / f"{name}.log"
            if path.exists():
                out.append(path.read_text(errors="replace")[-800:])
        return "\n".join(out)
