"""An erasure withholds the recordings of a protected retention class (a legal obligation to keep
them: complaints, MiFID records; GDPR art. 17(3)(b)), stored or still waiting in the spool, and
says so in the receipt (``refused_partial``); ``include_protected`` overrides it."""

from __future__ import annotations

import json

from lifecycle_support import CLASSES, KEY, NOW
from test_recording_objects import CALL, NUMBER, RID, Setup

from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.recording.manifest import Manifest, ManifestFile

PROTECTED = frozenset(n for n, c in CLASSES.items() if c.protected)  # finance


def _eraser(s: Setup, *, spool: bool = False) -> Eraser:
    conn = s.conn()
    return Eraser(conn, s.tiers, hash_key=KEY, holds=HoldManager(conn, s.tiers, hash_key=KEY),
                  protected_classes=PROTECTED, spool_root=s.tmp / "spool" if spool else None)


def test_a_protected_class_recording_is_withheld(tmp_path):
    s = Setup(tmp_path)
    s.ship_dual()
    s.conn().execute("UPDATE recordings SET retention_class='finance'")
    receipt = _eraser(s).erase(caller=NUMBER, actor="dpo", now=NOW)
    assert receipt["status"] == "refused_partial" and receipt["recordings_erased"] == 0
    (kept,) = receipt["withheld"]
    assert kept["recording_id"] == RID and kept["hold_id"] == "retention:finance"
    assert "legal obligation" in kept["reason"]
    assert s.keys("hot") != [] and s.catalog.get_recording(RID) is not None  # before: erased
    assert NUMBER not in json.dumps(receipt)


def test_the_override_erases_it(tmp_path):
    s = Setup(tmp_path)
    s.ship_dual()
    s.conn().execute("UPDATE recordings SET retention_class='finance'")
    eraser = _eraser(s)
    eraser.include_protected = True
    receipt = eraser.erase(caller=NUMBER, actor="dpo", now=NOW)
    assert receipt["status"] == "done" and receipt["recordings_erased"] == 1
    assert receipt["protected_included"] is True and s.keys("hot") == []


def test_an_unprotected_class_is_erased_as_before(tmp_path):
    s = Setup(tmp_path)
    s.ship_dual()
    receipt = _eraser(s).erase(caller=NUMBER, actor="dpo", now=NOW)
    assert receipt["status"] == "done" and receipt["recordings_erased"] == 1 and s.keys("hot") == []


def test_a_protected_recording_waiting_in_the_spool_stays(tmp_path):
    s = Setup(tmp_path)
    s.catalog.upsert_call({"call_id": CALL, "caller_num": NUMBER, "callee_num": "200"})
    mon = tmp_path / "mon"
    mon.mkdir()
    (mon / "a.wav").write_bytes(b"RIFF" + b"\0" * 100)
    s.spool.spool_recording(RID, [mon / "a.wav"], Manifest(
        recording_id=RID, call_id=CALL, retention_class="finance", cdr={"src": NUMBER},
        files=(ManifestFile("a.wav", 0, ""),)))
    receipt = _eraser(s, spool=True).erase(caller=NUMBER, actor="dpo", now=NOW)
    assert receipt["spool_entries_deleted"] == []
    assert [w["hold_id"] for w in receipt["withheld"]] == ["retention:finance"]
    assert [e.recording_id for e in s.spool.pending()] == [RID]


def test_a_protected_recording_destroyed_already_no_longer_keeps_its_call(tmp_path):
    """A retention run or an approved two-person deletion (the console's override,
    lifecycle/protected_override.py) left the row ``expired``: nothing is left to keep, so the
    erasure run again removes the call (before, the row withheld it for ever)."""
    s = Setup(tmp_path)
    s.ship_dual()
    s.conn().execute("UPDATE recordings SET retention_class='finance'")
    first = _eraser(s).erase(caller=NUMBER, actor="dpo", now=NOW)
    assert first["status"] == "refused_partial"
    s.conn().execute("UPDATE recordings SET state='expired', wrapped_key=''")
    receipt = _eraser(s).erase(caller=NUMBER, actor="dpo", now=NOW + 10, request_id=first["request_id"])
    assert receipt["status"] == "done" and receipt["withheld"] == []
    assert s.conn().execute("SELECT count(*) FROM calls").fetchone()[0] == 0


def test_the_override_asks_a_deletion_only_for_what_a_protected_class_withheld(tmp_path):
    from pbx_recorder.lifecycle import protected_override

    withheld = [{"recording_id": "r1", "call_id": "c1", "hold_id": "retention:finance"},
                {"recording_id": "r2", "call_id": "c2", "hold_id": "H-7"},  # a legal hold: not this
                {"recording_id": "r3", "call_id": "c1", "hold_id": "retention:protected"}]
    assert protected_override.protected_calls(withheld) == ["c1"]
    s = Setup(tmp_path)  # no stored recording for these calls (still in the spool): nothing asked
    assert protected_override.ask_deletion(s.conn(), {"request_id": "ER-1", "withheld": withheld},
                                           requester="counsel", now=NOW) == []
