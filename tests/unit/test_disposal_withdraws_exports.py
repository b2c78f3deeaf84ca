"""A recording destroyed by a retention run or by an approved two-person deletion no longer leaves
through an audio export made before (exports/jobs.py ``withdraw_holding``): the exports whose
archive holds it (their ``calls.export.item`` audit rows name it) are withdrawn, and so is every
audio export still running while the recordings go (it may be reading one).  Other audio exports
and CSV/XLSX exports (the call rows stay) are left.  Before, only an erasure withdrew exports:
the disposed audio stayed downloadable for up to 24 hours."""

from __future__ import annotations

from lifecycle_support import CLASSES, KEY, NOW
from test_recording_objects import CALL, RID, Setup

from pbx_recorder import audit_trail
from pbx_recorder.core.retention import LIVE_STATES
from pbx_recorder.exports import jobs
from pbx_recorder.lifecycle.deletion_requests import DeletionRequests
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.lifecycle.retention_jobs import RetentionJob


def export(conn, kind: str, holding: dict[str, list[str]], *, finished: bool = True,
           at: float = NOW - 60) -> str:
    job_id = jobs.new_id()
    jobs.create(conn, job_id, "lead", kind, {}, ["call_id"], f"{job_id}.zip", at)
    jobs.start(conn, job_id, 1)
    if finished:
        jobs.finish(conn, job_id, done=1, size=1, sha256="0" * 64, file_name=f"{job_id}.zip", now=at,
                    keep_s=jobs.KEEP_S)
        for call_id, recordings in holding.items():  # as service/export_work.py writes them
            audit_trail.record(conn, actor="lead", role="supervisor", action="calls.export.item",
                               target=call_id, detail={"job": job_id, "recordings": recordings}, now=at)
    return job_id


def state(conn, job_id: str) -> str:
    return str(conn.execute("SELECT state FROM export_jobs WHERE id = ?", (job_id,)).fetchone()[0])


def make_due(conn) -> None:
    conn.execute("UPDATE recordings SET retention_class='short', created_at=?, retain_until=?",
                 (NOW - 100 * DAY, NOW - 90 * DAY))


def exports(conn) -> dict[str, str]:
    return {
        "holds_it": export(conn, "audio", {CALL: [RID]}),
        "other_call": export(conn, "audio", {"n1_1700000099.9": ["n1_1700000099.9_call001"]}),
        "csv": export(conn, "csv", {}),
        "running": export(conn, "audio", {}, finished=False),
        "day_old": export(conn, "audio", {CALL: [RID]}, at=NOW - jobs.KEEP_S - 7200),
    }


def test_a_retention_run_withdraws_the_audio_exports_holding_what_it_disposed(tmp_path) -> None:
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    make_due(conn)
    result = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY)).apply(NOW, "cron")
    assert result.disposed == [RID]
    assert sorted(result.exports_withdrawn) == sorted([made["holds_it"], made["running"]])
    assert {k: state(conn, v) for k, v in made.items()} == {
        "holds_it": "failed", "running": "failed", "other_call": "done", "csv": "done",
        "day_old": "done"}  # (removed at its expiry already: no rows looked at past KEEP_S)
    error = conn.execute("SELECT error FROM export_jobs WHERE id = ?", (made["holds_it"],)).fetchone()[0]
    assert error == jobs.DISPOSED


def test_a_run_that_disposes_nothing_withdraws_nothing(tmp_path) -> None:
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    result = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY)).apply(NOW, "cron")
    assert result.disposed == [] and result.exports_withdrawn == []
    assert state(conn, made["running"]) == "running" and state(conn, made["holds_it"]) == "done"


def test_an_approved_deletion_withdraws_them_too(tmp_path) -> None:
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    requests = DeletionRequests(conn, s.tiers, HoldManager(conn, s.tiers, hash_key=KEY))
    asked = requests.ask(requester="lead", reason="recorded by mistake", call_ids=[CALL], now=NOW)
    requests.decide(asked["id"], approver="dpo", approve=True, now=NOW + 1)
    done = requests.execute(asked["id"], now=NOW + 2)
    assert done["result"]["deleted"] == [RID]
    assert sorted(done["result"]["exports_withdrawn"]) == sorted([made["holds_it"], made["running"]])
    assert state(conn, made["other_call"]) == "done" and state(conn, made["csv"]) == "done"


def test_an_export_that_finished_while_the_recordings_went_is_withdrawn(tmp_path) -> None:
    """Its item rows are written after its state turns done: the run's last look withdraws every
    audio export that finished since the run began destroying."""
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    late = export(conn, "audio", {}, finished=False)
    make_due(conn)
    job = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY))
    real = jobs.withdraw_holding
    calls: list[int] = []

    def finishes_first(conn_, holding, now, *, since=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:  # the export finishes between the disposal and its first look
            jobs.finish(conn_, late, done=1, size=1, sha256="0" * 64, file_name=f"{late}.zip", now=now,
                        keep_s=jobs.KEEP_S)
            return real(conn_, holding, now)  # this look alone would miss it
        return real(conn_, holding, now, since=since)

    jobs.withdraw_holding = finishes_first  # type: ignore[assignment]
    try:
        result = job.apply(NOW, "cron")
    finally:
        jobs.withdraw_holding = real  # type: ignore[assignment]
    assert len(calls) == 2 and result.exports_withdrawn == [late] and state(conn, late) == "failed"


def rec_state(conn) -> str:
    return str(conn.execute("SELECT state FROM recordings WHERE recording_id = ?", (RID,)).fetchone()[0])


class Killed(BaseException):
    """The process killed right after the destroying was committed (nothing after it runs)."""


def test_a_retention_run_killed_right_after_the_destroying_leaves_no_export_downloadable(
        tmp_path, monkeypatch) -> None:
    """Before, the exports were withdrawn after the disposal's commit: a run killed between the
    two left the disposed audio downloadable in an export for up to 24 hours (no later run looks
    at a recording it already disposed of)."""
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    make_due(conn)
    job = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY))
    real = RetentionJob._dispose

    def then_killed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(RetentionJob, "_dispose", then_killed)
    try:
        job.apply(NOW, "cron")
    except Killed:
        pass
    else:
        raise AssertionError("the run was not killed")
    assert rec_state(conn) == "expired"
    assert state(conn, made["holds_it"]) == "failed" and state(conn, made["running"]) == "failed"
    assert state(conn, made["other_call"]) == "done" and state(conn, made["csv"]) == "done"


def test_a_deletion_killed_right_after_the_destroying_leaves_no_export_downloadable(
        tmp_path, monkeypatch) -> None:
    from pbx_recorder.lifecycle import deletion_requests

    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    requests = DeletionRequests(conn, s.tiers, HoldManager(conn, s.tiers, hash_key=KEY))
    asked = requests.ask(requester="lead", reason="recorded by mistake", call_ids=[CALL], now=NOW)
    requests.decide(asked["id"], approver="dpo", approve=True, now=NOW + 1)
    real = deletion_requests.destroy

    def then_killed(*args, **kwargs):  # type: ignore[no-untyped-def]
        real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(deletion_requests, "destroy", then_killed)
    try:
        requests.execute(asked["id"], now=NOW + 2)
    except Killed:
        pass
    else:
        raise AssertionError("the deletion was not killed")
    assert rec_state(conn) not in LIVE_STATES
    assert state(conn, made["holds_it"]) == "failed" and state(conn, made["running"]) == "failed"
    assert state(conn, made["other_call"]) == "done"


def test_a_recording_the_tier_refuses_to_delete_has_its_exports_withdrawn_all_the_same(
        tmp_path, monkeypatch) -> None:
    """Withdrawn first, destroyed second: when the destroying then fails, the export stays
    withdrawn (its owner makes it again); failing the other way would leave audio out."""
    from pbx_recorder.errors import PolicyRefusal

    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    made = exports(conn)
    make_due(conn)

    def locked(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PolicyRefusal("object locked until 2030")

    monkeypatch.setattr(RetentionJob, "_dispose", locked)
    result = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY)).apply(NOW, "cron")
    assert result.disposed == [] and [d.recording_id for d in result.refused] == [RID]
    assert sorted(result.exports_withdrawn) == sorted([made["holds_it"], made["running"]])
    assert rec_state(conn) in LIVE_STATES
