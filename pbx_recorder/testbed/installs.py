"""Which Asterisk a :class:`PrivateAsterisk` runs: the host's own, or one inside a chroot.

The test bed runs two versions: the host's Asterisk 16 (Debian bullseye packages) and
Asterisk 22 from Debian sid in a chroot made by ``.ci/install-asterisk22.sh`` (default
``/var/cache/pbx-recorder/sid-asterisk``; ``PBXREC_SID_ROOT`` moves it).

A chrooted Asterisk is started in a private mount namespace (``unshare -m``): ``/proc``,
``/dev``, a fresh ``/tmp`` and the shared folders (the instance's work folder, the prompts)
are mounted inside it at the same paths as on the host, so MixMonitor's paths mean the same
file on both sides.  The mounts belong to the namespace and vanish with its last process:
a crashed test cannot leave one behind, and nothing is ever mounted on the host.  Network
is shared: AMI, SIP and RTP on 127.0.0.1 reach sipp and the recorder on the host directly.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.errors import RecorderError

SID_ROOT_ENV = "PBXREC_SID_ROOT"
DEFAULT_SID_ROOT = "/var/cache/pbx-recorder/sid-asterisk"
STAMP = ".pbx-recorder-stamp"

# Run as: unshare -m --propagation private -- sh -ec LAUNCH sh ROOT SHARED... -- COMMAND...
LAUNCH = r"""root="$1"; shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
while [ "$1" != "--" ]; do
  mkdir -p "$root$1"
  mount --bind "$1" "$root$1"
  shift
done
shift
exec chroot "$root" "$@"
"""


class InstallError(RecorderError):
    """The Asterisk to run is missing or unusable."""


@dataclass(frozen=True)
class AsteriskInstall:
    """``root=None``: the host's Asterisk; otherwise the chroot at ``root``."""

    root: Path | None = None

    def host_path(self, inside: str) -> Path:
        """Where a path as Asterisk sees it lives on the host."""
        return self.root / inside.lstrip("/") if self.root is not None else Path(inside)

    def version(self) -> str:
        """Asterisk's version (``16.28.0``, ``22.10.1``) from ``asterisk -V``."""
        cmd = ["chroot", str(self.root), "asterisk", "-V"] if self.root is not None else ["asterisk", "-V"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstallError(f"cannot run {' '.join(cmd)}: {exc}") from exc
        found = re.search(r"Asterisk (\d+\.\d+\.\d+)", out)
        if found is None:
            raise InstallError(f"{' '.join(cmd)} printed no version: {out.strip()[:200]!r}")
        return found.group(1)

    def module_dir(self) -> str:
        """The module folder as Asterisk sees it: ``/usr/lib/asterisk/modules`` (Debian up to
        bookworm) or the multiarch ``/usr/lib/<triplet>/asterisk/modules`` (sid's 22).  The one
        holding ``app_mixmonitor.so``; more than one is an error (which would Asterisk use?)."""
        candidates = ["/usr/lib/asterisk/modules", "/usr/lib64/asterisk/modules"]
        base = self.host_path("/usr/lib")
        candidates += sorted("/usr/lib/" + os.path.relpath(p, base)
                             for p in glob.glob(str(base / "*" / "asterisk" / "modules")))
        found = sorted({c for c in candidates if self.host_path(c).joinpath("app_mixmonitor.so").is_file()})
        if len(found) != 1:
            where = f" in {self.root}" if self.root is not None else ""
            raise InstallError(f"expected one Asterisk module folder with app_mixmonitor.so{where}, "
                               f"found {found or 'none'}")
        return found[0]

    def launch(self, argv: list[str], shared: list[Path]) -> list[str]:
        """The command line that runs ``argv`` (an ``asterisk`` command) in this install."""
        if self.root is None:
            return argv
        for path in shared:
            if not path.is_absolute() or not path.is_dir() or "--" == str(path):
                raise InstallError(f"shared folder must be an existing absolute directory: {path}")
        return ["unshare", "-m", "--propagation", "private", "--", "sh", "-ec", LAUNCH, "sh",
                str(self.root), *(str(p) for p in shared), "--", *argv]

    def remote(self, pid: int | None, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` (e.g. ``asterisk -rx``) next to the running
        instance ``pid``: in its mount namespace and root for a chroot."""
        if self.root is None:
            return argv
        if pid is None:
            raise InstallError("the chrooted Asterisk is not running")
        return ["nsenter", "-t", str(pid), "-m", "-r", "-w", *argv]


def sid_root() -> Path:
    return Path(os.environ.get(SID_ROOT_ENV) or DEFAULT_SID_ROOT)


def install_for(label: str) -> AsteriskInstall:
    """``"16"``: the host's Asterisk; ``"22"``: the sid chroot (which must be complete)."""
    if label == "16":
        return AsteriskInstall()
    if label == "22":
        root = sid_root()
        if not (root / STAMP).is_file():
            raise InstallError(f"no Asterisk 22 chroot at {root} (no {STAMP}): run .ci/install-asterisk22.sh "
                               f"as root, or set {SID_ROOT_ENV}")
        return AsteriskInstall(root)
    raise InstallError(f"unknown Asterisk version label {label!r} (16 or 22)")
