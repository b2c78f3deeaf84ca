"""Free local ports for private servers (127.0.0.1 only).

``free_tcp_port`` / ``free_udp_port`` ask the kernel; ``PortAllocator.udp_range`` finds a
contiguous block of free UDP ports (sipp media: the port and port+2 per process, 4 per call;
a private FreeSWITCH's RTP range) and claims it machine-wide (:mod:`port_registry`), so the
blocks of two processes never overlap either: pytest-xdist workers each have their own
allocator, and a FreeSWITCH binds its range only port by port as calls start.
"""

from __future__ import annotations

import random
import socket
import threading

from pbx_recorder.sandbox.port_registry import PortRegistry


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def udp_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound for UDP right now."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


class PortAllocator:
    """Hands out disjoint UDP port blocks inside ``[low, high)``; with a ``registry``, disjoint
    from the blocks of every other allocator that claims in the same registry too."""

    def __init__(self, low: int = 40000, high: int = 60000, seed: int | None = None,
                 registry: PortRegistry | None = None) -> None:
        self._low, self._high = low, high
        self._taken: set[int] = set()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._registry = registry

    def udp_range(self, count: int, attempts: int = 200) -> int:
        """Return the first port of ``count`` consecutive free UDP ports (even start)."""
        with self._lock:
            for _ in range(attempts):
                base = self._rng.randrange(self._low, self._high - count) & ~1
                block = range(base, base + count)
                if any(p in self._taken for p in block):
                    continue
                if not all(udp_free(p) for p in block):
                    continue
                if self._registry is not None and not self._registry.claim(base, count):
                    continue  # chosen by another process (maybe not bound yet)
                self._taken.update(block)
                return base
        raise OSError(f"no {count} consecutive free UDP ports in {self._low}-{self._high}")

    def udp_port(self) -> int:
        return self.udp_range(1)

    def release(self, base: int, count: int) -> None:
        with self._lock:
            self._taken.difference_update(range(base, base + count))
            if self._registry is not None:
                self._registry.release(base, count)


DEFAULT_ALLOCATOR = PortAllocator(registry=PortRegistry())
