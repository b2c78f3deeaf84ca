"""An erasure withdraws every export there is before anything of the subject goes and again when
it ends: one started while the erasure ran (it read the subject's rows before they went) as well
as older ones, also when the request is run again after a run that died half-way."""

from __future__ import annotations

import pytest
from lifecycle_support import KEY, NOW
from test_recording_objects import NUMBER, Setup

from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager


def _job(conn, at: float) -> str:
    job_id = jobs.new_id()
    jobs.create(conn, job_id, "lead", "csv", {}, ["call_id"], f"{job_id}.zip", at)
    jobs.start(conn, job_id, 1)
    jobs.finish(conn, job_id, done=1, size=1, sha256="0" * 64, file_name=f"{job_id}.zip", now=at,
                keep_s=jobs.KEEP_S)
    return job_id


def _state(conn, job_id: str) -> str:
    return str(conn.execute("SELECT state FROM export_jobs WHERE id = ?", (job_id,)).fetchone()[0])


def test_an_export_made_while_the_erasure_ran_is_withdrawn(tmp_path):
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    eraser = Eraser(conn, s.tiers, hash_key=KEY, holds=HoldManager(conn, s.tiers, hash_key=KEY))
    made: list[str] = []
    eraser.tick = lambda n: made.append(_job(s.conn(), NOW + 1)) if not made else None  # during the scan
    receipt = eraser.erase(caller=NUMBER, actor="dpo", now=NOW)
    assert made and receipt["exports_withdrawn"] == made
    assert _state(conn, made[0]) == "failed"  # before: created after NOW, left done


def test_a_run_that_dies_half_way_has_withdrawn_the_exports_already(tmp_path, monkeypatch):
    """Every export is withdrawn before anything of the subject goes (before, only at the end: a
    run killed after the recordings went left the exports downloadable until a re-run); a re-run
    withdraws what was made since."""
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    older = _job(conn, NOW - 60)
    eraser = Eraser(conn, s.tiers, hash_key=KEY, holds=HoldManager(conn, s.tiers, hash_key=KEY))

    def dies(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(eraser, "_purge_live", dies)  # after the recordings and call rows went
    with pytest.raises(OSError):
        eraser.erase(caller=NUMBER, actor="dpo", now=NOW, request_id="ER-1")
    assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 0  # the subject's rows went
    assert _state(conn, older) == "failed"
    monkeypatch.undo()
    between = _job(conn, NOW + 2)
    again = Eraser(conn, s.tiers, hash_key=KEY, holds=HoldManager(conn, s.tiers, hash_key=KEY))
    receipt = again.erase(caller=NUMBER, actor="dpo", now=NOW + 5, request_id="ER-1")
    assert receipt["status"] == "done" and receipt["exports_withdrawn"] == [between]
    assert _state(conn, between) == "failed"
