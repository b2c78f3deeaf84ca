"""Machine-wide claims on UDP port blocks, so the test beds of several processes never share one.

Why: FreeSWITCH binds its RTP sockets with ``SO_REUSEADDR`` (switch_rtp.c).  Two private
FreeSWITCHes whose random RTP ranges overlap (one per pytest-xdist worker, each worker with its
own :class:`~pbx_recorder.testbed.ports.PortAllocator`) can both bind the same port, and Linux
then delivers every datagram to that port to the socket bound LAST: the first call hears nothing
from its caller for as long as the other call holds the port.  Its recording is FreeSWITCH's
filler for missing packets (every sample -1, read and write mixed: -2), 4.8 s for a 10 s notify
call, which is what CI once saw.  A kernel "is it bound?" probe cannot see a block that a process
has chosen but not bound yet (FreeSWITCH binds a port only when a call starts), so the claim is
written down instead.

One JSON list ``[[base, count, pid], ...]`` in ``/tmp/pbxrec-udp-port-claims-<uid>.json`` (a fixed
place, not ``$TMPDIR``: processes with different temp directories must still see each other's
claims; ``PBXR_PORT_REGISTRY`` overrides), read and rewritten under an exclusive ``flock`` of a
lock file beside it; claims of processes that no longer exist are dropped on every claim, so a
killed test run leaves nothing behind for long.  Test beds of different users do not see each
other's claims.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage import atomic

DEFAULT_PATH = Path(os.environ.get("PBXR_PORT_REGISTRY", f"/tmp/pbxrec-udp-port-claims-{os.getuid()}.json"))
Claim = tuple[int, int, int]  # base, count, pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class PortRegistry:
    """Claims of ``[base, base + count)`` UDP blocks shared by every process of the machine."""

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[list[Claim]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # never through a link planted in /tmp; the claims written with the project's atomic write
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                claims = [c for c in self._read() if _alive(c[2])]
                yield claims
                atomic.write_bytes(self.path, json.dumps(claims).encode())
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[Claim]:
        try:
            return [(int(b), int(n), int(p)) for b, n, p in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError):
            return []  # none yet, or not a list of triples: start again

    def claim(self, base: int, count: int) -> bool:
        """Claim the block for this process; False when it overlaps a live claim."""
        with self._locked() as claims:
            if any(base < b + n and b < base + count for b, n, _ in claims):
                return False
            claims.append((base, count, os.getpid()))
            return True

    def release(self, base: int, count: int) -> None:
        with self._locked() as claims:
            mine = (base, count, os.getpid())
            if mine in claims:
                claims.remove(mine)

    def claims(self) -> list[Claim]:
        """The live claims (for tests and post-mortems)."""
        with self._locked() as claims:
            return list(claims)
