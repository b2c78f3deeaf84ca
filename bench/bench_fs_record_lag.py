"""Lag from answer / end of notice to ``RECORD_START`` on a real private FreeSWITCH with the recorder.

    .venv/bin/python bench/bench_fs_record_lag.py [--calls 50] [--seconds 6]

Three runs of ``--calls`` concurrent sipp calls (continuous RTP), timed by the arrival of the
events on the bench's own ESL connection (FreeSWITCH's ``Event-Date-Timestamp`` is quantized to
its 20 ms timer tick here, too coarse for the target):

* baseline  ``record_session`` straight from the dialplan (DID 7001): CHANNEL_ANSWER -> RECORD_START
            (FreeSWITCH's floor: RECORD_START comes with the first media frame the bug reads)
* none      recorder rule ``consent: none`` (DID 8008): CHANNEL_ANSWER -> RECORD_START; the default
            path: the snippet hands the call over while it rings, the recorder decides and sets
            ``execute_on_answer_pbxrec_1=record_session <file>``, the snippet's ``answer`` starts it
            (esl/early_start.py)
* inband    the same rule with ``PBXREC_EARLY_START=no`` (DID 8009): the recorder answers, then
            ``uuid_record`` on the call's socket (the path before, for comparison in the same run)
* notify    recorder rule ``consent: notify`` (DID 8001): the notice's PLAYBACK_STOP -> RECORD_START
* none      once more, last (the spread between two runs of the same path at that load)

Before the measured runs, 10 calls to a never-record DID warm the recorder up (not measured).

For none / inband it also prints the price of deciding first: CHANNEL_CREATE -> CHANNEL_ANSWER
(how long the caller waits for the answer).

Prints the load it ran under (CPUs, load average before/after, the host's busy share from
/proc/stat during each run, concurrent calls), then
p50 / p99 / max per run and the ratio to the baseline; the target is p99 < 50 ms.  With
``--keep`` the recorder's log stays: ``event loop lag`` lines (pbx_recorder/daemon.py) and
``slow hand-off`` lines (the consent session's steps) say where the time went.
Nothing here asserts: it is a measurement.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consent.generate_prompts import generate  # noqa: E402
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH  # noqa: E402
from pbx_recorder.testbed.freeswitch_probe import FsProbe  # noqa: E402
from pbx_recorder.testbed.freeswitch_recorder import (  # noqa: E402
    FsRecorderProcess,
    write_fs_recorder_config,
)
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall  # noqa: E402


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _lags(probe: FsProbe, since: int, prefix: str, start_event: str, stamp: bool = False) -> list[float]:
    """Per caller channel of this run: seconds from the start mark to its RECORD_START, by arrival
    on the bench's connection, or (``stamp``) by the events' ``Event-Date-Timestamp``."""
    ours: set[str] = set()
    start: dict[str, float] = {}
    lags: list[float] = []
    for arrived, event in probe.events[since:]:
        at = int(event.get("Event-Date-Timestamp", "0") or 0) / 1e6 if stamp else arrived
        uid, name = event.get("Unique-ID", ""), event.get("Event-Name")
        if name == "CHANNEL_CREATE" and event.get("Caller-Caller-ID-Number", "").startswith(prefix):
            ours.add(uid)
        if uid not in ours:
            continue
        if start_event == "answer" and name == "CHANNEL_ANSWER":
            start.setdefault(uid, at)
        elif start_event == "notice" and name == "PLAYBACK_STOP":
            start[uid] = at  # the last prompt before recording starts
        elif name == "RECORD_START" and uid in start:
            lags.append(at - start.pop(uid))
    return lags


def _ring_times(probe: FsProbe, since: int, prefix: str) -> list[float]:
    """Per caller channel of this run: seconds from CHANNEL_CREATE to CHANNEL_ANSWER."""
    created: dict[str, float] = {}
    out: list[float] = []
    for at, event in probe.events[since:]:
        uid, name = event.get("Unique-ID", ""), event.get("Event-Name")
        if name == "CHANNEL_CREATE" and event.get("Caller-Caller-ID-Number", "").startswith(prefix):
            created[uid] = at
        elif name == "CHANNEL_ANSWER" and uid in created:
            out.append(at - created.pop(uid))
    return out


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _run(pbx: PrivateFreeSWITCH, probe: FsProbe, work: Path, did: str, prefix: str, calls: int,
         seconds: float, start_event: str) -> list[float]:
    since = probe.mark()
    busy0, total0 = _cpu_times()
    result = FsSippCall(work, pbx.sip_port, did, hangup_after_s=seconds, from_user=f"{prefix}[call_number]",
                        test_tag=f"bench{prefix}", calls=calls, concurrent=calls, rate_per_s=calls,
                        timeout_s=seconds + 60).start().wait()
    busy1, total1 = _cpu_times()
    if not result.ok:
        print(f"  sipp exit {result.returncode}: {result.errors[-300:]}")
    share = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
    ring = [x * 1000 for x in _ring_times(probe, since, prefix)]
    ring_text = (f"create->answer p50={statistics.median(ring):.1f} ms p99={_percentile(ring, 99):.1f} ms"
                 if ring else "create->answer: none measured")
    print(f"  [{did}] host {share:.0f} % busy during the run, load1={os.getloadavg()[0]:.1f}; {ring_text}")
    fs_clock = [x * 1000 for x in _lags(probe, since, prefix, start_event, stamp=True)]
    if fs_clock:
        print(f"  [{did}] the same lag by FreeSWITCH's own Event-Date-Timestamp (20 ms ticks, no event"
              f" delivery): p50={statistics.median(fs_clock):.0f} ms p99={_percentile(fs_clock, 99):.0f} ms")
    return _lags(probe, since, prefix, start_event)


def _report(name: str, lags: list[float], calls: int, baseline: float | None) -> float:
    if not lags:
        print(f"{name:9} no RECORD_START measured (0/{calls})")
        return 0.0
    ms = [x * 1000 for x in lags]
    p50, p99 = statistics.median(ms), _percentile(ms, 99)
    ratio = f"  x{p99 / baseline:.1f} baseline p99" if baseline else ""
    print(f"{name:9} n={len(ms):3}/{calls}  p50={p50:7.1f} ms  p99={p99:7.1f} ms  max={max(ms):7.1f} ms"
          f"  {'OK' if p99 < 50 else 'ABOVE'} target 50 ms{ratio}  load1={os.getloadavg()[0]:.1f}")
    return p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, recordings)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pbxrec-fsbench-"))
    generate(work / "prompts")
    pbx = PrivateFreeSWITCH(work / "freeswitch")
    recorder = None
    probe = None
    load = os.getloadavg()
    print(f"load: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before; "
          f"{args.calls} concurrent calls of {args.seconds:.0f} s per run (FreeSWITCH, the recorder and "
          f"sipp on this machine)")
    try:
        pbx.start()
        probe = pbx.probe()
        base = _run(pbx, probe, work, "7001", "3001", args.calls, args.seconds, "answer")
        baseline = _report("baseline", base, args.calls, None)
        config = write_fs_recorder_config(work / "recorder", pbx, work / "prompts")
        recorder = FsRecorderProcess(config, pbx, work / "recorder.log", probe_ports=(probe.local_port,))
        recorder.start()
        _run(pbx, probe, work, "8003", "3000", 10, 2.0, "answer")  # warm-up (never-record rule), not measured
        _report("none", _run(pbx, probe, work, "8008", "3002", args.calls, args.seconds, "answer"),
                args.calls, baseline)
        _report("inband", _run(pbx, probe, work, "8009", "3004", args.calls, args.seconds, "answer"),
                args.calls, baseline)
        _report("notify", _run(pbx, probe, work, "8001", "3003", args.calls, args.seconds + 4, "notice"),
                args.calls, baseline)
        _report("none", _run(pbx, probe, work, "8008", "3005", args.calls, args.seconds, "answer"),
                args.calls, baseline)  # again, last: the run-to-run spread at this load
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if recorder is not None:
            recorder.terminate()
        if probe is not None:
            probe.close()
        pbx.close()
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
