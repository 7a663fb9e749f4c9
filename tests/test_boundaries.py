"""The import boundaries of DESIGN.md section 2, read from the source.

Every .py file of the project is parsed with `ast` (imports inside
functions included, relative imports resolved, `importlib.import_module`
and `__import__` with a literal name counted) and the rules are checked:

- only the store (`ledger/store/`, one package) imports `lmdb`;
- only `ledger/crypto.py` imports `cryptography` and `nacl` (the hazmat layer);
- `projections` never imports `ledger.store`, `ledger.service`,
  `ledger.crypto`, `cli` or `server`;
- `ledger` never imports `cli` or `server`.

Exempt: `tests/` (the vectors are a second implementation on purpose) and
`benchmarks/`, whose baselines time raw AES-GCM and raw LMDB puts next to
the ledger; neither ships in the library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXEMPT = {"tests", "benchmarks"}
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def project_files() -> list[Path]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).parts
        if rel[0] in EXEMPT or any(p in SKIP_DIRS or p.endswith(".egg-info") for p in rel):
            continue
        out.append(path)
    return out


def _absolute(module: str | None, level: int, here: str, package: bool) -> str:
    if level == 0:
        return module or ""
    base = here.split(".") if package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_of_source(source: str, here: str, package: bool = False) -> set[str]:
    """Every module name the source imports. `from a import b` counts as both
    `a` and `a.b`, since b may be a submodule."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, here, package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return {name for name in found if name}


def imports_of(path: Path) -> set[str]:
    return imports_of_source(path.read_text(encoding="utf-8"), module_name(path), is_package(path))


def within(name: str, top: str) -> bool:
    return name == top or name.startswith(top + ".")


FILES = project_files()
IMPORTS = {module_name(p): imports_of(p) for p in FILES}


def importers(top: str) -> set[str]:
    return {mod for mod, names in IMPORTS.items() if any(within(n, top) for n in names)}


# -- the walker itself ------------------------------------------------------

def test_the_scan_sees_the_packages():
    assert {"ledger", "ledger.store", "ledger.crypto", "ledger.service", "projections"} <= IMPORTS.keys()
    assert not any(within(m, "tests") or within(m, "benchmarks") for m in IMPORTS)
    # The two sanctioned importers are seen, so the rules below are not vacuous.
    assert "lmdb" in IMPORTS["ledger.store.core"]
    assert any(within(n, "cryptography.hazmat") for n in IMPORTS["ledger.crypto"])


@pytest.mark.parametrize("source, here, package, expected", [
    ("import lmdb", "x.y", False, {"lmdb"}),
    ("import lmdb.cursor as c", "x.y", False, {"lmdb.cursor"}),
    ("def f():\n    import lmdb\n", "x.y", False, {"lmdb"}),
    ("from cryptography.hazmat.primitives import hashes", "x", False,
     {"cryptography.hazmat.primitives", "cryptography.hazmat.primitives.hashes"}),
    ("from . import store", "ledger.service", False, {"ledger", "ledger.store"}),
    ("from .store import Store", "ledger.service", False, {"ledger.store", "ledger.store.Store"}),
    ("from . import store", "ledger", True, {"ledger", "ledger.store"}),
    ("from ..ledger import crypto", "projections.keys", False, {"ledger", "ledger.crypto"}),
    ("import importlib\nimportlib.import_module('lmdb')", "x", False, {"importlib", "lmdb"}),
    ("__import__('cryptography')", "x", False, {"cryptography"}),
    ("if TYPE_CHECKING:\n    from ledger.store import Store\n", "p", False, {"ledger.store", "ledger.store.Store"}),
])
def test_the_walker_resolves_imports(source, here, package, expected):
    assert imports_of_source(source, here, package) == expected


# -- the rules --------------------------------------------------------------

def test_only_the_store_imports_lmdb():
    found = importers("lmdb")
    assert found and all(within(mod, "ledger.store") for mod in found), sorted(found)
    assert "ledger.store.log" not in found  # the log interface a replicated log implements is LMDB-free


def test_only_the_hazmat_layer_imports_cryptography():
    assert importers("cryptography") == {"ledger.crypto"}
    assert importers("nacl") == {"ledger.crypto"}  # libsodium: Ed25519ph, which cryptography lacks


@pytest.mark.parametrize("forbidden", ["ledger.store", "ledger.service", "ledger.crypto", "cli", "server"])
def test_projections_do_not_reach_back(forbidden):
    offenders = {mod for mod in importers(forbidden) if within(mod, "projections")}
    assert offenders == set(), f"{sorted(offenders)} import {forbidden}"


@pytest.mark.parametrize("forbidden", ["cli", "server"])
def test_the_ledger_does_not_import_its_front_ends(forbidden):
    offenders = {mod for mod in importers(forbidden) if within(mod, "ledger")}
    assert offenders == set(), f"{sorted(offenders)} import {forbidden}"
