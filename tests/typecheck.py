"""mypy over the installed package's layout, from a checkout.

The folders are mapped onto one import root by setuptools' package-dir
(`keyledger` = ledger/, `keyledger.projections` = projections/, ...), and
mypy cannot follow the editable install's import hook. So this builds a
shadow tree of symlinks that has the installed shape:

    <tmp>/keyledger/*.py, py.typed  -> ledger/*.py, ledger/py.typed
    <tmp>/keyledger/service          -> ledger/service/
    <tmp>/keyledger/projections      -> projections/
    <tmp>/keyledger/cli, server      -> cli/, server/

and runs `mypy --strict` on it: the library (keyledger, keyledger.service,
keyledger.projections), and the CLI and the server too (keyledger.cli,
keyledger.server), so a face cannot drift from the typed calls it makes.
Messages name the shadow paths; the file names are the checkout's.

    .venv/bin/python tests/typecheck.py [extra mypy arguments]

The tree and mypy's cache live in a fresh temporary directory (a whole run
takes seconds). Exits with mypy's status. Not a pytest module (pytest
collects test_*.py only).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# every package inside ledger/ (service, store, cluster, ...) and the mapped faces
SUBPACKAGES = {**{d.name: d for d in sorted((ROOT / "ledger").iterdir()) if (d / "__init__.py").exists()},
               "projections": ROOT / "projections", "cli": ROOT / "cli", "server": ROOT / "server"}

CONFIG = """\
[mypy]
python_version = 3.11
strict = True
warn_unused_configs = True
cache_dir = {cache}

# crypto.py holds keys of a dozen cryptography classes as Any (one PrivateKey
# handle for every family); what their methods return is bytes by contract.
[mypy-keyledger.crypto]
warn_return_any = False

# The AWS Encryption SDK ships no type information (keyledger.esdk_provider
# plugs the ledger into it).
[mypy-aws_encryption_sdk.*]
ignore_missing_imports = True
"""


def shadow_tree(base: Path) -> None:
    package = base / "keyledger"
    package.mkdir()
    for source in sorted((ROOT / "ledger").iterdir()):
        if source.suffix in (".py", ".pyi") or source.name == "py.typed":
            (package / source.name).symlink_to(source)
    for name, folder in SUBPACKAGES.items():
        (package / name).symlink_to(folder, target_is_directory=True)
    (base / "mypy.ini").write_text(CONFIG.format(cache=base / "cache"))


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="keyledger-typecheck-") as tmp:
        base = Path(tmp)
        shadow_tree(base)
        targets = ["-p", "keyledger"]  # recursive: the subpackages come along
        command = [sys.executable, "-m", "mypy", "--config-file", str(base / "mypy.ini"), *targets, *argv]
        return subprocess.run(command, cwd=base, env={**os.environ, "MYPYPATH": str(base)}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
