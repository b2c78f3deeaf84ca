"""Every path that deletes a recording drops its waveform peaks; every path that deletes a call row
drops the call's marks (notes about the conversation must not outlive it): erasure, tombstones
applied to a restored catalog, a late copy destroyed on arrival, and retention disposal (the
recording's audio goes, the call and its marks stay)."""

from __future__ import annotations

import time

from lifecycle_support import CLASSES, KEY, NOW, add_call, add_recording, make_env

from pbx_recorder.lifecycle import policy
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.retention_jobs import RetentionJob
from pbx_recorder.lifecycle.tombstones import Tombstones


def _console_rows(conn, call_id: str, rid: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute("INSERT INTO marks (call_id, recording_id, position_s, label, note, author, created_at) "
                 "VALUES (?, ?, 1.0, 'card read out', 'caller said 4111...', 'lead', ?)", (call_id, rid, NOW))
    conn.execute("INSERT INTO waveform_peaks (recording_id, peaks, created_at) VALUES (?, '{}', ?)",
                 (rid, NOW))


def _left(conn) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    marks = [r[0] for r in conn.execute("SELECT call_id FROM marks ORDER BY call_id")]
    peaks = [r[0] for r in conn.execute("SELECT recording_id FROM waveform_peaks ORDER BY recording_id")]
    return marks, peaks


def _two_calls(env) -> None:  # type: ignore[no-untyped-def]
    for call_id, rid in (("c1", "r1"), ("c2", "r2")):
        add_call(env, call_id, caller=f"+1555000000{call_id[-1]}")
        add_recording(env, call_id, rid)
        _console_rows(env.conn, call_id, rid)


def test_erasure_drops_the_calls_marks_and_the_recordings_peaks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path)
    _two_calls(env)
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    receipt = Eraser(env.conn, env.tiers, hash_key=KEY, holds=holds).erase(call_id="c1", actor="dpo", now=NOW)
    assert receipt["status"] == "done"
    assert _left(env.conn) == (["c2"], ["r2"])


def test_tombstones_on_a_restored_catalog_drop_marks_and_peaks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path)
    _two_calls(env)
    tomb = Tombstones(tmp_path / "tomb.jsonl", KEY)
    tomb.add([("call_id", policy.subject_hash(KEY, "c2"))], request_id="ER-1", now=NOW)
    assert tomb.apply(env.conn) == 1
    assert _left(env.conn) == (["c1"], ["r1"])


def test_retention_disposal_drops_the_peaks_and_keeps_the_calls_marks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path)
    add_call(env, "c1")
    add_recording(env, "c1", "r1", cls="short", age_days=200)
    _console_rows(env.conn, "c1", "r1")
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    assert RetentionJob(env.conn, env.tiers, CLASSES, holds).apply(NOW, "cron").disposed == ["r1"]
    assert _left(env.conn) == (["c1"], [])


def test_a_late_copy_destroyed_on_arrival_takes_its_marks_and_peaks(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tamper_support import CALLER, Deployment
    from test_erasure_late_copies import spool_live_call

    from pbx_recorder.lifecycle.late_copies import ErasureAwareCatalog, LateCopyGuard
    from pbx_recorder.recording.call_seal import CallSealer

    d = Deployment(tmp_path)
    try:
        guard = LateCopyGuard(tmp_path / "hash.key")
        d.catalog.close()
        d.catalog = ErasureAwareCatalog(tmp_path / "cat.db", clock=lambda: NOW,
                                        sealer=CallSealer(d.sign_key), guard=guard)
        d.shipper.catalog = d.catalog
        d.shipper.arrival_checks.append(guard.admit_spool_entry)
        d.call("n1_1.1")
        d.record("n1_1.1")  # an earlier call of the subject, stored
        started = time.time() - 30
        code, _ = d.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-live")
        assert code == 0
        rid = spool_live_call(d, "n1_2.2", started)
        conn = d.catalog._conn()
        _console_rows(conn, "n1_2.2", rid)  # rows a console could only have made by mistake
        assert d.shipper.ship_once().destroyed == [rid]
        assert _left(conn) == ([], [])
    finally:
        d.close()
