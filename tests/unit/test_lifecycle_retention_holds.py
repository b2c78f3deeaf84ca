from __future__ import annotations

import json

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

from pbx_recorder.errors import NotFound, PolicyRefusal
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.lifecycle.retention_jobs import RetentionJob


def setup(tmp_path):
    env = make_env(tmp_path)
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    return env, holds, RetentionJob(env.conn, env.tiers, CLASSES, holds)


def test_report_and_apply_disposes_expired_and_refuses_held_and_protected(tmp_path):
    env, holds, job = setup(tmp_path)
    add_call(env, "old")
    key_old = add_recording(env, "old", "r-old", age_days=200)
    add_call(env, "young")
    add_recording(env, "young", "r-young", age_days=20)
    add_call(env, "held", caller="+15550009999")
    key_held = add_recording(env, "held", "r-held", age_days=200)
    add_call(env, "prot")
    add_recording(env, "prot", "r-prot", age_days=200, protected=True)
    hold = holds.add("caller", "+1 555 000 9999", "litigation 42", "alice", now=NOW)

    report = {d.recording_id: d for d in job.report(NOW)}
    assert set(report) == {"r-old", "r-held", "r-prot"}  # r-young is not due
    assert report["r-old"].action == "dispose" and report["r-old"].policy == "standard:180d"
    assert report["r-held"].action == "refuse" and "litigation 42" in report["r-held"].reason
    assert hold["hold_id"] in report["r-held"].reason
    assert report["r-prot"].action == "refuse" and "protected" in report["r-prot"].reason

    result = job.apply(NOW, actor="retention-cron")
    assert result.disposed == ["r-old"]
    assert {d.recording_id for d in result.refused} == {"r-held", "r-prot"}
    assert rec(env, "r-old")["state"] == "expired" and env.tiers["hot"].stat(key_old) is None
    assert rec(env, "r-held")["state"] == "stored" and env.tiers["hot"].stat(key_held) is not None
    log = {r["recording_id"]: r for r in map(dict, env.conn.execute("SELECT * FROM deletion_log"))}
    assert log["r-old"]["reason"] == "retention" and log["r-old"]["actor"] == "retention-cron"
    assert log["r-old"]["sha256"] == rec(env, "r-old")["sha256"] and log["r-old"]["policy"].startswith(
        "standard"
    )
    assert log["r-held"]["reason"] == "refused" and "legal hold" in log["r-held"]["policy"]
    assert ledger_events(env, "deleted") == ["r-old"]
    job.apply(NOW + 1, actor="retention-cron")  # a second run does not repeat the refusal rows
    assert env.conn.execute("SELECT COUNT(*) FROM deletion_log WHERE reason='refused'").fetchone()[0] == 2
    assert chain_ok(env)


def test_finance_class_is_protected_even_when_expired(tmp_path):
    env, holds, job = setup(tmp_path)
    add_call(env, "f", cls="finance")
    add_recording(env, "f", "rf", cls="finance", age_days=2000)
    [d] = job.report(NOW)
    assert d.action == "refuse" and d.reason == "protected" and d.policy == "finance:1095d"


def test_hold_by_call_and_release(tmp_path):
    env, holds, job = setup(tmp_path)
    add_call(env, "c1")
    add_recording(env, "c1", "r1", age_days=200)
    h = holds.add("call", "c1", "subpoena", "bob", now=NOW)
    assert h["recordings"] == ["r1"] and rec(env, "r1")["legal_hold"] == 1
    assert [x["hold_id"] for x in holds.list()] == [h["hold_id"]]
    assert job.apply(NOW, "cron").disposed == []
    out = holds.remove(h["hold_id"], "bob", now=NOW + 10)
    assert out["released"] == ["r1"] and rec(env, "r1")["legal_hold"] == 0
    assert holds.list() == [] and len(holds.list(include_released=True)) == 1
    assert ledger_events(env, "held") == ["r1"] and ledger_events(env, "released") == ["r1"]
    assert job.apply(NOW + 20, "cron").disposed == ["r1"]
    with pytest.raises(NotFound):
        holds.add("call", "nope", "x", "bob", now=NOW)
    with pytest.raises(PolicyRefusal):
        holds.remove(h["hold_id"], "bob", now=NOW)


def test_caller_hold_stores_keyed_hash_and_covers_later_calls(tmp_path):
    env, holds, job = setup(tmp_path)
    add_call(env, "a", caller="+15557654321")
    add_recording(env, "a", "ra", age_days=200)
    h = holds.add("caller", "+15557654321", "case 7", "alice", now=NOW)
    stored = env.conn.execute("SELECT value FROM holds").fetchone()[0]
    assert "5557654321" not in stored and stored.startswith("hmac-sha256:")
    add_call(env, "later", caller="+15557654321")  # arrives after the hold was placed
    add_recording(env, "later", "rl", age_days=200)
    assert holds.hold_for(rec(env, "rl")) == (h["hold_id"], "case 7")
    assert {d.recording_id for d in job.apply(NOW, "cron").refused} == {"ra", "rl"}


def test_query_hold_records_what_it_covered(tmp_path):
    env, holds, _ = setup(tmp_path)
    add_call(env, "q1", queue="sales", started_at=NOW - 50 * DAY)
    add_recording(env, "q1", "rq1")
    add_call(env, "q2", queue="support", started_at=NOW - 50 * DAY)
    add_recording(env, "q2", "rq2")
    add_call(env, "q3", queue="sales", started_at=NOW - 500 * DAY)
    add_recording(env, "q3", "rq3")
    h = holds.add(
        "query", json.dumps({"queue": "sales", "start": NOW - 100 * DAY}), "audit", "carol", now=NOW
    )
    assert h["recordings"] == ["rq1"]
    covered = [
        r[0]
        for r in env.conn.execute("SELECT recording_id FROM hold_recordings WHERE hold_id=?", (h["hold_id"],))
    ]
    assert covered == ["rq1"] and rec(env, "rq2")["legal_hold"] == 0
    with pytest.raises(PolicyRefusal):
        holds.add("query", '{"colour": "red"}', "bad", "carol", now=NOW)


def test_set_class_recomputes_retain_until_and_audits(tmp_path):
    env, _, job = setup(tmp_path)
    add_call(env, "c")
    add_recording(env, "c", "r", age_days=200)
    changes = job.set_class("c", "finance", actor="dave", role="admin", now=NOW)
    r = rec(env, "r")
    assert r["retention_class"] == "finance" and r["retain_until"] == pytest.approx(
        r["created_at"] + 1095 * DAY
    )
    assert changes[0]["retain_until"] == r["retain_until"] and r["protected"] == 1
    a = dict(env.conn.execute("SELECT * FROM audit_log").fetchone())
    assert (a["actor"], a["role"], a["action"], a["target"]) == ("dave", "admin", "retention.set-class", "c")
    with pytest.raises(PolicyRefusal):
        job.set_class("c", "nope", actor="dave", role="admin", now=NOW)
