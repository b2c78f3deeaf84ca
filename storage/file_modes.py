"""The one place that decides the mode (and, under root, the owner) of what the recorder writes.

Everything the recorder keeps -- catalog (and SQLite's -wal/-shm), spool entries, tier
objects, manifest sidecars, catalog backups and restores, keys -- is owner-only: files 0600,
directories 0700, read-only tier objects 0400.  Modes are set explicitly (``os.open`` with the
mode, then ``fchmod``), so the process umask (022 in a foreground run or cron, 000 in a sloppy
wrapper) never widens them.

The only place another account may write is the PBX's drop folder (``pbx.monitor_dir``):
created by the installer, not here (``install -d -o asterisk -g asterisk -m 2770``); the
recorder reads a finished file from it and takes it over as a new owner-only file in the
spool (:func:`storage.atomic.move_file`).

Run as root (an operator's front end running the CLI), a new file or directory is handed to
the owner of the directory it is created in, so the service account can still read what a
root-run command wrote (SQLite does the same for its -wal/-shm files).

The two deliberate exceptions are named constants: :data:`PUBLIC_FILE_MODE` for files other
services must read and that hold no call data (prompt audio, the capacity alert for
node_exporter's textfile collector).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
READ_ONLY_FILE_MODE = 0o400
#: prompt audio read by Asterisk, the capacity alert read by node_exporter: no call data
PUBLIC_FILE_MODE = 0o644
PUBLIC_DIR_MODE = 0o755
#: what the installer gives the PBX's drop folder (owner asterisk, group asterisk, setgid)
DROP_DIR_MODE = 0o2770
_OPEN_BITS = 0o077
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _adopt(path: Path, fd: int | None = None) -> None:
    """Under root, give ``path`` to the owner of its directory (when that owner is not root)."""
    if os.geteuid() != 0:
        return
    try:
        parent = path.parent.stat()
    except OSError:
        return
    if parent.st_uid == 0:
        return
    if fd is not None:
        os.fchown(fd, parent.st_uid, parent.st_gid)
    else:
        os.chown(path, parent.st_uid, parent.st_gid, follow_symlinks=False)


def open_new(path: str | Path, mode: int = FILE_MODE) -> int:
    """Create ``path`` exclusively (never follows or replaces anything) with exactly ``mode``;
    returns the write-only file descriptor."""
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(p, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask only removes bits; fchmod makes the mode exact
        _adopt(p, fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def make_private(path: str | Path, mode: int = FILE_MODE) -> None:
    """Set ``mode`` on an existing file we own (or any file, as root), and adopt it under root."""
    p = Path(path)
    os.chmod(p, mode)
    _adopt(p)


def private_dir(path: str | Path, *, tighten: bool = True) -> Path:
    """Create ``path`` and any missing parents with 0700 (whatever the umask).

    ``tighten``: an existing directory of ours that is open to group or others is narrowed
    to 0700 (the recorder's own roots: spool, tier, catalog directory).  Directories owned by
    another account are never changed."""
    p = Path(path)
    missing: list[Path] = []
    cursor = p
    while not cursor.exists():
        missing.append(cursor)
        if cursor.parent == cursor:
            break
        cursor = cursor.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue  # a concurrent creator won; its mode is checked below
        os.chmod(d, DIR_MODE)
        _adopt(d)
    if tighten and p.is_dir() and not p.is_symlink():
        st = p.stat()
        if st.st_uid == os.geteuid() and st.st_mode & _OPEN_BITS:
            os.chmod(p, stat.S_IMODE(st.st_mode) & ~_OPEN_BITS)
    return p


def prepare_sqlite(path: str | Path) -> None:
    """Before SQLite opens ``path``: private parent directory, the database file created 0600
    (SQLite gives -wal/-shm/-journal the database file's mode), and an existing database or
    its side files of ours that are open to others narrowed to 0600."""
    p = Path(path)
    if str(path) == ":memory:":
        return
    private_dir(p.parent, tighten=False)
    try:
        os.close(open_new(p))
    except FileExistsError:
        pass
    for suffix in SQLITE_SUFFIXES:
        side = Path(str(p) + suffix)
        try:
            st = side.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & _OPEN_BITS:
            os.chmod(side, FILE_MODE)


def is_private(path: str | Path) -> bool:
    """True when neither group nor others have any access to ``path``."""
    return not Path(path).lstat().st_mode & _OPEN_BITS
