"""What `pip install .` puts into an environment: one import root, `keyledger`.

The repository keeps the design card's folders (ledger/, projections/, cli/,
server/) and setuptools' package-dir maps them under `keyledger`; this builds
the real wheel, installs it into a fresh virtual environment and lists what
landed at the top of its site-packages.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (built,) = out.glob("keyledger-*.whl")
    return built


def _site_packages(venv: Path) -> Path:
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return Path(purelib)


@pytest.mark.skipif(sysconfig.get_platform().startswith("win"), reason="POSIX venv layout")
def test_the_wheel_installs_one_top_level_package(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = _site_packages(venv)
    before = {p.name for p in site.iterdir()}
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    added = {p.name for p in site.iterdir()} - before
    assert {name for name in added if not name.endswith(".dist-info")} == {"keyledger"}
    assert {name for name in added if name.endswith(".dist-info")} == {wheel.name.split("-py")[0] + ".dist-info"}
    assert (venv / "bin" / "keyledger").exists()  # the console script


def test_the_wheel_holds_the_library_its_faces_and_their_data_and_no_benchmarks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"keyledger"}
    for required in ("keyledger/__init__.py", "keyledger/py.typed", "keyledger/service/__init__.py",
                     "keyledger/projections/__init__.py", "keyledger/cli/main.py",
                     "keyledger/server/app.py", "keyledger/server/kms-2014-11-01.json",
                     "keyledger/cluster/__init__.py"):
        assert required in names, required
    assert not any("benchmarks" in name or name.startswith("tests/") for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "keyledger = keyledger.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
