from __future__ import annotations

import json
import sqlite3

import pytest
from lifecycle_support import (
    CLASSES,
    KEY,
    NOW,
    add_call,
    add_recording,
    chain_ok,
    ledger_events,
    make_env,
    rec,
)

from pbx_recorder.errors import CatalogError, IntegrityError, PolicyRefusal
from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from pbx_recorder.lifecycle.capacity import CapacityGuard
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import audit
from pbx_recorder.lifecycle.migration import Migrator, Target
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.lifecycle.retention_jobs import RetentionJob

NUMBER = "+15558675309"


def eraser(env):
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    return holds, Eraser(env.conn, env.tiers, hash_key=KEY, holds=holds)


def test_erase_by_caller_everywhere_with_receipt_and_withheld_under_hold(tmp_path):
    env = make_env(tmp_path)
    holds, er = eraser(env)
    add_call(env, "c1", caller=NUMBER)
    k1 = add_recording(env, "c1", "r1")
    add_call(env, "c2", callee=NUMBER, caller="300")  # the subject was called
    k2 = add_recording(env, "c2", "r2", tier="cold", state="migrated")
    env.tiers["hot"].put(k2, env.tiers["cold"].path_for(k2))  # a stray copy a migration left behind
    add_call(env, "c3", caller=NUMBER)
    add_recording(env, "c3", "r3")
    add_call(env, "other", caller="+15550000000")
    add_recording(env, "other", "ro")
    h = holds.add("call", "c3", "pending lawsuit", "alice", now=NOW)
    audit(env.conn, actor="x", role="r", action="calls.search", target=NUMBER, detail={"q": NUMBER}, now=NOW)
    sha1 = rec(env, "r1")["sha256"]

    receipt = er.erase(caller=NUMBER, request_id="REQ-1", actor="dpo", now=NOW)
    assert receipt["status"] == "refused_partial"
    assert receipt["recordings_erased"] == 2 and receipt["objects_deleted"] == 3
    assert {o["recording_id"]: o["sha256"] for o in receipt["objects"]}["r1"] == sha1
    assert receipt["withheld"] == [
        {"recording_id": "r3", "call_id": "c3", "hold_id": h["hold_id"], "reason": "pending lawsuit"}
    ]
    assert NUMBER not in json.dumps(receipt) and "5558675309" not in json.dumps(receipt)
    assert (
        env.tiers["hot"].stat(k1) is None
        and env.tiers["cold"].stat(k2) is None
        and env.tiers["hot"].stat(k2) is None
    )
    assert rec(env, "r1") is None and rec(env, "r2") is None and rec(env, "r3") is not None
    calls = {r[0] for r in env.conn.execute("SELECT call_id FROM calls")}
    assert calls == {"c3", "other"}  # c3 kept: its recording is withheld
    stored = dict(env.conn.execute("SELECT * FROM erasure_requests").fetchone())
    assert stored["status"] == "refused_partial" and json.loads(stored["receipt"]) == receipt
    assert stored["deadline"] == pytest.approx(NOW + 15 * DAY) and "5558675309" not in stored["subject"]
    assert sorted(ledger_events(env, "erased")) == ["r1", "r2"] and chain_ok(env)
    assert not any("5558675309" in r[0] for r in env.conn.execute("SELECT payload FROM ledger"))
    logged = {r[0]: r[1] for r in env.conn.execute("SELECT recording_id, reason FROM deletion_log")}
    assert logged == {"r1": "erasure", "r2": "erasure", "r3": "erasure_withheld"}
    assert not any(
        "5558675309" in r[0] + r[1] for r in env.conn.execute("SELECT target, detail FROM audit_log")
    )


def test_partial_erasure_stays_in_status_with_withheld_items_and_a_log_row(tmp_path):
    env = make_env(tmp_path)
    holds, er = eraser(env)
    add_call(env, "c1", caller=NUMBER)
    add_recording(env, "c1", "r1")
    add_call(env, "c2", caller=NUMBER)
    add_recording(env, "c2", "r2")
    h = holds.add("call", "c2", "tax audit", "alice", now=NOW)
    assert er.erase(caller=NUMBER, request_id="REQ-P", actor="dpo", now=NOW)["status"] == "refused_partial"
    er.erase(caller=NUMBER, request_id="REQ-P", actor="dpo", now=NOW + 60)  # re-run: still withheld
    status = {r["request_id"]: r for r in er.status(NOW + DAY)}
    assert status["REQ-P"]["status"] == "refused_partial" and status["REQ-P"]["overdue"] is False
    assert status["REQ-P"]["withheld"] == [
        {"recording_id": "r2", "call_id": "c2", "hold_id": h["hold_id"], "reason": "tax audit"}
    ]
    rows = [dict(r) for r in env.conn.execute("SELECT * FROM deletion_log WHERE recording_id='r2'")]
    assert len(rows) == 1 and rows[0]["reason"] == "erasure_withheld" and rows[0]["actor"] == "dpo"
    assert all(part in rows[0]["policy"] for part in ("REQ-P", h["hold_id"], "tax audit"))
    holds.remove(h["hold_id"], "alice", now=NOW + 2 * DAY)  # the hold ends: the same request completes
    assert er.erase(caller=NUMBER, request_id="REQ-P", actor="dpo", now=NOW + 3 * DAY)["status"] == "done"
    assert "REQ-P" not in {r["request_id"] for r in er.status(NOW + 3 * DAY)}


def test_erase_status_tracks_open_and_overdue(tmp_path):
    env = make_env(tmp_path)
    _, er = eraser(env)
    er.receive(subject_hash="hmac-sha256:aa", request_id="OLD", now=NOW - 20 * DAY)
    er.receive(subject_hash="hmac-sha256:bb", request_id="NEW", now=NOW - 1 * DAY)
    status = {r["request_id"]: r for r in er.status(NOW)}
    assert status["OLD"]["overdue"] is True and status["NEW"]["overdue"] is False
    assert status["NEW"]["days_left"] == pytest.approx(14.0)
    add_call(env, "c", caller=NUMBER)
    add_recording(env, "c", "r")
    assert er.erase(call_id="c", request_id="NEW2", actor="dpo", now=NOW)["status"] == "done"
    assert "NEW2" not in {r["request_id"] for r in er.status(NOW)}


def test_capacity_pressure_migrates_lowest_ranked_until_low_water(tmp_path):
    env = make_env(tmp_path)
    for i in range(10):
        add_call(env, f"c{i}")
        add_recording(env, f"c{i}", f"r{i}", age_days=10 - i, data=bytes(100))  # young: not due by policy
    hot = env.tiers["hot"]

    def usage():
        return sum(o.size for o in hot.list()), 1000  # fake 1000-byte disk

    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES)
    alert = tmp_path / "alert.prom"
    res = CapacityGuard(m, hot, high_water=0.85, low_water=0.6, alert_file=alert, usage=usage).check(NOW)
    assert (res.used_before, res.used_after, res.migrated, res.alert) == (1000, 500, 5, False)
    moved = {r[0] for r in env.conn.execute("SELECT recording_id FROM recordings WHERE tier='cold'")}
    assert moved == {"r0", "r1", "r2", "r3", "r4"}  # soonest expiry / oldest first
    assert all(env.tiers["cold"].verify(rec(env, r)["storage_key"], rec(env, r)["sha256"]) for r in moved)
    assert not alert.exists()


def test_capacity_alert_when_it_cannot_get_below_the_mark(tmp_path, caplog):
    env = make_env(tmp_path)
    add_call(env, "c")
    add_recording(env, "c", "r", data=bytes(100))
    hot = env.tiers["hot"]
    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES)
    monkey_fail = {"n": 0}

    def broken_put(*a, **k):
        monkey_fail["n"] += 1
        raise IntegrityError("cold tier broken")

    env.tiers["cold"].put = broken_put
    alert = tmp_path / "alert.prom"
    res = CapacityGuard(
        m,
        hot,
        high_water=0.85,
        low_water=0.6,
        alert_file=alert,
        usage=lambda: (sum(o.size for o in hot.list()) + 900, 1000),
    ).check(NOW)
    assert res.alert and res.migrated == 0 and monkey_fail["n"] == 1
    assert hot.stat(rec(env, "r")["storage_key"]) is not None  # nothing deleted that did not reach cold
    assert 'pbx_recorder_capacity_alert{tier="hot"} 1' in alert.read_text()
    assert any(r.levelname == "ERROR" and "cannot get below" in r.getMessage() for r in caplog.records)


@pytest.mark.sqlite_only  # SQLite backup files (PostgreSQL's: tests/real/test_catalog_backup_postgres.py)
def test_catalog_backup_and_restore_round_trip(tmp_path):
    env = make_env(tmp_path)
    add_call(env, "c")
    add_recording(env, "c", "r")
    keys = BackupKeys(tmp_path / "backup-keys")
    info = backup.backup(env.db, env.tiers["cold"], NOW, keys=keys)
    assert info.key.startswith("catalog-backups/") and info.key.endswith(".db.pbxr")
    assert backup.list_backups(env.tiers["cold"]) == [info.key]
    stored = env.tiers["cold"].path_for(info.key).read_bytes()
    assert stored.startswith(b"PBXR") and b"SQLite format" not in stored and b"+15551230001" not in stored
    out = tmp_path / "restored" / "catalog.db"
    assert backup.restore(env.tiers["cold"], info.key, out, keys=keys) == (info.sha256, 0)
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT call_id FROM recordings WHERE recording_id='r'").fetchone() == ("c",)
    conn.close()
    with pytest.raises(CatalogError):  # never over an existing file (the live catalog)
        backup.restore(env.tiers["cold"], info.key, out, keys=keys)
    path = env.tiers["cold"].path_for(info.key)
    path.write_bytes(path.read_bytes()[:-10] + b"x" * 10)  # damage the stored backup
    with pytest.raises(IntegrityError):
        backup.restore(env.tiers["cold"], info.key, tmp_path / "bad.db", keys=keys)
    assert not (tmp_path / "bad.db").exists()


def test_erasure_that_fails_midway_stays_open_and_can_be_rerun(tmp_path):
    env = make_env(tmp_path)
    _, er = eraser(env)
    add_call(env, "c", caller=NUMBER)
    add_recording(env, "c", "r")
    hot_delete = env.tiers["hot"].delete

    def locked(key):
        raise PolicyRefusal("object is under COMPLIANCE retention")

    env.tiers["hot"].delete = locked
    with pytest.raises(PolicyRefusal):
        er.erase(caller=NUMBER, request_id="R1", actor="dpo", now=NOW)
    assert [r["request_id"] for r in er.status(NOW)] == ["R1"] and rec(env, "r") is not None
    env.tiers["hot"].delete = hot_delete
    receipt = er.erase(caller=NUMBER, request_id="R1", actor="dpo", now=NOW + DAY)
    assert receipt["status"] == "done" and receipt["received_at"] == NOW and er.status(NOW) == []


def test_retention_also_deletes_copies_of_an_unfinished_move(tmp_path):
    env = make_env(tmp_path)
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=200)
    env.tiers["cold"].put(key, env.tiers["hot"].path_for(key))  # a crash left a copy on cold
    env.conn.execute(
        "INSERT INTO lifecycle_moves VALUES ('r','hot',?,'cold',?,'', 'copying', ?)", (key, key, NOW)
    )
    assert RetentionJob(env.conn, env.tiers, CLASSES, holds).apply(NOW, "cron").disposed == ["r"]
    assert env.tiers["hot"].stat(key) is None and env.tiers["cold"].stat(key) is None
    assert env.conn.execute("SELECT COUNT(*) FROM lifecycle_moves").fetchone()[0] == 0
