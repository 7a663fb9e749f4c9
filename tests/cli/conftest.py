"""Drive `keyledger` through click's CliRunner on a real ledger in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from keyledger.cli.main import main


class Cli:
    """`init`: like a user who ran `keyledger init` once, the first command
    that is not itself `init` (or `demo`) runs on a ledger made for it."""

    def __init__(self, home: Path, *, init: bool = True) -> None:
        self.home = home
        self.runner = CliRunner()
        self.init = init

    def __call__(self, *args: str, expect: int = 0, home: bool = True, input: str | None = None) -> Result:
        if self.init and home and "init" not in args and "demo" not in args \
                and not (self.home / "data.mdb").exists():
            self.runner.invoke(main, ["--home", str(self.home), "init"])  # a failure shows in the command
        argv = (["--home", str(self.home)] if home else []) + list(args)
        result = self.runner.invoke(main, argv, input=input, catch_exceptions=False)
        assert result.exit_code == expect, (
            f"exit {result.exit_code}, wanted {expect}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        result = self(*args)
        data = json.loads(result.stdout)
        # indented like the AWS CLI, nothing else on stdout
        assert result.stdout == json.dumps(data, indent=4, ensure_ascii=False) + "\n"
        return data

    def create_key(self, *args: str) -> str:
        return self.json("create-key", *args)["KeyMetadata"]["KeyId"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEYLEDGER_HOME", "KEYLEDGER_ROOT_KEY", "KEYLEDGER_CHECKPOINT_KEY", "KEYLEDGER_DEBUG",
                 "KEYLEDGER_PRINCIPAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # never the user's real ledger


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "ledger")


@pytest.fixture
def key(cli: Cli) -> str:
    return cli.create_key("--description", "test key")


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], str]:
    """Write bytes to a file in tmp_path; return its fileb:// URL."""
    def _write(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return f"fileb://{path}"
    return _write
