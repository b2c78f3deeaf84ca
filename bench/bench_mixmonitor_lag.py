"""Lag from answer / consent to ``MixMonitorStart`` on a real private Asterisk with the recorder.

    .venv/bin/python bench/bench_mixmonitor_lag.py [--calls 50] [--seconds 6]

Four runs of ``--calls`` concurrent sipp calls per round, timed on the bench's own AMI connection:

* baseline  MixMonitor straight from the dialplan (DID 7001): answer -> MixMonitorStart
* dialplan  recorder rule with ``consent: none``, the snippet's quick decision before answer
            (``PBXREC_DECIDE_FIRST=yes``, the default): answer -> MixMonitorStart, started by the
            snippet itself with the file the recorder chose
* none      the same rule without the quick decision (``PBXREC_DECIDE_FIRST=no``): answer -> the
            consent AGI -> MixMonitor started by the recorder (in band on the AGI socket)
* notify    recorder rule with ``consent: notify``: end of the notice (AGIExecEnd) -> MixMonitorStart

The quick decision moves the recorder's round trip before the answer: the ``ring`` figure under
the dialplan and none runs is the first channel event (Newchannel) -> answer, so what the caller
waits longer for the answer is in view too.

Prints p50 / p99 / max per run and the ratio to the baseline (the target is p99 < 50 ms),
and under each run the load it ran under: load average, the host's busy share, and the CPU of
the daemon, Asterisk and sipp (bench/load_report.py).  On a machine shared with other work the
baseline moves too: compare the ratio, and read the load line.  Nothing here asserts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_report import LoadSampler  # noqa: E402

from consent.generate_prompts import generate  # noqa: E402
from pbx_recorder.testbed import PrivateAsterisk, SippCall  # noqa: E402
from pbx_recorder.testbed.ami_probe import AmiProbe  # noqa: E402
from pbx_recorder.testbed.recorder import TEST_RULES, RecorderProcess, write_recorder_config  # noqa: E402

RULES_NONE = [{"name": "bench-none", "match": {"dialed": ["8003"]},
               "action": {"record": "yes", "consent": "none"}}] + TEST_RULES[1:]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _lags(probe: AmiProbe, since: int, prefix: str, start_event: str) -> list[float]:
    """Per channel of this run: seconds from the start mark to its MixMonitorStart."""
    start: dict[str, float] = {}
    lags: list[float] = []
    for at, event in probe.events[since:]:
        if not event.get("CallerIDNum", "").startswith(prefix):
            continue
        uid, name = event.get("Uniqueid", ""), event.get("Event")
        if start_event == "answer" and name == "Newstate" and event.get("ChannelState") == "6":
            start.setdefault(uid, at)
        elif start_event == "notice" and name == "AGIExecEnd" and "STREAM FILE" in event.get("Command", ""):
            start[uid] = at  # the last prompt before recording starts
        elif name == "MixMonitorStart" and uid in start:
            lags.append(at - start.pop(uid))
    return lags


def _ring(probe: AmiProbe, since: int, prefix: str) -> str:
    """Newchannel -> answer per call: the quick decision runs in this interval."""
    created: dict[str, float] = {}
    ms: list[float] = []
    for at, event in probe.events[since:]:
        if not event.get("CallerIDNum", "").startswith(prefix):
            continue
        uid, name = event.get("Uniqueid", ""), event.get("Event")
        if name == "Newchannel":
            created.setdefault(uid, at)
        elif name == "Newstate" and event.get("ChannelState") == "6" and uid in created:
            ms.append(1000 * (at - created.pop(uid)))
    if not ms:
        return "ring: -"
    return f"ring (Newchannel->answer) p50 {statistics.median(ms):.1f} p99 {_percentile(ms, 99):.1f} ms"


def _phases(probe: AmiProbe, since: int, prefix: str) -> str:
    """Where the time goes, per call, from the PBX's own events: answer -> the dialplan reaches
    AGI() (snippet steps) -> the first AGI command arrives (connect, environment, the recorder's
    decision) -> MixMonitorStart (the command's round trip and MixMonitor's own start)."""
    marks: dict[str, dict[str, float]] = {}
    for at, event in probe.events[since:]:
        if not event.get("CallerIDNum", "").startswith(prefix):
            continue
        mark = marks.setdefault(event.get("Uniqueid", ""), {})
        name = event.get("Event")
        if name == "Newstate" and event.get("ChannelState") == "6":
            mark.setdefault("answer", at)
        elif name == "Newexten" and event.get("Application") == "AGI":
            mark.setdefault("agi", at)
        elif name == "AGIExecStart":
            mark.setdefault("command", at)
        elif name == "MixMonitorStart":
            mark.setdefault("started", at)
    steps = (("answer", "agi"), ("agi", "command"), ("command", "started"))
    out = []
    for a, b in steps:
        ms = [1000 * (m[b] - m[a]) for m in marks.values() if a in m and b in m and m[b] >= m[a]]
        if ms:
            out.append(f"{a}->{b} p50 {statistics.median(ms):.1f} p99 {_percentile(ms, 99):.1f} ms")
    return "; ".join(out)


def _run(pbx: PrivateAsterisk, probe: AmiProbe, work: Path, did: str, prefix: str, calls: int,
         seconds: float, start_event: str, pids: dict[str, int]) -> tuple[list[float], str]:
    since = len(probe.events)
    sampler = LoadSampler(pids)
    sipp = SippCall(work, pbx.sip_port, did, hangup_after_s=seconds, from_user=f"{prefix}[call_number]",
                    test_tag=f"bench{prefix}", calls=calls, concurrent=calls, rate_per_s=calls,
                    timeout_s=seconds + 60).start()
    sampler.add("sipp", sipp._proc.pid)  # type: ignore[union-attr]
    while sipp.running:
        sampler.sample()
        time.sleep(0.25)
    result = sipp.wait()
    if not result.ok:
        print(f"  sipp exit {result.returncode}: {result.errors[-300:]}")
    load = sampler.report()
    if did != "7001":
        pad = "\n          "
        load = f"phases: {_phases(probe, since, prefix)}{pad}{_ring(probe, since, prefix)}{pad}{load}"
    return _lags(probe, since, prefix, start_event), load


def _report(name: str, run: tuple[list[float], str], calls: int, baseline: float | None) -> float:
    lags, load = run
    if not lags:
        print(f"{name:9} no MixMonitorStart measured (0/{calls})\n          {load}")
        return 0.0
    ms = [x * 1000 for x in lags]
    p50, p99 = statistics.median(ms), _percentile(ms, 99)
    ratio = f"  x{p99 / baseline:.1f} baseline p99" if baseline else ""
    print(f"{name:9} n={len(ms):3}/{calls}  p50={p50:7.1f} ms  p99={p99:7.1f} ms  max={max(ms):7.1f} ms"
          f"  {'OK' if p99 < 50 else 'ABOVE'} target 50 ms{ratio}\n          {load}")
    return p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="baseline/dialplan/none/notify rounds in one run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, recordings)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pbxrec-bench-"))
    generate(work / "prompts")
    pbx = PrivateAsterisk(work / "asterisk")
    recorder = None
    probe = None
    try:
        pbx.start()
        probe = pbx.ami_probe()
        config = write_recorder_config(work / "recorder", pbx, work / "prompts", rules=RULES_NONE)
        recorder = RecorderProcess(config, pbx, work / "recorder.log", verbosity="-v").start()
        pids = {"asterisk": pbx._proc.pid, "daemon": recorder.pid}  # type: ignore[union-attr]
        print(f"{args.calls} concurrent calls per run, {args.rounds} round(s); the daemon runs in every "
              "run (in the baseline it only watches AMI)")
        for _ in range(args.rounds):
            base = _run(pbx, probe, work, "7001", "3001", args.calls, args.seconds, "answer", pids)
            baseline = _report("baseline", base, args.calls, None)
            pbx.rx("dialplan set global PBXREC_DECIDE_FIRST yes")
            _report("dialplan", _run(pbx, probe, work, "8003", "3004", args.calls, args.seconds, "answer",
                                     pids), args.calls, baseline)
            pbx.rx("dialplan set global PBXREC_DECIDE_FIRST no")
            _report("none", _run(pbx, probe, work, "8003", "3002", args.calls, args.seconds, "answer", pids),
                    args.calls, baseline)
            pbx.rx("dialplan set global PBXREC_DECIDE_FIRST yes")
            _report("notify", _run(pbx, probe, work, "8001", "3003", args.calls, args.seconds + 4, "notice",
                                   pids), args.calls, baseline)
    finally:
        if recorder is not None:
            recorder.terminate()
        if probe is not None:
            probe.close()
        pbx.stop()
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
