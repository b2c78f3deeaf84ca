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

A block given back cools for ``cool_s`` seconds (10 by default) before anyone gets it again: the
allocator packs blocks (ports.py), so a block released is the next one handed out, and the media
a PBX still sends to a test's sipp for a moment after it ended would reach the next test's.

One JSON list ``[[base, count, pid, until], ...]`` (``pid`` 0: a block cooling until ``until``)
in ``/tmp/pbxrec-udp-port-claims-<uid>.json`` (a fixed
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage import atomic

DEFAULT_PATH = Path(os.environ.get("PBXR_PORT_REGISTRY", f"/tmp/pbxrec-udp-port-claims-{os.getuid()}.json"))
Claim = tuple[int, int, int]  # base, count, pid
Entry = tuple[int, int, int, float]  # base, count, pid (0: cooling), until (cooling)
COOL_S = 10.0


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

    def __init__(self, path: str | Path = DEFAULT_PATH, cool_s: float = COOL_S) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.cool_s = cool_s

    @contextmanager
    def _locked(self) -> Iterator[list[Entry]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # never through a link planted in /tmp; the claims written with the project's atomic write
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                now = time.time()
                claims = [c for c in self._read() if (_alive(c[2]) if c[2] else c[3] > now)]
                yield claims
                atomic.write_bytes(self.path, json.dumps(claims).encode())
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[Entry]:
        try:
            return [(int(e[0]), int(e[1]), int(e[2]), float(e[3]) if len(e) > 3 else 0.0)
                    for e in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError, IndexError, KeyError):
            return []  # none yet, or not a list of entries: start again

    def claim(self, base: int, count: int) -> bool:
        """Claim the block for this process; False when it overlaps a live claim."""
        with self._locked() as claims:
            if any(base < b + n and b < base + count for b, n, _, _ in claims):
                return False
            claims.append((base, count, os.getpid(), 0.0))
            return True

    def release(self, base: int, count: int) -> None:
        """Give the block back; it cools for ``cool_s`` seconds first."""
        with self._locked() as claims:
            mine = (base, count, os.getpid(), 0.0)
            if mine in claims:
                claims.remove(mine)
                if self.cool_s > 0:
                    claims.append((base, count, 0, time.time() + self.cool_s))

    def claims(self) -> list[Claim]:
        """The live claims (for tests and post-mortems)."""
        with self._locked() as claims:
            return [(b, n, p) for b, n, p, _ in claims if p]

    def taken(self) -> list[tuple[int, int]]:
        """Every block nobody else may get now: claimed, or cooling."""
        with self._locked() as claims:
            return [(b, n) for b, n, _, _ in claims]
