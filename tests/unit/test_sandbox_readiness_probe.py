"""The test bed's "does the recorder listen yet?" probe reads the kernel's socket table and never
touches the port.  It used to bind the port itself (without ``SO_REUSEADDR``) every 0.2 s while
the recorder started, and a recorder whose own bind fell into one of those moments exited with
"cannot listen on 127.0.0.1:65535: Address already in use" (CI, FreeSWITCH outbound socket)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from pbx_recorder.testbed.ports import tcp_listening


def test_a_listening_socket_is_seen_and_a_bound_or_closed_one_is_not() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert not tcp_listening("127.0.0.1", port)  # the bind probe said True here
        bound.listen()
        assert tcp_listening("127.0.0.1", port)
    assert not tcp_listening("127.0.0.1", port)


def test_a_wildcard_listener_counts_for_the_loopback_address() -> None:
    with socket.create_server(("0.0.0.0", 0)) as server:
        assert tcp_listening("127.0.0.1", server.getsockname()[1])


def test_the_probe_never_takes_the_port_from_a_server_starting_on_it() -> None:
    """A server binding and closing the port again and again while the probe polls it: with the
    old bind probe some of these binds failed with EADDRINUSE."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = threading.Event()
    polls = 0

    def poll() -> None:
        nonlocal polls
        while not stop.is_set():
            tcp_listening("127.0.0.1", port)
            polls += 1

    prober = threading.Thread(target=poll, daemon=True)
    prober.start()
    failures: list[OSError] = []
    try:
        for _ in range(1000):
            try:
                socket.create_server(("127.0.0.1", port)).close()
            except OSError as exc:
                failures.append(exc)
    finally:
        stop.set()
        prober.join(timeout=5)
    assert polls > 0 and failures == []


def test_the_table_is_parsed_by_state_address_and_port(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:FFFF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        "   1: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 2\n"
        "   2: 0200007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3\n")
    assert tcp_listening("127.0.0.1", 65535, str(table))
    assert not tcp_listening("127.0.0.1", 8080, str(table))  # established, not listening
    assert not tcp_listening("127.0.0.1", 8081, str(table))  # another address listens
    assert tcp_listening("127.0.0.2", 8081, str(table))
