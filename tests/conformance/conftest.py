"""The conformance fixtures: each face of the contract (faces.py: the
library, and a real `keyledger serve` reached with boto3, client-side
validation off) gets its own ledger and a small world built through it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import keyledger

sys.path.insert(0, str(Path(__file__).parent))
from faces import LibraryFace, Served, ServerFace, World  # noqa: E402


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEYLEDGER_HOME", "KEYLEDGER_ROOT_KEY", "KEYLEDGER_CHECKPOINT_KEY", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_STS", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("served")) as srv:
        yield srv


@pytest.fixture(scope="session")
def library_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    kms = keyledger.open(tmp_path_factory.mktemp("library") / "ledger", create=True)
    yield World(LibraryFace(kms))
    kms.close()


@pytest.fixture(scope="session")
def server_world(served: Served) -> World:
    return World(ServerFace(served.url, served.root))


@pytest.fixture(params=["library", "server"], scope="session")
def world(request: pytest.FixtureRequest) -> World:
    return request.getfixturevalue(f"{request.param}_world")
