"""An erasure that fails half-way leaves its request open, and the next run completes that
same request (the issue: at 10M rows ``erase --caller`` died after committing the request row,
and a new run started a second request while the first stayed open for ever)."""

from __future__ import annotations

import pytest
from lifecycle_support import KEY, NOW, add_call, add_recording, make_env, rec

from pbx_recorder.errors import StorageError
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager

NUMBER = "+15558675309"


def test_a_failed_erasure_stays_open_and_the_next_run_completes_the_same_request(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    for i in range(3):
        add_call(env, f"c{i}", caller=NUMBER)
        add_recording(env, f"c{i}", f"r{i}")
    add_call(env, "other", caller="+15550000000")
    add_recording(env, "other", "ro")
    hot = env.tiers["hot"]
    real_delete, deletes = hot.delete, []

    def failing_delete(key):  # the tier fails on the second recording
        deletes.append(key)
        if "/c1/" in key:
            raise StorageError("tier hot: connection reset")
        return real_delete(key)

    monkeypatch.setattr(hot, "delete", failing_delete)
    eraser = Eraser(env.conn, env.tiers, hash_key=KEY, holds=HoldManager(env.conn, env.tiers, hash_key=KEY))
    with pytest.raises(StorageError):
        eraser.erase(caller=NUMBER, actor="dpo", now=NOW)
    requests = env.conn.execute("SELECT request_id, status FROM erasure_requests").fetchall()
    assert [r[1] for r in requests] == ["open"]  # never 'done' before the work is
    assert [r["request_id"] for r in eraser.status(NOW)] == [requests[0][0]]
    assert rec(env, "r0") is None and rec(env, "r1") is not None  # half-way

    monkeypatch.setattr(hot, "delete", real_delete)
    receipt = eraser.erase(caller=NUMBER, actor="dpo", now=NOW + 60)
    assert receipt["request_id"] == requests[0][0] and receipt["status"] == "done"
    assert receipt["received_at"] == NOW  # the deadline still counts from the first receipt
    assert [r["recording_id"] for r in receipt["objects"]] == ["r1", "r2"]
    assert env.conn.execute("SELECT COUNT(*) FROM erasure_requests").fetchone()[0] == 1
    assert env.conn.execute("SELECT COUNT(*) FROM calls WHERE caller_num = ?", (NUMBER,)).fetchone()[0] == 0
    assert rec(env, "ro") is not None and eraser.status(NOW + 60) == []
