"""ESL ingest benchmark: our parse -> normalize -> rules -> CallBook vs greenswitch's bare parsing.

    .venv/bin/python bench/bench_esl_pipeline.py [--calls 5000] [--chunk 65536] [--capture FILE]
                                                 [--baseline REV] [--repeat 3]

1. Bytes: a synthetic inbound-ESL stream of ``--calls`` calls as FreeSWITCH 1.11 sends them for
   the recorder's subscription (CHANNEL_CREATE x2, CHANNEL_ANSWER x2, CHANNEL_BRIDGE, RECORD_START,
   CHANNEL_UNBRIDGE, RECORD_STOP, CHANNEL_HANGUP_COMPLETE x2: 10 ``text/event-plain`` frames a call,
   each with the channel data, caller profile and ~40 ``variable_*`` headers, percent-encoded).
   ``--capture FILE``: raw bytes captured from a real FreeSWITCH (tests/fixtures/esl/), its event
   frames only (the replies to the capture's own commands left out), ``--calls`` times, each time
   with new uuids (:func:`fresh_calls`): real events (5-9 kB, 130-290 headers), new calls.
2. Baseline, measured in the same run: greenswitch's own reader, ``ESLProtocol.receive_events``
   (``readline`` per header line, ``_read_socket`` for the Content-Length body,
   ``handle_event`` -> ``ESLEvent.parse_data`` -> its event queue) over the same bytes in memory.
3. Ours: :class:`esl.frames.EslParser` fed ``--chunk``-sized pieces as a socket would ->
   ``EslFrame.event`` -> :class:`esl.normalize.EslNormalizer` -> the core's
   :class:`pbx_recorder.core.calls.CallBook` (rules evaluated inside ``handle``) + a ``tick`` every
   simulated second; commands are produced, not carried out.
4. The same pipeline as the code of git revision ``--baseline`` has it (default ``124bcb1``, the
   main branch before the session-17 speed work): its ``esl``/``pbx_recorder``/... packages are
   extracted with ``git archive`` into a temporary directory.  Each side runs in its own child
   process (``--worker``, PYTHONPATH set to one tree or the other; the child prints where it
   imported ``esl.frames`` from), baseline and ours alternately, ``--repeat`` rounds, best of each.

Prints events/s for each, the ratios to greenswitch and to the baseline, per-event p50/p99.  Targets:
ratio >= 0.5, >= 20,000 events/s on one core (CPU seconds of this process).  Nothing here asserts:
the numbers are for reading.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from esl.frames import EVENT_PLAIN, EslParser, render_event_plain, render_frame
from esl.normalize import EslNormalizer
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.rules import rules_from_dicts

EVENTS_PER_CALL = 10
# Throughput is measured in CPU time of this process (time.process_time): the machine is shared
# and wall time would count other jobs' time slices.  Per-event p50/p99 stay wall-clock.
CPU = time.process_time


def _variables(n: int, a: str, t0: float) -> list[tuple[str, str]]:
    """The variable block FreeSWITCH attaches to channel events (trimmed to common ones)."""
    names = [
        "direction",
        "uuid",
        "session_id",
        "sip_from_user",
        "sip_from_uri",
        "sip_from_host",
        "sip_to_user",
        "sip_to_uri",
        "sip_to_host",
        "sip_contact_user",
        "sip_contact_uri",
        "sip_via_host",
        "sip_via_port",
        "sip_via_rport",
        "sip_call_id",
        "sip_user_agent",
        "sip_local_network_addr",
        "sip_network_ip",
        "sip_network_port",
        "sip_received_ip",
        "sip_received_port",
        "sip_acl_authed_by",
        "sip_req_user",
        "sip_req_uri",
        "sip_req_host",
        "switch_r_sdp",
        "rtp_remote_audio_ip",
        "rtp_remote_audio_port",
        "rtp_audio_recv_pt",
        "rtp_use_codec_name",
        "rtp_use_codec_rate",
        "read_codec",
        "write_codec",
        "endpoint_disposition",
        "current_application",
        "current_application_data",
        "PBXREC_DIRECTION",
        "PBXREC_DIALED",
        "PBXREC_CALL_ID",
        "start_epoch",
    ]
    values = {
        "uuid": a,
        "sip_call_id": f"{n}-call@198.51.100.7",
        "PBXREC_CALL_ID": a,
        "PBXREC_DIALED": "4930123456",
        "PBXREC_DIRECTION": "inbound",
        "start_epoch": str(int(t0)),
        "switch_r_sdp": "v=0\no=- 1 1 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\n"
        "m=audio 4000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=ptime:30\n",
    }
    return [(f"variable_{k}", values.get(k, f"{k}-value {n}")) for k in names]


def _event(name: str, uuid: str, n: int, at: float, a: str, extra: dict[str, str]) -> bytes:
    headers = [
        ("Event-Name", name),
        ("Core-UUID", "c0de0000-0000-4000-8000-000000000001"),
        ("FreeSWITCH-Hostname", "pbx1"),
        ("FreeSWITCH-Switchname", "pbx1"),
        ("FreeSWITCH-IPv4", "192.0.2.10"),
        ("Event-Date-Local", "2025-12-01 15:20:00"),
        ("Event-Date-GMT", "Mon, 01 Dec 2025 15:20:00 GMT"),
        ("Event-Date-Timestamp", str(int(at * 1e6))),
        ("Event-Calling-File", "switch_channel.c"),
        ("Event-Calling-Function", "switch_channel_perform"),
        ("Event-Calling-Line-Number", "4000"),
        ("Event-Sequence", str(n)),
        ("Channel-State", "CS_EXECUTE"),
        ("Channel-Call-State", "ACTIVE"),
        ("Channel-State-Number", "4"),
        ("Channel-Name", f"sofia/external/+4915112345678@198.51.100.7:{5060 + n % 100}"),
        ("Unique-ID", uuid),
        ("Call-Direction", "inbound"),
        ("Presence-Call-Direction", "inbound"),
        ("Channel-HIT-Dialplan", "true"),
        ("Channel-Call-UUID", a),
        ("Answer-State", "answered"),
        ("Caller-Direction", "inbound"),
        ("Caller-Username", "+4915112345678"),
        ("Caller-Dialplan", "XML"),
        ("Caller-Caller-ID-Name", "Müller, Jürgen 张伟"),
        ("Caller-Caller-ID-Number", "+4915112345678"),
        ("Caller-Network-Addr", "198.51.100.7"),
        ("Caller-Destination-Number", "4930123456"),
        ("Caller-Unique-ID", uuid),
        ("Caller-Source", "mod_sofia"),
        ("Caller-Context", "public"),
        *_variables(n, a, at),
    ]
    # an extra header replaces the one of the same name (FreeSWITCH never repeats a header; a
    # repeat would also keep its FIRST value, e.g. RECORD_STOP's Channel-State: CS_HANGUP lost)
    known = {k: i for i, (k, _) in enumerate(headers)}
    for k, v in extra.items():
        if k in known:
            headers[known[k]] = (k, v)
        else:
            headers.append((k, v))
    return render_event_plain(headers)


def generate(calls: int, t0: float = 1_764_600_000.0) -> bytes:
    parts: list[bytes] = []
    for n in range(calls):
        a = f"6f1c3a52-8f0e-4c3b-{n // 65536:04x}-{n % 65536:012x}"
        b = f"0b7d2e44-1c55-4a8e-{n // 65536:04x}-{n % 65536:012x}"
        at = t0 + n * 0.01
        b_link = {"Other-Type": "originator", "Other-Leg-Unique-ID": a, "variable_originating_leg_uuid": a}
        bridge = {"Bridge-A-Unique-ID": a, "Bridge-B-Unique-ID": b}
        cdr = {
            "Hangup-Cause": "NORMAL_CLEARING",
            "variable_hangup_cause_q850": "16",
            "variable_answer_epoch": str(int(at + 1)),
            "variable_end_epoch": str(int(at + 60)),
            "variable_billsec": "59",
            "variable_duration": "60",
            "Channel-State": "CS_REPORTING",
        }
        path = {"Record-File-Path": f"/var/spool/pbx-recorder/monitor/pbx1_{a}_call001.wav"}
        parts += [
            _event("CHANNEL_CREATE", a, n, at, a, {}),
            _event("CHANNEL_ANSWER", a, n, at + 1, a, {}),
            _event("CHANNEL_CREATE", b, n, at + 2, a, b_link),
            _event("CHANNEL_ANSWER", b, n, at + 3, a, b_link),
            _event("CHANNEL_BRIDGE", a, n, at + 3, a, bridge),
            _event("RECORD_START", a, n, at + 3, a, path),
            _event("CHANNEL_UNBRIDGE", a, n, at + 60, a, bridge),
            _event("RECORD_STOP", a, n, at + 60, a, {**path, "Channel-State": "CS_HANGUP"}),
            _event("CHANNEL_HANGUP_COMPLETE", b, n, at + 60, a, {**b_link, **cdr}),
            _event("CHANNEL_HANGUP_COMPLETE", a, n, at + 60, a, cdr),
        ]
    return b"".join(parts)


def events_only(capture: bytes) -> bytes:
    """A capture's event frames, as they were: its command replies answer commands this bench does
    not send (greenswitch's reader would pop a command that was never sent for each)."""
    frames = EslParser().feed(capture)
    return b"".join(render_frame(f.headers.items(), f.body) for f in frames if f.content_type == EVENT_PLAIN)


_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})")


def fresh_calls(events: bytes, times: int) -> bytes:
    """``events`` repeated ``times`` times, each time with new uuids (the last 12 hex digits of
    every uuid made the repetition's number: the same length, so every Content-Length holds):
    new calls and legs for the normalizer and the core, not one call seen again and again."""
    uuids = {m[0] for m in _UUID.finditer(events)}
    if len({u[:-12] for u in uuids}) != len(uuids):
        raise SystemExit("two uuids of the capture share their first 24 characters")
    cuts = [m.span(1) for m in _UUID.finditer(events)]  # where each uuid's last 12 digits are
    starts, ends = [0] + [end for _, end in cuts], [start for start, _ in cuts] + [len(events)]
    texts = [events[a:b] for a, b in zip(starts, ends, strict=True)]
    out: list[bytes] = []
    for k in range(times):
        tail = b"%012x" % k
        out += [piece for text in texts[:-1] for piece in (text, tail)]
        out.append(texts[-1])
    return b"".join(out)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def bench_greenswitch(data: bytes) -> tuple[int, float]:
    from greenswitch.esl import ESLProtocol

    proto = ESLProtocol()
    proto.sock_file = io.BufferedReader(io.BytesIO(data))  # type: ignore[attr-defined]
    proto.sock = mock.MagicMock()  # type: ignore[attr-defined]
    proto.connected = True
    start = CPU()
    proto.receive_events()  # reads until EOF, as on a socket
    elapsed = CPU() - start
    return proto._esl_event_queue.qsize(), elapsed


def bench_ours(data: bytes, size: int, t0: float) -> tuple[int, float, list[float], int]:
    rules = rules_from_dicts(
        [
            {"name": "hr-never", "match": {"dialed": ["_+4930123457XX"]}, "action": {"record": "never"}},
            {
                "name": "inbound",
                "match": {"direction": ["inbound"]},
                "action": {"record": "yes", "start_on": "bridge"},
            },
            {"name": "default-record", "match": {}, "action": {"record": "yes"}},
        ]
    )
    book = CallBook("pbx1", "/var/spool/pbx-recorder/monitor", rules, gosub_grace_s=0.0)
    normalizer = EslNormalizer("pbx1")
    parser = EslParser()
    per_event: list[float] = []
    events = commands = 0
    now, next_tick = t0, t0 + 1.0
    perf = time.perf_counter
    start = CPU()
    for piece in chunks(data, size):
        t = perf()
        frames = parser.feed(piece)
        share = (perf() - t) / len(frames) if frames else 0.0
        for frame in frames:
            t = perf()
            event = frame.event()
            if event is not None:
                for item in normalizer.normalize(event, now):
                    commands += len(book.handle(item, now))
            per_event.append(perf() - t + share)
            events += 1
            now += 0.001
            if now >= next_tick:
                commands += len(book.tick(now))
                next_tick = now + 1.0
    return events, CPU() - start, per_event, commands


def bench_parse_only(data: bytes, size: int) -> tuple[int, float]:
    """Our framing + event parsing alone (no normalizing, no core): the like-for-like line."""
    parser = EslParser()
    count = 0
    start = CPU()
    for piece in chunks(data, size):
        for frame in parser.feed(piece):
            event = frame.event()
            count += event is not None and bool(event.name)
    return count, CPU() - start


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else 0.0


ROOT = Path(__file__).resolve().parents[1]
#: the code the baseline side imports (everything the pipeline's modules import at that revision)
PACKAGES = ("esl", "pbx_recorder", "ami", "consent", "storage")


def extract(rev: str, into: Path) -> str:
    """The packages of ``rev`` under ``into`` (git archive | tar); returns the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", rev + "^{commit}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, *PACKAGES],
        check=True, capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def worker(data_file: Path, size: int) -> None:
    """One side's measurement in this process (the code PYTHONPATH points at): JSON on stdout."""
    import esl.frames

    data = data_file.read_bytes()
    gc.collect()
    events, cpu, per_event, commands = bench_ours(data, size, 1_764_600_000.0)
    parsed, parse_cpu = bench_parse_only(data, size)
    result = {
        "code": str(Path(esl.frames.__file__).resolve().parents[1]),
        "events": events, "cpu": cpu, "commands": commands,
        "p50": pct(per_event, 0.5), "p99": pct(per_event, 0.99),
        "parsed": parsed, "parse_cpu": parse_cpu,
    }
    print(json.dumps(result))


def run_side(tree: Path, data_file: Path, size: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(data_file), "--chunk", str(size)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if Path(result["code"]) != tree.resolve():
        raise SystemExit(f"the worker imported esl from {result['code']}, not {tree}")
    return result


def line(label: str, r: dict[str, Any]) -> str:
    rate = r["events"] / r["cpu"]
    return (
        f"{label:<28}: {r['events']:>8} events in {r['cpu']:6.2f} s = {rate:>9,.0f} events/s, "
        f"p50 {r['p50'] * 1e6:5.1f} us, p99 {r['p99'] * 1e6:6.1f} us ({r['commands']} commands); "
        f"parsing alone {r['parsed'] / r['parse_cpu']:>9,.0f} events/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=5_000)
    ap.add_argument("--chunk", type=int, default=65_536)
    ap.add_argument("--capture", type=Path, help="raw ESL bytes captured from a real FreeSWITCH")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of each; the best is reported")
    ap.add_argument("--baseline", default="124bcb1", help="git revision measured side by side ('' = none)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    if args.worker:
        return worker(args.worker, args.chunk)
    if args.capture:
        data = fresh_calls(events_only(args.capture.read_bytes()), args.calls)
    else:
        data = generate(args.calls)
    print(
        f"input: {len(data) / 1e6:.1f} MB, {f'capture {args.capture}' if args.capture else 'synthetic'}; "
        f"load average {load()} (the machine may be shared: rates are per CPU second of this process)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-esl-") as tmp:
        data_file = Path(tmp) / "stream.esl"
        data_file.write_bytes(data)
        sides = {"ours": ROOT}
        if args.baseline:
            base_tree = Path(tmp) / "baseline"
            commit = extract(args.baseline, base_tree)
            sides = {f"baseline {commit[:7]}": base_tree, **sides}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        bare: list[tuple[int, float]] = []
        for _ in range(args.repeat):  # alternately, so a busy spell of the host hits both sides
            bare.append(bench_greenswitch(data))
            for name, tree in sides.items():
                results[name].append(run_side(tree, data_file, args.chunk))
    best_bare = min(bare, key=lambda r: r[1])
    bare_rate = best_bare[0] / best_bare[1]
    print(
        f"{'greenswitch bare parsing':<28}: {best_bare[0]:>8} events in {best_bare[1]:6.2f} s = "
        f"{bare_rate:>9,.0f} events/s"
    )
    best = {name: min(runs, key=lambda r: r["cpu"]) for name, runs in results.items()}
    for name, r in best.items():
        print(line(f"{name} pipeline", r))
    ours = best["ours"]
    our_rate = ours["events"] / ours["cpu"]
    print(f"ratio ours/greenswitch: {our_rate / bare_rate:.2f}  (target >= 0.5; >= 20,000 events/s)")
    for name, r in best.items():
        if name != "ours":
            same = "same" if r["commands"] == ours["commands"] else "DIFFERENT"
            print(f"ours/{name}: {our_rate / (r['events'] / r['cpu']):.2f}x ({same} number of commands)")
    print(f"load average at the end: {load()}")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
