"""The report figures over the readable week of ``tests/fixtures/reports/week.yaml``: what each
figure counts (and leaves out), per team and overall; the pure pieces on their own."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.reports import figures as F
from pbx_recorder.reports import periods, queries
from tests.unit.report_support import WEEK_START, seed_week

WEEK = "2026-W48"
NOW = WEEK_START + 8 * 86400  # the Tuesday after: the week is complete


@pytest.fixture()
def conn(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = tmp_path / "catalog.db"
    seed_week(db)
    connection = open_catalog(db)
    yield connection
    connection.close()


def test_overall_week(conn) -> None:  # type: ignore[no-untyped-def]
    fig = queries.figures(conn, periods.parse("week", WEEK, UTC), "", NOW)
    # c1..c6 lie in the week; c7 (a minute before) and c8 (the next Monday 00:00) do not
    assert fig.totals.calls == 6 and fig.totals.answered == 5
    assert fig.answer_rate == pytest.approx(5 / 6)
    assert fig.totals.talk_s == 120 + 60 + 300 + 30 + 90
    assert fig.talk_avg_s == pytest.approx(600 / 5)
    # through consent: granted c1, refused c2, notified c4, timeout c5 ('' and not_required are not)
    assert fig.totals.consent_asked == 4
    assert dict(fig.consent_rates) == {"notified": 0.25, "granted": 0.25, "refused": 0.25, "timeout": 0.25}
    assert fig.totals.refusals_routed == 1  # c2 routed; c5's timeout continued unrecorded
    assert [(t.tier, t.recordings, t.bytes) for t in fig.tiers] == [("cold", 1, 5000), ("hot", 2, 3000)]
    assert [(t.tag, t.calls) for t in fig.tags] == [("complaint", 3), ("pricing", 2), ("vip", 1)]
    # alice 80+90 -> 85 (2 reviews), bob 85 (1; his 10 was written before the week), carol 60
    assert [(q.rank, q.agent, q.average, q.reviews) for q in fig.qa] == [
        (1, "alice", 85.0, 2), (1, "bob", 85.0, 1), (3, "carol", 60.0, 1)]
    assert fig.late_erasures == 2  # e1 open past its deadline, e3 done late; e4 came before the week


def test_team_week_counts_only_its_agents(conn) -> None:  # type: ignore[no-untyped-def]
    fig = queries.figures(conn, periods.parse("week", WEEK, UTC), "red", NOW)
    assert (fig.totals.calls, fig.totals.answered, fig.totals.talk_s) == (4, 3, 480)
    assert fig.talk_avg_s == pytest.approx(160)
    assert fig.consent_rates["granted"] == pytest.approx(1 / 3)
    assert fig.consent_rates["timeout"] == 0
    assert [(t.tier, t.bytes) for t in fig.tiers] == [("cold", 5000), ("hot", 1000)]
    assert [(t.tag, t.calls) for t in fig.tags] == [("complaint", 2), ("pricing", 1), ("vip", 1)]
    assert [q.agent for q in fig.qa] == ["alice", "bob"]
    assert fig.late_erasures is None  # an erasure request names a number, not a team


def test_no_caller_number_anywhere_in_a_report(conn) -> None:  # type: ignore[no-untyped-def]
    fig = queries.figures(conn, periods.parse("week", WEEK, UTC), "", NOW)
    assert "8613800000000" not in repr(fig.to_dict())


def test_month_and_a_week_without_calls(conn) -> None:  # type: ignore[no-untyped-def]
    month = queries.figures(conn, periods.parse("month", "2026-11", UTC), "", NOW)
    assert month.totals.calls == 8  # c7 (Sunday 22nd) and c8 (Monday 30th 00:00) are November too
    empty = queries.figures(conn, periods.parse("week", "2026-W40", UTC), "blue", NOW)
    assert empty.totals.calls == 0 and empty.answer_rate is None and empty.talk_avg_s is None
    assert empty.consent_rates["granted"] is None and empty.tiers == () and empty.qa == ()


def test_figures_round_trip_through_json() -> None:
    fig = F.compute("2026-11", "", 1.0, 2.0, F.CallTotals(calls=3, answered=2, talk_s=50.0),
                    [F.TierRow("hot", 1, 10)], [F.TagRow("a", 2)], [F.QaRow("x", 1, 70.0)], 0)
    import json

    assert F.from_dict(json.loads(json.dumps(fig.to_dict()))) == fig


def test_top_tags_keeps_ten_most_frequent_ties_by_name() -> None:
    rows = [F.TagRow(f"t{i:02d}", 5) for i in range(12)] + [F.TagRow("zz", 9)]
    top = F.top_tags(rows)
    assert len(top) == 10 and top[0].tag == "zz" and top[-1].tag == "t08"


class _Recorder:
    """A connection that remembers every statement run through it."""

    def __init__(self, conn) -> None:  # type: ignore[no-untyped-def]
        self.conn, self.seen = conn, []

    def execute(self, sql: str, args=()):  # type: ignore[no-untyped-def]
        self.seen.append((sql, args))
        return self.conn.execute(sql, args)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("team", ["", "red"])
def test_the_calls_are_read_through_a_time_index_never_scanned(conn, team: str) -> None:  # type: ignore[no-untyped-def]
    recorder = _Recorder(conn)
    queries.figures(recorder, periods.parse("week", WEEK, UTC), team, NOW)
    for sql, args in recorder.seen:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
        if " calls c" in sql or "call_tags t" in sql:
            assert not any(step.startswith(("SCAN c", "SCAN t")) for step in plan), (sql, plan)
            steps = " ".join(plan)
            assert any(index in steps for index in ("calls_time", "calls_agent_time", "call_tags_tag")), plan
