"""The export folder (``web.export_dir``, default ``./var/exports``): private to the service user.

The folder is 0700 and must not be a symbolic link nor owned by someone else; each file is created
0600 with ``O_EXCL | O_NOFOLLOW`` (nothing can be planted in its place).  A job's file is named by
its random id only, so no name the user typed ever reaches the file system.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from pbx_recorder.errors import ConfigError

KEY = "web.export_dir"
DIR_MODE = 0o700
FILE_MODE = 0o600


def prepare(folder: Path) -> Path:
    """``folder`` created (0700) or checked; ConfigError naming the key when unfit."""
    try:
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise ConfigError(f"cannot create the export folder {folder}: {exc.strerror}", key=KEY) from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{folder} is not a plain directory", key=KEY)
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{folder} belongs to another user (uid {info.st_uid})", key=KEY)
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(folder, DIR_MODE)
    return folder


def path_of(folder: Path, job_id: str, suffix: str) -> Path:
    if not job_id.isalnum() or not suffix.isalnum():
        raise ValueError("export file names are a job id and a plain suffix")
    return folder / f"{job_id}.{suffix}"


def create(path: Path) -> BinaryIO:
    """A new file, 0600, never following a link nor reusing an existing name."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    return os.fdopen(fd, "w+b")


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def publish(part: Path, final: Path) -> None:
    """The finished file under its final name (atomic in the folder), then the folder synced."""
    os.replace(part, final)
    fd = os.open(part.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
