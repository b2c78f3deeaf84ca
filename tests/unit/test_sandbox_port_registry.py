"""Port blocks of the test beds are claimed machine-wide (pbx_recorder/testbed/port_registry.py).

Two pytest-xdist workers each have their own PortAllocator; a FreeSWITCH RTP range is free for
the kernel until the calls bind it, and FreeSWITCH binds with SO_REUSEADDR, so the later of two
overlapping FreeSWITCHes took the other's caller audio (a silent recording in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.testbed.port_registry import PortRegistry
from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator, block_range, ephemeral_range


@pytest.fixture
def free_window() -> Iterator[tuple[int, int]]:
    """(base, count): ``count`` free UDP ports, claimed machine-wide for the test's length by the
    test beds' own allocator, so no other worker's allocator hands them out meanwhile; they lie
    outside the kernel's ephemeral range, so no "port 0" socket gets one either.  None free: the
    allocator's OSError names the range it searched (a failure, never a skip)."""
    count = 8
    base = DEFAULT_ALLOCATOR.udp_range(count)
    try:
        yield base, count
    finally:
        DEFAULT_ALLOCATOR.release(base, count)


def test_two_allocators_of_a_machine_never_hand_out_overlapping_blocks(tmp_path: Path,
                                                                      free_window: tuple[int, int]) -> None:
    base, count = free_window
    registry = tmp_path / "claims.json"
    worker_a = PortAllocator(base, base + count + 1, registry=PortRegistry(registry, cool_s=0))
    worker_b = PortAllocator(base, base + count + 1, registry=PortRegistry(registry, cool_s=0))
    assert worker_a.udp_range(count) == base  # the only block of the window; nothing binds it yet
    with pytest.raises(OSError, match="no 8 consecutive free UDP ports"):
        worker_b.udp_range(count)
    worker_a.release(base, count)
    assert worker_b.udp_range(count) == base


def test_a_claim_of_a_process_that_is_gone_is_dropped(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True, timeout=30)
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([[50000, 400, int(gone.stdout)]]))
    registry = PortRegistry(path)
    assert registry.claim(50100, 2)
    assert [(b, n) for b, n, _ in registry.claims()] == [(50100, 2)]


def test_overlapping_claims_are_refused_and_released_ones_reused(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path / "claims.json", cool_s=0)
    assert registry.claim(41000, 400)
    assert not registry.claim(41398, 4)  # overlaps the last two ports
    assert registry.claim(41400, 4)  # adjacent is fine
    registry.release(41000, 400)
    assert registry.claim(41398, 2)


def test_an_unreadable_claims_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "claims.json"
    path.write_text("{not json")
    assert PortRegistry(path).claim(42000, 2)
    assert json.loads(path.read_text())[0][:2] == [42000, 2]


def test_blocks_lie_outside_the_kernels_ephemeral_ports() -> None:
    """A port the kernel hands out (``free_udp_port``, any "port 0" socket) can never fall in a
    block: CI once saw sipp fail "Unable to bind main socket, errno = 98" inside 40000-60000."""
    assert block_range((32768, 60999)) == (61000, 65536)  # Linux's default
    assert block_range((50000, 55000)) == (30000, 50000)  # the larger gap, above Asterisk's RTP
    assert block_range((1024, 65535)) == (40000, 60000)  # no room outside: as before
    low, high = block_range()
    first, last = ephemeral_range()
    assert high <= first or low > last or (low, high) == (40000, 60000)
    allocator = PortAllocator()
    base = allocator.udp_range(400)
    assert low <= base and base + 400 <= high
    allocator.release(base, 400)


@pytest.fixture
def free_tcp_window() -> Iterator[tuple[int, int]]:
    """As ``free_window``, where every port is free for TCP too (the beds' TCP ports are packed
    at the top of the same window: a real-server test may listen on one of them right now)."""
    from pbx_recorder.testbed.ports import tcp_free

    count, held = 8, []
    try:
        while True:
            base = DEFAULT_ALLOCATOR.udp_range(count)
            held.append(base)
            if all(tcp_free(p) for p in range(base, base + count)):
                break
        yield base, count
    finally:
        for block in held:
            DEFAULT_ALLOCATOR.release(block, count)


def test_a_tcp_port_bound_again_and_again_lies_outside_the_ephemeral_range_and_is_claimed(
        tmp_path: Path, free_tcp_window: tuple[int, int]) -> None:
    """A private FreeSWITCH's outbound-socket port is listened on by each test's recorder in turn;
    from ``free_tcp_port`` (the ephemeral range) it became the local port of another worker's
    outgoing connection between two tests: "Address already in use" (seen in CI)."""
    base, count = free_tcp_window
    registry = PortRegistry(tmp_path / "claims.json", cool_s=0)
    ours, theirs = (PortAllocator(base, base + count, registry=registry),
                    PortAllocator(base, base + count, registry=registry))
    first, last = ephemeral_range()
    taken = [ours.tcp_port() for _ in range(count // 2)] + [theirs.tcp_port() for _ in range(count // 2)]
    assert len(set(taken)) == count and all(base <= p < base + count for p in taken)
    assert not any(first <= p <= last for p in taken) or block_range() == (40000, 60000)
    with pytest.raises(OSError, match="no free TCP port"):
        ours.tcp_port()  # every port of the window claimed
    ours.release(taken[0], 1)
    assert theirs.tcp_port() == taken[0]


def test_weeds_four_port_pairs_are_all_different_and_claimed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # four independent picks once gave SeaweedFS's master and S3 API the same port (CI): picks
    # that repeat themselves must still come out as four different pairs
    from tests.real import s3_servers

    picks = iter([7, 7, 7, 12, 12, 7, 300, 12, 4000] * 10)
    monkeypatch.setattr(s3_servers.secrets, "randbelow", lambda _n: next(picks))
    registry = PortRegistry(tmp_path / "claims.json")
    chosen = s3_servers.free_grpc_ports(("s3", "master", "volume", "filer"), registry)
    ports = [p for port in chosen.values() for p in (port, port + 10000)]
    assert len(set(ports)) == 8 and all(2000 <= p < 20000 for p in ports), chosen
    assert sorted(b for b, _n, _pid in registry.claims()) == sorted(ports)
    s3_servers.release_grpc_ports(chosen, registry)
    assert registry.claims() == []


@pytest.fixture
def wide_window() -> Iterator[tuple[int, int]]:
    """(low, high): 1,200 free UDP ports claimed machine-wide by the beds' own allocator for the
    test's length (a large block: the lowest free one of its window)."""
    count = 1200
    base = DEFAULT_ALLOCATOR.udp_range(count)
    try:
        yield base, base + count
    finally:
        DEFAULT_ALLOCATOR.release(base, count)


def test_small_blocks_never_split_the_room_a_large_one_needs(tmp_path: Path,
                                                             wide_window: tuple[int, int]) -> None:
    """CI: four workers' beds, with blocks placed at random, left no 400 free ports in a row of
    61000-65536 although most of it was free.  Packed (large from the bottom, small and TCP from
    the top), a window with room for the sum of the blocks takes them in any order."""
    low, high = wide_window
    registry = PortRegistry(tmp_path / "claims.json", cool_s=0)
    workers = [PortAllocator(low, high, registry=registry) for _ in range(3)]
    small, large = [], []
    for i in range(20):
        small.append(workers[i % 3].udp_range(12))
        if i in (3, 11):
            large.append(workers[i % 3].udp_range(400))
    tcp = workers[0].tcp_port()
    assert large == [low, low + 400]  # the lowest free ones
    assert max(small) == high - 12 and min(small) >= low + 800 and tcp == min(small) - 1
    workers[0].release(large[0], 400)
    assert workers[2].udp_range(400) == low  # the freed room is whole again
    with pytest.raises(OSError, match=r"no 400 consecutive free UDP ports .*largest unclaimed gap"):
        workers[1].udp_range(400)  # 1200 - 800 - 240 - 1 left: really full, and the error says so


def test_a_large_block_is_found_past_ports_in_use(tmp_path: Path, wide_window: tuple[int, int]) -> None:
    low, _high = wide_window
    allocator = PortAllocator(low, low + 64 + 33, registry=PortRegistry(tmp_path / "claims.json"))
    allocator._taken.update(range(low, low + 32))  # (held by this worker's other beds)
    assert allocator.udp_range(64) == low + 32
    allocator.release(low + 32, 64)


def test_a_block_given_back_cools_before_anyone_gets_it_again(tmp_path: Path,
                                                             wide_window: tuple[int, int]) -> None:
    """Packed blocks are reused at once: a PBX still sending a finished test's media for a moment
    would reach the next test's sipp.  A released block waits ``cool_s`` (10 s by default) in the
    registry, for every process; then it is free again."""
    low, high = wide_window
    path = tmp_path / "claims.json"
    ours = PortAllocator(low, high, registry=PortRegistry(path, cool_s=0.5))
    theirs = PortAllocator(low, high, registry=PortRegistry(path, cool_s=0.5))
    first = ours.udp_range(400)
    ours.release(first, 400)
    assert theirs.udp_range(400) == first + 400  # not the block still cooling
    assert PortRegistry(path).claims() == [(first + 400, 400, os.getpid())]  # (live claims only)
    time.sleep(0.6)
    assert theirs.udp_range(400) == first  # cooled: free again
    theirs.release(first, 400)
    theirs.release(first + 400, 400)
    assert PortRegistry().cool_s == 10.0
