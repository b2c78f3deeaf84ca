"""A catalog backup or restore killed part-way leaves its work folder beside the catalog, with a
plaintext copy of it (every wrapped data key): the next backup or restore removes such folders
(an erasure's shredding takes a fresh backup, so it does too), never a live run's; SIGTERM ends
a CLI command through its context managers, which remove the folder themselves."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from storage.local import LocalTier

pytestmark = pytest.mark.sqlite_only  # SQLite backup files


def _leftover(near: Path, name: str, *, locked_file: bool = True, age_s: float = 3600.0) -> Path:
    folder = near / f"{backup.WORK_PREFIX}{name}"
    folder.mkdir(mode=0o700, parents=True)
    (folder / "catalog.db").write_bytes(b"SQLite format 3\0 wrapped keys in clear")
    if locked_file:
        (folder / ".in-use").write_bytes(b"")
    old = time.time() - age_s
    os.utime(folder, (old, old))
    return folder


def test_a_killed_runs_folder_is_removed_and_a_live_ones_kept(tmp_path):
    dead = _leftover(tmp_path, "dead")
    no_lock_old = _leftover(tmp_path, "killed-before-locking", locked_file=False)
    starting = _leftover(tmp_path, "starting", locked_file=False, age_s=1.0)
    live = _leftover(tmp_path, "live")
    fd = os.open(live / ".in-use", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a run in progress holds its lock
        removed = backup.sweep_leftovers(tmp_path)
    finally:
        os.close(fd)
    assert sorted(removed) == sorted([dead, no_lock_old])
    assert not dead.exists() and not no_lock_old.exists()
    assert live.exists() and starting.exists()


def test_a_backup_removes_what_a_killed_one_left(tmp_path):
    catalog = tmp_path / "state" / "catalog.db"
    catalog.parent.mkdir()
    conn = sqlite3.connect(catalog)
    apply_migrations(conn)
    conn.commit()
    conn.close()
    dead = _leftover(catalog.parent, "killed")
    info = backup.backup(catalog, LocalTier("backups", tmp_path / "tier"), time.time(),
                         keys=BackupKeys(tmp_path / "backup-keys"))
    assert info.key.endswith(".pbxr")
    assert not dead.exists()
    assert not list(catalog.parent.glob(backup.WORK_PREFIX + "*"))  # its own removed too


def test_sigterm_ends_a_command_through_its_context_managers_then_by_the_signal(tmp_path):
    """The console entry point (cli.run_main): the command's context managers run (the work folder
    is removed), then the process ends by SIGTERM (an exit status 143 would mark a systemd unit
    failed on every stop)."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        import pbx_recorder.cli as cli
        from pbx_recorder.lifecycle.backup import _workdir

        def command(argv=None):
            with _workdir(Path({str(tmp_path)!r})) as work:
                (Path(work) / "catalog.db").write_bytes(b"plaintext")
                print(work, flush=True)
                time.sleep(60)
            return 0

        cli.main = command
        cli.run_main()
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=Path(__file__).resolve().parents[2]) as child:
        assert child.stdout is not None
        work = Path(child.stdout.readline().strip())
        assert (work / "catalog.db").exists()
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == -signal.SIGTERM
    assert not work.exists()


def test_a_sweep_racing_another_one_does_not_fail_the_backup(tmp_path, monkeypatch):
    """Two sweeps in one folder (an erasure's fresh backup beside a restore): the other one removed
    the folder first, or it cannot be removed: logged, never an error out of the backup."""
    _leftover(tmp_path, "gone-meanwhile")
    real_rmtree = backup.shutil.rmtree

    def removed_by_the_other_sweep(path, *args, **kwargs):
        real_rmtree(path)
        raise FileNotFoundError(path)

    monkeypatch.setattr(backup.shutil, "rmtree", removed_by_the_other_sweep)
    assert backup.sweep_leftovers(tmp_path) == []
    assert not list(tmp_path.glob(backup.WORK_PREFIX + "*"))
