"""Capacity: many concurrent consent calls, a ramp then a burst, every outcome checked.

    .venv/bin/python bench/bench_capacity.py [--calls 300] [--burst-rate 80] [--ramp-share 0.25]
        [--ramp-rate 10] [--seconds 30] [--max-sessions N] [--asterisk 16|22]

A private Asterisk (loopback only) and the recorder daemon with the sandbox rules.  The
calls are split evenly over four kinds of caller, each kind one sipp process so they arrive
interleaved:

    yes       explicit-consent DID 8002, presses 1 (at 5, 11 and 17 s: a caller repeats)
    no        DID 8002, presses 2 at the same times
    timeout   DID 8002, never presses (stays 15 s longer: the whole dialogue with its retry is
              about 22 s of prompts and waits, and a caller who leaves before it ends has hung up)
    norecord  DID 8003 (rule: never record)

``--ramp-share`` of them arrive at ``--ramp-rate`` calls/s; once those are up, the rest
arrive at ``--burst-rate`` calls/s on top (every caller stays ``--seconds``, so at the peak
all calls are up at once).  Afterwards every caller's catalog row is compared with what the
caller did: the right outcome; refused cleanly, i.e. not served but catalogued truthfully
(``capacity``: refused at ``max_sessions`` or by admission control on a starved PBX;
``unavailable``: the snippet's fail direction reported by the dialplan; ``unasked``: the caller
hung up before the question started, flag/evidence ``hangup_before_question``); wrong (e.g. a
plain ``hangup`` for a caller who stayed and was asked); or missing.
Prints the table, the daemon's CPU, the load it ran under, and how long it took.  Bounded:
sipp's own timeouts plus a hard deadline for the catalog to settle.  Nothing asserts.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_report import LoadSampler  # noqa: E402

from consent.generate_prompts import generate  # noqa: E402
from pbx_recorder.testbed import PrivateAsterisk, SippCall  # noqa: E402
from pbx_recorder.testbed.ami_probe import AmiProbe  # noqa: E402
from pbx_recorder.testbed.installs import install_for  # noqa: E402
from pbx_recorder.testbed.recorder import CatalogReader, RecorderProcess, write_recorder_config  # noqa: E402

PRESS_AT_MS = (5000, 11000, 17000)
KINDS = {  # kind -> (DID, digit pressed or "", expected (consent_decision, record_decision))
    "yes": ("8002", "1", ("granted", "record")),
    "no": ("8002", "2", ("refused", "refused")),
    "timeout": ("8002", "", ("timeout", "refused")),
    "norecord": ("8003", "", ("", "no_record")),
}
SHIPPED = ("stored", "verified", "migrated")
CAPACITY = "capacity"
UNAVAILABLE = "unavailable"
BEFORE_QUESTION = "hangup_before_question"
CLEAN = ("capacity", "unavailable", "unasked")  # not served, but refused cleanly and catalogued so


def _caller_prefix(phase: int, kind: str) -> str:
    return f"7{phase}{list(KINDS).index(kind) + 1}"


def _start_phase(pbx: PrivateAsterisk, work: Path, phase: int, calls: int, rate: float,
                 seconds: float) -> list[SippCall]:
    procs = []
    per_kind = max(1, calls // len(KINDS))
    for kind, (did, digit, _) in KINDS.items():
        dtmf = [(at, digit) for at in PRESS_AT_MS if at < seconds * 1000] if digit else []
        stay = seconds + (15 if kind == "timeout" else 0)
        procs.append(SippCall(work, pbx.sip_port, did, hangup_after_s=stay, dtmf=dtmf,
                              from_user=f"{_caller_prefix(phase, kind)}[call_number]", calls=per_kind,
                              concurrent=per_kind, rate_per_s=max(0.5, rate / len(KINDS)),
                              timeout_s=stay + per_kind / max(0.5, rate / len(KINDS)) + 60).start())
    return procs


def _observed(row: dict[str, Any] | None, recordings: list[dict[str, Any]]) -> str:
    if row is None:
        return "missing"
    shipped = [r for r in recordings if r.get("kind") == "call" and r.get("state") in SHIPPED]
    unasked = bool(CatalogReader.consent(row).get(BEFORE_QUESTION))
    return f"{row.get('consent_decision') or '-'}/{row.get('record_decision') or '-'}" + \
        ("+rec" if shipped else "") + ("+" + BEFORE_QUESTION if unasked else "")


WAITS: list[float] = []  # answer -> the question starts, per explicit-consent call (s)


def _verdict(kind: str, observed: str, stayed_s: float, held_s: float | None) -> str:
    consent, record = KINDS[kind][2]
    if observed == "missing":
        return "missing"
    if kind == "timeout" and observed.startswith("hangup/") and held_s is not None \
            and held_s >= stayed_s - 3:
        return "left"  # the caller's own timer ran out before the (stretched) dialogue ended
    if observed.startswith(CAPACITY + "/") and "+rec" not in observed:
        return "capacity"  # refused cleanly (max_sessions, or admission control on a starved PBX)
    if observed.startswith(UNAVAILABLE + "/") and "+rec" not in observed:
        return "unavailable"  # the snippet's fail direction, reported by the dialplan: clean too
    if observed.startswith("hangup/") and observed.endswith("+" + BEFORE_QUESTION):
        return "unasked"  # hung up before the question started, and the catalog says so
    want = f"{consent or '-'}/{record or '-'}" + ("+rec" if kind == "yes" else "")
    return "right" if observed == want else "WRONG"


def _outcomes(probe: AmiProbe, catalog: CatalogReader, phases: int,
              stays: dict[str, float]) -> dict[str, list[tuple[str, str]]]:
    linked: dict[str, str] = {}
    for _, event in probe.find(lambda e: e.get("Event") == "Newchannel"
                               and e.get("Channel", "").startswith("PJSIP/caller")):
        linked.setdefault(event.get("CallerIDNum", ""), event.get("Linkedid", ""))
    out: dict[str, list[tuple[str, str]]] = {k: [] for k in KINDS}
    for caller, linkedid in linked.items():
        for phase in range(1, phases + 1):
            for kind in KINDS:
                if caller.startswith(_caller_prefix(phase, kind)):
                    row = catalog.call_by_linkedid(linkedid)
                    recs = catalog.recordings(row["call_id"]) if row else []
                    observed = _observed(row, recs)
                    evidence = CatalogReader.consent(row) if row else {}
                    answered = (row or {}).get("answered_at") or (row or {}).get("started_at")
                    asked, decided = evidence.get("asked_at"), evidence.get("decided_at")
                    if asked and answered:
                        WAITS.append(float(asked) - float(answered))
                    # the caller's own timer (``stays``) runs from their answer, which the catalog does
                    # not know exactly on a starved host (its answer time comes from AMI and lagged the
                    # question by seconds): the call's creation is the earliest it can have been, so a
                    # hang-up at least ``stays`` (less 3 s) after it may be the caller's own timer
                    created = (row or {}).get("started_at")
                    start = created or answered
                    held = float(decided) - float(start) if start and decided else None
                    out[kind].append((observed, _verdict(kind, observed, stays[kind], held)))
                    if out[kind][-1][1] in ("WRONG", "missing"):  # what a wrong verdict rests on
                        print(f"  wrong: {kind} call={(row or {}).get('call_id', '-')} observed={observed} "
                              f"held={held if held is None else round(held, 2)} (from the call's creation) "
                              f"stays={stays[kind]} created={created} answered={answered} asked={asked} "
                              f"decided={decided}")
    return out


def _settled(probe: AmiProbe, catalog: CatalogReader, total: int, phases: int,
             stays: dict[str, float]) -> bool:
    results = _outcomes(probe, catalog, phases, stays)
    seen = sum(len(v) for v in results.values())
    yes_pending = sum(1 for obs, verdict in results["yes"]
                      if verdict == "WRONG" and obs.startswith("granted"))
    rows = catalog.query("SELECT count(*) AS n FROM calls WHERE status IN ('', 'live')")
    return seen >= total and yes_pending == 0 and (not rows or rows[0]["n"] == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--ramp-share", type=float, default=0.25)
    parser.add_argument("--ramp-rate", type=float, default=10.0)
    parser.add_argument("--burst-rate", type=float, default=80.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-sessions", type=int, default=0, help="pbx.agi.max_sessions (default: config)")
    parser.add_argument("--settle", type=float, default=150.0, help="bound for the catalog to settle (s)")
    parser.add_argument("--decide-first", choices=("yes", "no"), default="yes",
                        help="PBXREC_DECIDE_FIRST: the snippet's quick decision before answer")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, recordings)")
    parser.add_argument("--asterisk", choices=("16", "22"), default="16",
                        help="16: the host's Asterisk; 22: the sid chroot (.ci/install-asterisk22.sh)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pbxrec-cap-"))
    generate(work / "prompts")
    pbx = PrivateAsterisk(work / "asterisk", extra_globals={"PBXREC_DECIDE_FIRST": args.decide_first},
                          install=install_for(args.asterisk), shared=(work / "prompts",))  # seen in a chroot
    recorder = probe = None
    ramp_calls = int(args.calls * args.ramp_share)
    try:
        pbx.start()
        probe = pbx.ami_probe()
        config = write_recorder_config(work / "recorder", pbx, work / "prompts", consent_timeout_s=3.0,
                                       max_attempts=2)
        data = yaml.safe_load(config.read_text())
        data["logging"] = {"level": "INFO"}
        if args.max_sessions:
            data["pbx"]["agi"]["max_sessions"] = args.max_sessions
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        recorder = RecorderProcess(config, pbx, work / "recorder.log", verbosity="-v").start()
        sampler = LoadSampler({"daemon": recorder.pid, "asterisk": pbx._proc.pid})  # type: ignore[union-attr]
        began = time.monotonic()
        procs: list[SippCall] = []
        phases = [(1, ramp_calls, args.ramp_rate), (2, args.calls - ramp_calls, args.burst_rate)]
        for phase, count, rate in phases:
            if count < len(KINDS):
                continue
            started = _start_phase(pbx, work, phase, count, rate, args.seconds)
            for proc in started:
                sampler.add("sipp", proc._proc.pid)  # type: ignore[union-attr]
            procs += started
            arrive_by = time.monotonic() + count / max(rate, 0.1) + 1
            while time.monotonic() < arrive_by:
                sampler.sample()
                time.sleep(0.5)
        deadline = time.monotonic() + args.seconds + 15 + args.calls / max(args.burst_rate, 0.1) + 90
        while any(p.running for p in procs) and time.monotonic() < deadline:
            sampler.sample()
            time.sleep(0.5)
        sipp_failed = sum(0 if p.wait(timeout=5).ok else 1 for p in procs)
        catalog = CatalogReader(work / "recorder" / "catalog.db")
        total = sum(len(KINDS) * max(1, c // len(KINDS)) for _, c, _ in phases if c >= len(KINDS))
        settle_by = time.monotonic() + args.settle
        stays = {kind: args.seconds + (15 if kind == "timeout" else 0) for kind in KINDS}
        while not _settled(probe, catalog, total, 2, stays) and time.monotonic() < settle_by:
            sampler.sample()
            time.sleep(1.0)
        elapsed = time.monotonic() - began
        load = sampler.report()
        WAITS.clear()
        results = _outcomes(probe, catalog, 2, stays)
        print(f"capacity: Asterisk {pbx.version}, {total} calls ({ramp_calls} ramp at {args.ramp_rate}/s, "
              f"then burst at "
              f"{args.burst_rate}/s), {args.seconds:.0f} s each, max_sessions "
              f"{args.max_sessions or 'default'}, quick decision {args.decide_first}; {elapsed:.0f} s; "
              f"sipp processes failed: {sipp_failed}")
        print(f"  {load}")
        overall: Counter[str] = Counter()
        for kind, items in results.items():
            verdicts = Counter(v for _, v in items)
            overall.update(verdicts)
            wrong = Counter(o for o, v in items if v in ("WRONG", "missing"))
            columns = ("right", "capacity", "unavailable", "unasked", "left", "WRONG", "missing")
            print(f"  {kind:8} n={len(items):3}  " + "  ".join(f"{k}={verdicts[k]}" for k in columns)
                  + (f"   wrong as: {dict(wrong.most_common(4))}" if wrong else ""))
        log_text = recorder.log_path.read_text(errors="replace")
        lag = [line.split("event loop lag", 1)[1] for line in log_text.splitlines()
               if "event loop lag" in line]
        clean = sum(overall[k] for k in CLEAN)
        print(f"  all: {dict(overall)}; right {overall['right']}, refused cleanly {clean}, "
              f"left {overall['left']}, WRONG {overall['WRONG'] + overall['missing']}")
        print(f"  AGI sessions refused for capacity (log): {log_text.count('too many sessions')}; "
              f"dialogues refused by admission control (log): {log_text.count('consent dialogue refused')}; "
              f"daemon loop lag{(' ' + lag[-1]) if lag else ': -'}")
        if WAITS:
            waits = sorted(WAITS)
            print(f"  answer -> consent question starts: p50 {1000 * waits[len(waits) // 2]:.0f} ms, "
                  f"p99 {1000 * waits[int(len(waits) * 0.99)]:.0f} ms, max {1000 * waits[-1]:.0f} ms")
        print("  (left: a timeout caller whose own timer ran out before the dialogue ended -- prompts play in"
              " real time, and on an overloaded host they stretch)")
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
