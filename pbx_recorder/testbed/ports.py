"""Free local ports for private servers (127.0.0.1 only).

``free_tcp_port`` / ``free_udp_port`` ask the kernel; ``PortAllocator.udp_range`` finds a
contiguous block of free UDP ports (sipp media: the port and port+2 per process, 4 per call;
a private FreeSWITCH's RTP range) and claims it machine-wide (:mod:`port_registry`), so the
blocks of two processes never overlap either: pytest-xdist workers each have their own
allocator, and a FreeSWITCH binds its range only port by port as calls start.

The blocks lie outside the kernel's ephemeral range (``ip_local_port_range``, 32768-60999 by
default), where every port that ``free_udp_port``, a UDP client or a server started on "port 0"
gets comes from: a block inside it could take a port such a process is about to bind, and sipp
then fails with "Unable to bind main socket, errno = 98" (seen in CI).  Asterisk's fixed RTP
range (20000-29999, sandbox.asterisk_conf) is avoided too.
"""

from __future__ import annotations

import socket
import sys
import threading

from pbx_recorder.testbed.port_registry import PortRegistry


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def tcp_listening(host: str, port: int, table: str = "/proc/net/tcp") -> bool:
    """Whether a socket LISTENs on ``host:port`` (IPv4; a wildcard listener counts), read from
    the kernel's socket table: a readiness probe must not touch the port.  The probe it replaces
    bound the port itself, without ``SO_REUSEADDR``, every 0.2 s while the recorder started: when
    the recorder's own bind fell inside one of those moments it exited with "cannot listen on
    127.0.0.1:<port>: Address already in use" (seen in CI).  Connecting is no probe either: it
    would open a consent session."""
    # (the table prints the address as the host's own reading of its 4 bytes, in hex)
    wanted = {f"{int.from_bytes(socket.inet_aton(host), sys.byteorder):08X}", "00000000"}
    with open(table) as f:
        next(f, None)  # the header
        for line in f:
            fields = line.split()
            if len(fields) < 4 or fields[3] != TCP_LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if address in wanted and int(hex_port, 16) == port:
                return True
    return False


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def udp_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound for UDP right now."""
    return _bindable(port, socket.SOCK_DGRAM)


def tcp_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound for TCP right now."""
    return _bindable(port, socket.SOCK_STREAM)


ASTERISK_RTP_END = 30000  # the sandbox Asterisks' RTP ports are below this
LARGE_BLOCK = 64  # this many ports or more: packed from the low end of the window, fewer from the high end
MIN_GAP = 2000  # three workers' FreeSWITCH ranges (400 each) and their sipp media blocks


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral port range (first, last); Linux's default when it cannot be read."""
    try:
        with open(path) as f:
            first, last = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        return 32768, 60999
    return first, last


def block_range(ephemeral: tuple[int, int] | None = None) -> tuple[int, int]:
    """``[low, high)`` for the allocator's blocks: the larger gap beside the ephemeral range,
    above Asterisk's RTP ports; 40000-60000 (inside it, as before) when neither gap holds
    :data:`MIN_GAP` ports."""
    first, last = ephemeral or ephemeral_range()
    below = (ASTERISK_RTP_END, first)
    above = (last + 1, 65536)
    best = max((below, above), key=lambda r: r[1] - r[0])
    return best if best[1] - best[0] >= MIN_GAP else (40000, 60000)


class PortAllocator:
    """Hands out disjoint UDP port blocks inside ``[low, high)``; with a ``registry``, disjoint
    from the blocks of every other allocator that claims in the same registry too."""

    def __init__(self, low: int | None = None, high: int | None = None,
                 registry: PortRegistry | None = None) -> None:
        default_low, default_high = block_range()
        self._low = default_low if low is None else low
        self._high = default_high if high is None else high
        self._taken: set[int] = set()
        self._lock = threading.Lock()
        self._registry = registry

    def udp_range(self, count: int) -> int:
        """Return the first port of ``count`` consecutive free UDP ports (even start), packed:
        a large block (:data:`LARGE_BLOCK` ports or more: a FreeSWITCH's RTP range) is the lowest
        free one of the window, a small one (a sipp media block) the highest.  Blocks placed at
        random fragmented the window: four workers' beds once left no 400 free ports in a row
        (CI: "no 400 consecutive free UDP ports in 61000-65536") although most of it was free.
        The scan skips past each port found in use, so a full window is known after one pass;
        the error then names the live claims and the largest free gap."""
        with self._lock:
            claimed = self._claimed_elsewhere()
            base = self._first_start(count, upward=count >= LARGE_BLOCK)
            while base is not None:
                busy = self._busy_in(base, count, claimed, upward=count >= LARGE_BLOCK)
                if busy is None:
                    if self._registry is None or self._registry.claim(base, count):
                        self._taken.update(range(base, base + count))
                        return base
                    claimed = self._claimed_elsewhere()  # claimed meanwhile by another process
                    continue
                base = self._next_start(busy, count, upward=count >= LARGE_BLOCK)
            raise OSError(f"no {count} consecutive free UDP ports in {self._low}-{self._high} "
                          f"(largest unclaimed gap {self._largest_gap(claimed)}; claims {sorted(claimed)})")

    def _claimed_elsewhere(self) -> list[tuple[int, int]]:
        if self._registry is None:
            return []
        return self._registry.taken()  # (blocks cooling too: the registry would refuse them)

    def _first_start(self, count: int, *, upward: bool) -> int | None:
        lowest = self._low + (self._low & 1)
        highest = (self._high - count) & ~1
        if highest < lowest:
            return None
        return lowest if upward else highest

    def _next_start(self, busy: int, count: int, *, upward: bool) -> int | None:
        """The next even start that leaves out the busy port ``busy``, or None past the window."""
        if upward:
            base = busy + 1 + ((busy + 1) & 1)
            return base if base + count <= self._high else None
        base = (busy - count) & ~1
        return base if base >= self._low else None

    def _busy_in(self, base: int, count: int, claimed: list[tuple[int, int]], *, upward: bool) -> int | None:
        """A port of the block in use (the one farthest along the scan), or None when all are free."""
        ports = range(base, base + count) if upward else range(base + count - 1, base - 1, -1)
        busy = None
        for port in ports:
            if port in self._taken or any(b <= port < b + n for b, n in claimed) or not udp_free(port):
                busy = port
        return busy

    def _largest_gap(self, claimed: list[tuple[int, int]]) -> int:
        best = run = 0
        for port in range(self._low, self._high):
            free = port not in self._taken and not any(b <= port < b + n for b, n in claimed)
            run = run + 1 if free else 0
            best = max(best, run)
        return best

    def udp_port(self) -> int:
        return self.udp_range(1)

    def tcp_port(self) -> int:
        """A free TCP port outside the ephemeral range, claimed like a block: for a port that
        is bound again and again (a private FreeSWITCH's outbound-socket port, which each
        test's recorder listens on in turn), where a port from ``free_tcp_port`` could become
        the local port of any outgoing connection between two tests ("Address already in
        use", seen in CI).  The highest free one, beside the small UDP blocks, so that it never
        splits the room the large ones need.  Give it back with ``release(port, 1)``."""
        with self._lock:
            claimed = self._claimed_elsewhere()
            for port in range(self._high - 1, self._low - 1, -1):
                if port in self._taken or any(b <= port < b + n for b, n in claimed) or not tcp_free(port):
                    continue
                if self._registry is not None and not self._registry.claim(port, 1):
                    continue
                self._taken.add(port)
                return port
        raise OSError(f"no free TCP port in {self._low}-{self._high}")

    def release(self, base: int, count: int) -> None:
        with self._lock:
            self._taken.difference_update(range(base, base + count))
            if self._registry is not None:
                self._registry.release(base, count)


DEFAULT_ALLOCATOR = PortAllocator(registry=PortRegistry())
