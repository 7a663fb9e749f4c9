"""Fixtures: a server per test module, more on demand, and a clean AWS
environment (no real credentials, config or endpoint leak in)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyledger.server.app import configure_logging
from serverkit import Server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEYLEDGER_HOME", "KEYLEDGER_ROOT_KEY", "KEYLEDGER_CHECKPOINT_KEY", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    configure_logging(None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ledger"))
    yield srv
    srv.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def _start(**kwargs: Any) -> Server:
        srv = Server(tmp_path / f"ledger{len(started)}", **kwargs)
        started.append(srv)
        return srv
    yield _start
    for srv in started:
        srv.stop()


@pytest.fixture
def kms(server: Server) -> Any:
    return server.client("alice")


@pytest.fixture
def key_id(kms: Any) -> str:
    return kms.create_key(Description="test key")["KeyMetadata"]["KeyId"]
