"""README "Security", still open: export jobs and stored report filters written before every field
was masked keep what they held (``keyword=13800138000`` in ``export_jobs.filter``, a remote agent's
dial string in a stored report's QA rows).  ``catalog migrate`` now rewrites them through the
masking used when they are written (``catalog.stored_filters_pass``); a second run changes nothing.
Both engines."""

from __future__ import annotations

import json

import pytest
from tamper_support import NOW, indexing_deployment

from pbx_recorder.catalog import stored_filters_pass
from pbx_recorder.exports import stored_filter
from pbx_recorder.lifecycle.journal import open_catalog

KEYWORD = "13800138000"
MOBILE = "4915112345678"
OLD_FILTER = {"keyword": KEYWORD, "agent": f"Local/{MOBILE}@x", "caller": "138****8000", "status": "answered",
              "from": "2026-12-01", "call_id": "pbx1_1764583200.42"}
MASKED_FILTER = {"keyword": "138****8000", "agent": "Local/491******5678@x", "caller": "138****8000",
                 "status": "answered", "from": "2026-12-01", "call_id": "pbx1_1764583200.42"}
OLD_REPORT = {"period": "2026-11", "team": "",
              "qa": [{"agent": f"Local/{MOBILE}@from-queue/n", "reviews": 2, "average": 0.9, "rank": 1},
                     {"agent": "alice", "reviews": 1, "average": 0.5, "rank": 2}]}
JOB = "INSERT INTO export_jobs (id, user_name, kind, filter, fields, state, file_name, created_at) VALUES "


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    yield d
    d.close()


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _written_before(d) -> None:
    """Rows as the version before wrote them: the filter's keyword and agent in clear."""
    d.sql(JOB + f"('{'a' * 32}', 'root-admin', 'csv', {_q(json.dumps(OLD_FILTER, sort_keys=True))}, '[]', "
          f"'done', '', {NOW})",
          JOB + f"('{'b' * 32}', 'root-admin', 'csv', {_q(json.dumps(MASKED_FILTER, sort_keys=True))}, '[]', "
          f"'done', '', {NOW})",
          "INSERT INTO report_schedules (owner, name, period, team, filter, mail_to, created_at, "
          f"last_period) VALUES ('lead', 'weekly', 'week', 'sales', '{{}}', '', {NOW}, '')",
          "INSERT INTO reports (schedule_id, owner, period, period_key, team, data, created_at) VALUES "
          f"(NULL, 'lead', 'month', '2026-11', '', {_q(json.dumps(OLD_REPORT, sort_keys=True))}, {NOW})")


def _stored(d) -> list[str]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return ([r[0] for r in conn.execute("SELECT filter FROM export_jobs ORDER BY id")]
                + [r[0] for r in conn.execute("SELECT filter FROM report_schedules ORDER BY id")]
                + [r[0] for r in conn.execute("SELECT data FROM reports ORDER BY id")])
    finally:
        conn.close()


def _audited(d) -> list[dict]:
    conn = open_catalog(d.config.catalog.path)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT detail FROM audit_log WHERE action = "
                                                       "'catalog.migrate' AND target = 'stored-filters'")]
    finally:
        conn.close()


def test_catalog_migrate_masks_an_export_jobs_filter_and_a_stored_report_once(dep, capsys):
    _written_before(dep)
    assert KEYWORD in "".join(_stored(dep)) and MOBILE in "".join(_stored(dep))
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "export_jobs 1 of 2, report_schedules 0 of 1, reports 1 of 1" in out, out
    stored = _stored(dep)
    for digits in (KEYWORD, MOBILE, "00138", "51123"):
        assert digits not in "".join(stored), stored
    assert json.loads(stored[0]) == MASKED_FILTER  # the job written before
    assert json.loads(stored[1]) == MASKED_FILTER  # one written masked is left as it was
    report = json.loads(stored[3])
    assert [q["agent"] for q in report["qa"]] == ["Local/491******5678@from-queue/n", "alice"]
    assert {**report, "qa": []} == {**OLD_REPORT, "qa": []}  # the rest as it was
    (audit,) = _audited(dep)  # one audit row with the counts
    assert audit["masked"] == {"export_jobs": 1, "reports": 1, "report_schedules": 0}
    assert audit["read"] == {"export_jobs": 2, "reports": 1, "report_schedules": 1} and audit["done"] is True
    code, out = dep.cli(capsys, "catalog", "migrate")  # done: not walked again
    assert code == 0 and "masked the stored filters" not in out
    code, out = dep.cli(capsys, "catalog", "migrate", "--force")  # walked again: nothing changes
    assert code == 0 and "export_jobs 0 of 2, report_schedules 0 of 1, reports 0 of 1" in out, out
    assert _stored(dep) == stored


@pytest.mark.sqlite_only  # reads the SQLite file's bytes
def test_after_the_pass_no_file_holds_the_number(dep, capsys, tmp_path):
    _written_before(dep)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    dep.close()
    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and any(n.encode() in p.read_bytes() for n in (KEYWORD, MOBILE))]
    assert leaks == []


def test_the_pass_resumes_after_a_crash_between_batches(dep):
    _written_before(dep)
    conn = open_catalog(dep.config.catalog.path)
    try:
        def crash(what: str, n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            stored_filters_pass.run(conn, batch=1, progress=crash)
        state = stored_filters_pass.load_state(conn)
        assert state == {"table": "export_jobs", "cursor": "a" * 32, "done": False}  # the first batch is kept
        report = stored_filters_pass.run(conn, batch=1)
        assert report.done and report.read == {"export_jobs": 1, "report_schedules": 1, "reports": 1}
        assert report.masked == {"export_jobs": 0, "report_schedules": 0, "reports": 1}
        assert stored_filters_pass.run(conn).skipped and not stored_filters_pass.pending(conn)
    finally:
        conn.close()
    assert KEYWORD not in "".join(_stored(dep)) and MOBILE not in "".join(_stored(dep))


@pytest.mark.parametrize("value", [KEYWORD, f"Local/{MOBILE}@x", "138-0013-8000", "+49 151 1234 5678",
                                   "(021) 5555-1234", f"SIP/{MOBILE}-00000001", f"客户{KEYWORD}投诉", "13800",
                                   f"<{MOBILE}>", "1380", "alice", "2026-12-01", "pbx1_1764583200.42"])
@pytest.mark.parametrize("key", ["caller", "keyword", "agent", "call_id", "unknown"])
def test_masking_again_hides_every_number_and_a_second_time_changes_nothing(key, value):
    once = stored_filter.masked_again({key: value})
    assert not stored_filter.shows_a_number(once[key])
    assert stored_filter.masked_again(once) == once
    if key in stored_filter.FILTER_KEYS and stored_filter.shows_a_number(value):
        assert once == stored_filter.masked({key: value})  # the masking a new job's filter gets


def test_a_value_that_is_not_text_or_a_cell_that_is_not_json_is_masked_too():
    assert stored_filter.masked_again({"keyword": 13800138000, "status": None}) == {"keyword": "138****8000",
                                                                                   "status": None}
    assert stored_filters_pass.rewritten(f"keyword={KEYWORD}", stored_filter.masked_again) == "{}"
    assert stored_filters_pass.rewritten("not json", stored_filter.masked_again) is None
