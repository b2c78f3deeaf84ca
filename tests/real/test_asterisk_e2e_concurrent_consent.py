"""80 concurrent mixed consent calls on the real Asterisk: every outcome is what the caller did.

Issue 10: under a burst, dialogues ended as ``hangup`` although the callers stayed and pressed a
digit, and most consenting callers were not recorded (a slow or lost AGI reply was taken for a
hang-up, and a session that failed was later blamed on the caller).  Here 20 callers each say
yes, say no, never answer, or call a never-record DID, all at once; every consenting caller must
be recorded (a shipped, non-silent call recording), every other caller must leave no recording,
and no call may be mislabelled.  No timing is asserted: only outcomes (the speed lives in bench/).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from recorder_checks import SHIPPED, Recorder, audio_files

from pbx_recorder.testbed import PrivateAsterisk, SippCall, audio_stats
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(420)]

PER_KIND = 20
CALL_S = 20.0
TIMEOUT_CALLER_S = 50.0  # the whole dialogue (question, 3 s, retry, question, 3 s) is ~22 s unloaded
KINDS = {  # kind -> (DID, digit, expected consent_decision, expected record_decision)
    "yes": ("8002", "1", "granted", "record"),
    "no": ("8002", "2", "refused", "refused"),
    "timeout": ("8002", "", "timeout", "refused"),
    "norecord": ("8003", "", "", "no_record"),
}


def _settled(recorder: Recorder, linked: dict[str, str]) -> bool:
    rows = [recorder.catalog.call_by_linkedid(lid) for lid in linked.values()]
    if not all(r and r.get("status") not in ("", "live") for r in rows):
        return False
    granted = [r for r in rows if r and r["consent_decision"] == "granted"]
    return all(any(rec["kind"] == "call" and rec["state"] in SHIPPED
                   for rec in recorder.catalog.recordings(r["call_id"])) for r in granted)


def test_concurrent_mixed_consent_calls_all_come_out_right(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                           recorder: Recorder, tmp_path: Path) -> None:
    since = len(ami.events)
    before = audio_files(asterisk.monitor_dir)
    stamp = f"{int(time.time()) % 1000:03d}"
    procs = {}
    for n, (kind, (did, digit, _, _)) in enumerate(KINDS.items(), start=1):
        dtmf = [(3000, digit), (9000, digit)] if digit else []  # a caller repeats the digit once
        stay = TIMEOUT_CALLER_S if kind == "timeout" else CALL_S
        procs[kind] = SippCall(tmp_path, asterisk.sip_port, did, hangup_after_s=stay, dtmf=dtmf,
                               from_user=f"66{n}{stamp}[call_number]", calls=PER_KIND, concurrent=PER_KIND,
                               rate_per_s=5, timeout_s=stay + 60).start()
    for kind, proc in procs.items():
        result = proc.wait()
        assert result.ok, (kind, result.errors[-500:])

    linked: dict[str, str] = {}  # caller number -> linkedid
    for _, event in ami.events[since:]:
        if event.get("Event") == "Newchannel" and event.get("CallerIDNum", "").startswith("66"):
            linked.setdefault(event["CallerIDNum"], event["Linkedid"])
    assert len(linked) == PER_KIND * len(KINDS)
    recorder.catalog.wait_for(lambda: _settled(recorder, linked), 150, interval=1.0)

    wrong = []
    for n, (kind, (_, _, consent, record)) in enumerate(KINDS.items(), start=1):
        for caller, linkedid in linked.items():
            if not caller.startswith(f"66{n}{stamp}"):
                continue
            row = recorder.catalog.call_by_linkedid(linkedid)
            assert row is not None, (kind, caller, recorder.process.log_tail())
            recs = recorder.catalog.recordings(row["call_id"])
            kept = [r for r in recs if r["state"] in SHIPPED]
            if (row["consent_decision"], row["record_decision"]) != (consent, record):
                wrong.append((kind, caller, row["consent_decision"], row["record_decision"],
                              json.loads(row["flags"] or "[]")))
            elif kind == "yes":
                main = [r for r in kept if r["kind"] == "call"]
                if len(main) != 1:
                    wrong.append((kind, caller, "call recording not shipped", [r["state"] for r in recs]))
                    continue
                path = recorder.hot_dir / main[0]["storage_key"]
                stats = audio_stats(path)
                if not stats.rms > 0.01 or stats.duration_s < 5:
                    wrong.append((kind, caller, "silent or short", stats))
            elif kept:
                wrong.append((kind, caller, "kept a recording without consent", [r["kind"] for r in kept]))
    assert not wrong, wrong
    time.sleep(2)  # discards run after the hang-up: nothing of a refusing caller stays on the PBX
    assert audio_files(asterisk.monitor_dir) == before
