"""AMI ingest benchmark: our frames -> normalize -> rules -> CallBook.handle vs panoramisk's bare parsing.

    .venv/bin/python bench/bench_ami_pipeline.py [--calls 10000] [--chunk 4096]

1. Generates a synthetic AMI transcript (raw bytes, CRLF) of ``--calls`` calls: Newchannel x2,
   Newstate (Ringing, Up) x2, VarSet noise x4, BridgeEnter x2, MixMonitorStart, BridgeLeave x2,
   Hangup x2, Cdr: 18 frames a call.
2. Baseline, measured in the same run: panoramisk's own path, ``AMIProtocol.data_received``
   (decode, split on blank lines, ``Message.from_line``, ``handle_message`` -> dispatch to a
   no-op factory), fed the same bytes in ``--chunk``-sized pieces as a socket would.
3. Ours: :class:`ami.frames.FrameParser` -> :class:`ami.normalize.Normalizer` -> the core's
   :class:`pbx_recorder.core.calls.CallBook` (rules evaluated inside ``handle``), plus a ``tick``
   every simulated second; commands are produced but not carried out.

Prints events/s, per-event p50/p99 latency and the ratio ours/bare.  Targets: ratio >= 0.5,
>= 20,000 events/s on one core.  Nothing here asserts: numbers are for reading.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
from collections.abc import Iterator
from unittest import mock

from panoramisk.ami_protocol import AMIProtocol

from ami.frames import FrameParser
from ami.normalize import Normalizer
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.rules import rules_from_dicts

FRAMES_PER_CALL = 18


def _frame(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"


def _chan(event: str, ch: str, uid: str, lid: str, **extra: str) -> str:
    pairs = [
        ("Event", event),
        ("Privilege", "call,all"),
        ("Channel", ch),
        ("ChannelState", "6"),
        ("ChannelStateDesc", "Up"),
        ("CallerIDNum", "4915112345678"),
        ("CallerIDName", "Caller"),
        ("ConnectedLineNum", "<unknown>"),
        ("ConnectedLineName", "<unknown>"),
        ("Language", "en"),
        ("AccountCode", ""),
        ("Context", "from-trunk"),
        ("Exten", "4930123456"),
        ("Priority", "1"),
        ("Uniqueid", uid),
        ("Linkedid", lid),
    ]
    pairs += list(extra.items())
    return _frame(pairs)


def generate(calls: int, t0: float = 1_732_200_000.0) -> bytes:
    parts = ["Asterisk Call Manager/5.0.1\r\n"]
    for n in range(calls):
        lid = f"{int(t0) + n // 10}.{2 * n}"
        uid_b = f"{int(t0) + n // 10}.{2 * n + 1}"
        a, b = f"PJSIP/trunk-{2 * n:08x}", f"PJSIP/agent-{2 * n + 1:08x}"
        parts += [
            _chan("Newchannel", a, lid, lid).replace("ChannelState: 6", "ChannelState: 4"),
            _chan("Newstate", a, lid, lid),
            _chan("VarSet", a, lid, lid, Variable="SIPCALLID", Value=f"{n}@trunk"),
            _chan("VarSet", a, lid, lid, Variable="__FROM_DID", Value="4930123456"),
            _chan("Newchannel", b, uid_b, lid).replace("ChannelState: 6", "ChannelState: 0"),
            _chan("Newstate", b, uid_b, lid).replace("ChannelState: 6", "ChannelState: 5"),
            _chan("VarSet", b, uid_b, lid, Variable="DIALEDPEERNUMBER", Value="agent"),
            _chan("VarSet", b, uid_b, lid, Variable="BRIDGEPEER", Value=a),
            _chan("BridgeEnter", a, lid, lid, BridgeUniqueid=f"br-{n}", BridgeNumChannels="1"),
            _chan("BridgeEnter", b, uid_b, lid, BridgeUniqueid=f"br-{n}", BridgeNumChannels="2"),
            _chan("MixMonitorStart", a, lid, lid),
            _chan("BridgeLeave", b, uid_b, lid, BridgeUniqueid=f"br-{n}", BridgeNumChannels="1"),
            _chan("BridgeLeave", a, lid, lid, BridgeUniqueid=f"br-{n}", BridgeNumChannels="0"),
            _chan("Hangup", b, uid_b, lid, Cause="16", **{"Cause-txt": "Normal Clearing"}),
            _chan("Hangup", a, lid, lid, Cause="16", **{"Cause-txt": "Normal Clearing"}),
            _frame(
                [
                    ("Event", "Cdr"),
                    ("Privilege", "cdr,all"),
                    ("AccountCode", ""),
                    ("Source", "4915112345678"),
                    ("Destination", "4930123456"),
                    ("DestinationContext", "from-trunk"),
                    ("CallerID", '"Caller" <4915112345678>'),
                    ("Channel", a),
                    ("DestinationChannel", b),
                    ("LastApplication", "Dial"),
                    ("LastData", "PJSIP/agent"),
                    ("StartTime", "2024-11-21 15:00:00"),
                    ("AnswerTime", "2024-11-21 15:00:02"),
                    ("EndTime", "2024-11-21 15:01:02"),
                    ("Duration", "62"),
                    ("BillableSeconds", "60"),
                    ("Disposition", "ANSWERED"),
                    ("AMAFlags", "DOCUMENTATION"),
                    ("UniqueID", lid),
                    ("UserField", ""),
                ]
            ),
        ]
        parts.append(_chan("Newstate", b, uid_b, lid))  # agent answers (arrives late: still parsed)
        parts.append(_chan("VarSet", a, lid, lid, Variable="PBXREC_RESULT", Value="record"))
    return "".join(parts).encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class _Factory:
    """The minimum panoramisk's protocol needs from its Manager; dispatch counts."""

    forgetable_actions = ("ping", "login")

    def __init__(self) -> None:
        self.awaiting_actions: list[object] = []
        self.count = 0

    def dispatch(self, message: object) -> None:
        self.count += 1

    def connection_lost(self, exc: object) -> None:  # pragma: no cover
        return None


def bench_bare(data: bytes, size: int) -> tuple[int, float, list[float]]:
    proto = AMIProtocol()
    proto.connection_made(mock.MagicMock())
    factory = _Factory()
    proto.factory = factory
    proto.encoding = "utf8"
    proto.log = logging.getLogger("bench.panoramisk")
    per_event: list[float] = []
    start = time.perf_counter()
    for piece in chunks(data, size):
        before, t = factory.count, time.perf_counter()
        proto.data_received(piece)
        n = factory.count - before
        if n:
            per_event.extend([(time.perf_counter() - t) / n] * n)
    return factory.count, time.perf_counter() - start, per_event


def bench_ours(data: bytes, size: int, t0: float) -> tuple[int, float, list[float], int]:
    rules = rules_from_dicts(
        [
            {"name": "hr-never", "match": {"dialed": ["_+4930123457XX"]}, "action": {"record": "never"}},
            {
                "name": "inbound",
                "match": {"direction": ["inbound"]},
                "action": {"record": "yes", "consent": "notify"},
            },
            {"name": "default-record", "match": {}, "action": {"record": "yes"}},
        ]
    )
    book = CallBook("pbx1", "/var/spool/asterisk/monitor", rules)
    normalizer = Normalizer("pbx1")
    parser = FrameParser()
    per_event: list[float] = []
    events = commands = 0
    now, next_tick = t0, t0 + 1.0
    perf = time.perf_counter
    start = perf()
    for piece in chunks(data, size):
        t = perf()
        frames = parser.feed(piece)
        share = (perf() - t) / len(frames) if frames else 0.0
        for frame in frames:
            t = perf()
            for event in normalizer.normalize(frame, now):
                commands += len(book.handle(event, now))
            per_event.append(perf() - t + share)
            events += 1
            now += 0.001
            if now >= next_tick:
                commands += len(book.tick(now))
                next_tick = now + 1.0
    return events, perf() - start, per_event, commands


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=4096)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = 1_732_200_000.0
    data = generate(args.calls, t0)
    print(
        f"transcript: {args.calls} calls, {len(data) / 1e6:.1f} MB, {args.calls * FRAMES_PER_CALL} frames, "
        f"chunk {args.chunk} B"
    )
    gc.collect()
    bare_n, bare_s, bare_lat = bench_bare(data, args.chunk)
    gc.collect()
    ours_n, ours_s, ours_lat, produced = bench_ours(data, args.chunk, t0)
    bare_rate, ours_rate = bare_n / bare_s, ours_n / ours_s
    print(
        f"bare panoramisk parse : {bare_n:8d} events {bare_s:7.3f} s {bare_rate:10.0f} ev/s  "
        f"p50 {pct(bare_lat, 0.5) * 1e6:6.1f} us  p99 {pct(bare_lat, 0.99) * 1e6:6.1f} us"
    )
    print(
        f"ours frames+normalize+rules+CallBook: {ours_n:8d} events {ours_s:7.3f} s {ours_rate:10.0f} ev/s  "
        f"p50 {pct(ours_lat, 0.5) * 1e6:6.1f} us  p99 {pct(ours_lat, 0.99) * 1e6:6.1f} us  "
        f"({produced} commands)"
    )
    ratio = ours_rate / bare_rate
    print(
        f"ratio ours/bare: {ratio:.2f} (target >= 0.5)  throughput target >= 20000 ev/s: "
        f"{'met' if ours_rate >= 20_000 else 'NOT met'}; ratio target {'met' if ratio >= 0.5 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
