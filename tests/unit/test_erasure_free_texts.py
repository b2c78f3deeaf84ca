"""Compliance review, finding 2: what people wrote about a call outlived its erasure.

``marks.forget_call`` removed marks and number-index rows but left QA review comments (plain
JSON; they may quote the caller) and replay-request reasons; a two-person deletion request's reason
and the ``deletion_log`` rows that quote it are tied to the call too.  After ``erase --caller`` no
byte of the SQLite file, and no column of any table (either engine), holds the number."""

from __future__ import annotations

import json

import pytest
from tamper_support import CALLER, NOW, Deployment

from pbx_recorder.catalog import engine
from pbx_recorder.catalog.marks import ERASED_TEXT
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import qa_store

CALL = "n1_1.1"


def _texts(dep, conn) -> None:
    with conn:
        card = conn.execute("INSERT INTO qa_scorecards (name, criteria, created_by, created_at, retired) "
                            "VALUES ('c', '[]', 'a', 0, 0) RETURNING id").fetchone()[0]
        qa_store.add_review(conn, {"call_id": CALL, "reviewer": "q", "agent": "alice", "scorecard_id": card,
                                   "answers": {}, "score": 1.0,
                                   "comments": [{"mark_id": None,
                                                 "text": f"asked to be called back on {CALLER}"}]}, NOW)
        conn.execute("INSERT INTO replay_grants (call_id, requester, reason, requested_at, state) "
                     "VALUES (?, ?, ?, ?, ?)", (CALL, "bob", f"complaint of {CALLER}", NOW, "requested"))
        conn.execute("INSERT INTO deletion_requests (id, requested_by, reason, scope, requested_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     ("DR-0a1b2c3d4e5f", "bob", f"wrong number, Tel.{CALLER} asked",
                      json.dumps({"call_ids": [CALL]}), NOW))
        conn.execute("INSERT INTO deletion_log (at, recording_id, call_id, sha256, reason, policy, actor) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (NOW, f"{CALL}_call009", CALL, "", "deletion",
                      f"request DR-0a1b2c3d4e5f; approved by eve; Tel.{CALLER}", "eve"))


def _tables(conn) -> list[str]:
    if engine.is_postgres(conn):
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return sorted(str(r[0]) for r in conn.execute(sql))


def _recorded_with_texts(tmp_path) -> Deployment:
    """A recorded call with every free text that may quote the caller (``_texts``), the catalog
    closed for the CLI's erasure."""
    dep = Deployment(tmp_path)
    dep.call(CALL)
    dep.record(CALL)
    _texts(dep, dep.catalog.connection())
    dep.close()
    return dep


def _erase(dep, capsys) -> dict:
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    return json.loads(out[out.index("{"):])


def test_erasure_leaves_no_column_holding_the_number(tmp_path, capsys):
    dep = _recorded_with_texts(tmp_path)
    receipt = _erase(dep, capsys)
    assert receipt["status"] == "done" and receipt["calls_matched"] == 1
    conn = open_catalog(tmp_path / "cat.db")
    try:
        holding = [t for t in _tables(conn) if any(CALLER in str(tuple(row))
                                                   for row in conn.execute(f"SELECT * FROM {t}"))]
        assert holding == []
        # who wrote what when stays; the words do not
        comments, score = conn.execute("SELECT comments, score FROM qa_reviews WHERE call_id = ?",
                                       (CALL,)).fetchone()
        assert json.loads(comments) == [{"mark_id": None, "text": ERASED_TEXT}] and score == 1.0
        grants = [tuple(r) for r in conn.execute("SELECT requester, reason FROM replay_grants")]
        assert grants == [("bob", ERASED_TEXT)]
        reason = conn.execute("SELECT reason FROM deletion_requests").fetchone()[0]
        assert reason.startswith("wrong number, Tel.") and reason.endswith(" asked")  # masked, still read
        policy = conn.execute("SELECT policy FROM deletion_log WHERE call_id = ? AND reason = 'deletion'",
                              (CALL,)).fetchone()[0]
        assert policy.startswith("request DR-0a1b2c3d4e5f; approved by eve; Tel.")
    finally:
        conn.close()


def test_texts_about_another_call_are_left_as_they_are(tmp_path, capsys):
    dep = Deployment(tmp_path)
    dep.call(CALL)
    dep.call("n1_2.2", caller="4917000000000")
    conn = dep.catalog.connection()
    with conn:
        conn.execute("INSERT INTO replay_grants (call_id, requester, reason, requested_at, state) "
                     "VALUES (?, ?, ?, ?, ?)", ("n1_2.2", "bob", "complaint, see ticket 4711", NOW,
                                                "requested"))
    dep.close()
    assert _erase(dep, capsys)["calls_matched"] == 1
    conn = open_catalog(tmp_path / "cat.db")
    try:
        reasons = [tuple(r) for r in conn.execute("SELECT reason FROM replay_grants")]
        assert reasons == [("complaint, see ticket 4711",)]
    finally:
        conn.close()


@pytest.mark.sqlite_only  # reads the SQLite file's bytes
def test_erasure_leaves_no_byte_of_the_number_in_any_file(tmp_path, capsys):
    dep = _recorded_with_texts(tmp_path)
    assert _erase(dep, capsys)["calls_matched"] == 1
    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and CALLER.encode() in p.read_bytes()]
    assert leaks == []
