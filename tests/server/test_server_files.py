"""The server's own files in a ledger home are private like the rest of it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from keyledger.server import app


def test_the_access_log_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    old = os.umask(0)
    try:
        app.configure_logging(str(path))
        logging.getLogger("keyledger.access").info('{"test": 1}')
    finally:
        os.umask(old)
        for handler in logging.getLogger("keyledger.access").handlers:
            handler.close()
        app.configure_logging(None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{"test": 1}\n'
