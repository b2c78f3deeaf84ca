"""Issue 8 reproduced: "an agent read every clear number with sqlite3" -- now an unprivileged OS
account cannot open the catalog, the keys or a stored recording, even with the state folder itself
left open to it: the daemon's files and folders are the service user's alone (0600/0700;
``test_daemon_file_modes.py`` checks the modes)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_daemon_file_modes import _encrypted_config
from test_masking_end_to_end import run_call

pytestmark = pytest.mark.sqlite_only  # opens the SQLite catalog file itself

PROBE = """
import json, sqlite3, sys
out = {}
for path in sys.argv[1:]:
    try:
        if path.endswith(".db"):
            sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("SELECT * FROM calls").fetchall()
        else:
            open(path, "rb").read(1)
        out[path] = "opened"
    except (OSError, sqlite3.Error) as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""


def test_an_unprivileged_account_opens_no_catalog_key_spool_or_recording(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    base = Path(tempfile.mkdtemp(prefix="pbxr-data-", dir="/tmp"))
    try:
        base.chmod(0o755)  # as if the state folder were left open: the files must hold by themselves
        monkeypatch.setattr("test_masking_end_to_end.write_config", _encrypted_config)
        asyncio.run(run_call(base))
        targets = [base / "catalog.db", *sorted((base / "keys").rglob("*")),
                   *sorted((base / "hot").rglob("*"))]
        files = [p for p in targets if p.is_file() and not p.name.endswith(".pub")]
        assert base / "catalog.db" in files and any(p.suffix == ".key" for p in files)
        assert any(p.suffix == ".pbxr" for p in files)  # a stored recording is among them
        python = getattr(sys, "_base_executable", sys.executable)  # the venv may be in a closed folder
        done = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                               python, "-c", PROBE, *map(str, files)],
                              capture_output=True, text=True, timeout=60, check=True)
        results = json.loads(done.stdout)
        assert results and all(v != "opened" for v in results.values()), results
        as_root = subprocess.run([sys.executable, "-c", PROBE, str(base / "catalog.db")], capture_output=True,
                                 text=True, timeout=60, check=True)
        assert json.loads(as_root.stdout) == {str(base / "catalog.db"): "opened"}  # the probe itself works
    finally:
        shutil.rmtree(base)
