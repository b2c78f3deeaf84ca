"""Where ``recordings get --out`` may write: a new file, of the caller's own, owner-only.

Run under a privileged front end (root acting for ``PBX_RECORDER_USER``), an unchecked path would
be any file on the host.  So the output:

* must not exist (never an overwrite) and must not be a symlink, checked again at the moment of
  publishing (``os.link`` of a finished temp file fails if anything appeared meanwhile);
* goes into a directory owned by the acting account (the process's user, or under root the named
  operator's OS account), or inside ``access.download_dir`` when that is configured -- the only
  choice for an operator a front end names who has no OS account;
* is written 0600 (:mod:`storage.file_modes`) and, under root, handed to that directory's owner.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pbx_recorder.errors import AccessDenied
from storage import atomic

T = TypeVar("T")


def acting_uid(actor: str) -> int | None:
    """The uid whose directories the actor may write into (None: no OS account to own them)."""
    if os.geteuid() != 0 or not os.environ.get("PBX_RECORDER_USER"):
        return os.geteuid()
    try:
        return pwd.getpwnam(actor).pw_uid
    except KeyError:
        return None


def check(out: str | Path, *, actor: str, download_dir: Path | None) -> Path:
    """The path to publish at (its directory resolved), or AccessDenied saying why not."""
    given = Path(out)
    if given.is_symlink() or given.exists():
        raise AccessDenied(f"{given} exists: recordings get writes a new file only, never over another")
    parent = Path(os.path.realpath(given.parent if str(given.parent) else "."))
    if not parent.is_dir():
        raise AccessDenied(f"{given.parent} is not a directory")
    target = parent / given.name
    if download_dir is not None:
        allowed = Path(os.path.realpath(download_dir))
        if parent == allowed or allowed in parent.parents:
            return target
    uid = acting_uid(actor)
    if uid is None:
        where = f"inside access.download_dir ({download_dir})" if download_dir else "set access.download_dir"
        raise AccessDenied(f"{actor!r} has no OS account to own {given}: {where} for downloads on behalf "
                           "of named operators")
    if parent.stat().st_uid != uid:
        raise AccessDenied(f"{parent} is not {actor!r}'s own directory: write into a directory you own "
                           "(or set access.download_dir)")
    return target


def _open_dir_nofollow(directory: Path) -> int:
    """An fd on ``directory`` reached component by component without following any symlink: a
    component swapped for a symlink between :func:`check` and the write (by the operator who owns
    it, racing a root front end) fails here instead of redirecting the write elsewhere."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for part in directory.parts[1:]:
            nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        raise AccessDenied(f"{directory} changed while writing (a component is no longer a plain "
                           "directory): nothing written") from exc
    return fd


def write_new(target: Path, write: Callable[[Path], T]) -> T:
    """``write(tmp)`` fills a temp file beside ``target`` (atomically, 0600); it is then linked to
    ``target`` only if nothing exists there, else AccessDenied.  The temp file never stays.

    Everything happens relative to one fd on the checked directory (``/proc/self/fd/N/...`` for
    the writer, ``dir_fd`` for the link), so the path is never resolved again after the check."""
    dfd = _open_dir_nofollow(target.parent)
    try:
        tmp_name = atomic.temp_path_for(target).name
        tmp = Path(f"/proc/self/fd/{dfd}") / tmp_name
        try:
            result = write(tmp)
            try:  # fails on an existing file or symlink: no race with a planted link
                os.link(tmp_name, target.name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError as exc:
                raise AccessDenied(f"{target} appeared while writing: not overwritten") from exc
            os.fsync(dfd)
            return result
        finally:
            try:
                os.unlink(tmp_name, dir_fd=dfd)
            except FileNotFoundError:
                pass
    finally:
        os.close(dfd)
