"""Scoped searches (migration 10): a team's page is one short index range per agent, merged; an
agent's own search and a QA reviewer's start from their calls; the results are exactly the
filtered calls of the scope, page after page, on both engines, and nothing outside the scope."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import MAX_MERGED_AGENTS, build_count, build_search, per_agent
from pbx_recorder.catalog.scopes import Scope
from tests.unit.catalog_plan_support import plan

NOW = 1_780_000_000.0
DAY = 86400.0
AGENTS = [f"agent{i:02d}" for i in range(8)]
TEAM = Scope.of_agents(set(AGENTS[:3]))
OWN = Scope.of_agents({AGENTS[1]})
REVIEWER = Scope.of_reviewer("qa1")
FILTERS = [CallFilters(), CallFilters(preset="7d"), CallFilters(status="failed"),
           CallFilters(status="answered"), CallFilters(consent="refused"), CallFilters(queue="q1"),
           CallFilters(tag="vip"), CallFilters(tag="vip", status="answered"), CallFilters(agent=AGENTS[2]),
           CallFilters(agent=AGENTS[5]), CallFilters(start=NOW - 20 * DAY, end=NOW - 5 * DAY)]


def _fill(catalog: Catalog) -> list[dict[str, Any]]:
    rnd = random.Random(11)
    calls = []
    for i in range(240):
        started = NOW - rnd.randint(0, 40 * 86400) if i % 40 else None  # a few untimed stand-ins
        call = {"call_id": f"c{i:03d}", "agent": rnd.choice(AGENTS),
                "status": rnd.choice(["answered", "answered", "failed", "no_answer"]),
                "consent_decision": rnd.choice(["granted", "refused", ""]), "queue": rnd.choice(["q1", "q2"]),
                "tags": rnd.sample(["vip", "sales", "late"], rnd.randint(0, 2)), "started_at": started}
        if i % 17 == 3:
            call["started_at"] = calls[-1]["started_at"]  # ties in time: call_id breaks them
        catalog.upsert_call(call)
        calls.append(call)
    for call in calls[::7]:
        catalog._conn().execute("INSERT INTO qa_assignments (call_id, reviewer, assigned_at) "
                                "VALUES (?, 'qa1', ?)", (call["call_id"], NOW))
    return calls


def _expected(calls: list[dict[str, Any]], f: CallFilters, scope: Scope, assigned: set[str]) -> list[str]:
    lo, hi = (NOW - 7 * DAY, NOW + 1) if f.preset == "7d" else (f.start, f.end)

    def keep(c: dict[str, Any]) -> bool:
        in_scope = c["agent"] in scope.agents if scope.kind == "agents" else c["call_id"] in assigned
        checks = [(f.status, c["status"]), (f.consent, c["consent_decision"]), (f.queue, c["queue"]),
                  (f.agent, c["agent"])]
        timed = c["started_at"] is not None
        return (in_scope and all(v is None or v == got for v, got in checks)
                and (f.tag is None or f.tag in c["tags"])
                and (lo is None or (timed and c["started_at"] >= lo))
                and (hi is None or (timed and c["started_at"] < hi)))

    rows = [c for c in calls if keep(c)]
    sign = 1 if f.order == "oldest" else -1
    timed = sorted((c for c in rows if c["started_at"] is not None),
                   key=lambda c: (sign * c["started_at"], c["call_id"] if sign < 0 else
                                  tuple(-ord(ch) for ch in c["call_id"])))
    return [c["call_id"] for c in timed] + sorted(c["call_id"] for c in rows if c["started_at"] is None)


def _pages(catalog: Catalog, f: CallFilters, scope: Scope) -> tuple[list[str], int]:
    seen, after = [], None
    while True:
        page = catalog.search_page(dataclasses.replace(f, limit=7, after=after), now=NOW, scope=scope)
        seen += [r["call_id"] for r in page.rows]
        count = page.count.value if page.count else -1
        if page.next_cursor is None:
            return seen, count
        after = page.next_cursor


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_scoped_pages_are_exactly_the_scope_s_matching_calls(tmp_path: Path, order: str) -> None:
    catalog = Catalog(tmp_path / "scoped.db", clock=lambda: NOW)
    calls = _fill(catalog)
    assigned = {c["call_id"] for c in calls[::7]}
    for scope in (TEAM, OWN, REVIEWER):
        for f in FILTERS:
            f = dataclasses.replace(f, order=order)
            want = _expected(calls, f, scope, assigned)
            got, count = _pages(catalog, f, scope)
            assert got == want, (scope, f)
            assert count == len(want), (scope, f)
    catalog.close()


def test_a_call_moved_out_of_the_team_leaves_its_tag_search(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "moved.db", clock=lambda: NOW)
    catalog.upsert_call({"call_id": "m1", "agent": AGENTS[0], "tags": ["vip"], "started_at": NOW - 10})
    catalog.upsert_call({"call_id": "m2", "agent": AGENTS[1], "tags": ["vip"], "started_at": NOW - 20})
    vip = CallFilters(tag="vip")
    assert [r["call_id"] for r in catalog.search(vip, now=NOW)] == ["m1", "m2"]
    assert [r["call_id"] for r in catalog.search_page(vip, now=NOW, scope=TEAM).rows] == ["m1", "m2"]
    catalog._conn().execute("UPDATE calls SET agent = ? WHERE call_id = 'm1'", (AGENTS[6],))  # trigger
    page = catalog.search_page(vip, now=NOW, scope=TEAM)
    assert [r["call_id"] for r in page.rows] == ["m2"] and page.count is not None and page.count.value == 1
    catalog.close()


@pytest.mark.sqlite_only
def test_a_stale_agent_copy_in_call_tags_never_shows_a_call_outside_the_scope(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "stale.db", clock=lambda: NOW)
    catalog.upsert_call({"call_id": "x1", "agent": AGENTS[7], "tags": ["vip"], "started_at": NOW - 10})
    conn = catalog._conn()
    conn.execute("UPDATE call_tags SET agent = ? WHERE call_id = 'x1'", (AGENTS[0],))  # bypassing the trigger
    for scope in (TEAM, Scope.of_agents({AGENTS[0]})):
        page = catalog.search_page(CallFilters(tag="vip"), now=NOW, scope=scope)
        assert page.rows == [] and page.count is not None and page.count.value == 0
    catalog.close()


def test_which_scopes_are_paged_one_agent_at_a_time() -> None:
    assert per_agent(CallFilters(status="failed"), TEAM) == sorted(TEAM.agents)
    assert per_agent(CallFilters(status="failed"), OWN) is None  # one range already
    assert per_agent(CallFilters(), Scope.everything()) is None
    assert per_agent(CallFilters(), REVIEWER) is None
    assert per_agent(CallFilters(caller="1234"), TEAM) is None  # the number's index is narrower
    assert per_agent(CallFilters(call_id="c1"), TEAM) is None
    big = Scope.of_agents({f"a{i}" for i in range(MAX_MERGED_AGENTS + 1)})
    assert per_agent(CallFilters(status="failed"), big) is None


@pytest.fixture(scope="module")
def conn():  # type: ignore[no-untyped-def]
    catalog = Catalog(":memory:")
    yield catalog._conn()
    catalog.close()


AGENT_LED = ("calls_agent_time", "call_tags_agent")  # (one agent index since schema 18)
SCOPED = {"7d": CallFilters(preset="7d"), "status": CallFilters(status="failed"),
          "consent": CallFilters(consent="refused"), "queue": CallFilters(queue="q1"),
          "tag": CallFilters(tag="vip"), "30d": CallFilters(preset="30d")}


def _reads(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith(("SEARCH ", "SCAN "))]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("name", sorted(SCOPED))
@pytest.mark.parametrize("scope", [TEAM, OWN], ids=["team", "own"])
def test_a_scoped_filter_reads_agent_led_index_ranges(conn, name: str, scope: Scope) -> None:  # type: ignore[no-untyped-def]
    f = SCOPED[name]
    page = _reads(plan(conn, *build_search(f, NOW, scope=scope, probe=True)))
    count = _reads(plan(conn, *build_count(f, NOW, scope=scope)))
    for lines in (page, count):
        leads = [ln for ln in lines if not ln.startswith("SEARCH calls USING INDEX sqlite_autoindex_calls_1")
                 and not ln.startswith(("SCAN b", "SCAN capped", "SCAN u", "SCAN k"))]
        assert leads and all(any(f" {ix} (agent=?" in ln for ix in AGENT_LED) for ln in leads), lines
    # a team: one range per agent; one agent: one range in the page's order, no sort
    assert len([ln for ln in page if ln.startswith("SEARCH") and "autoindex" not in ln]) == len(scope.agents)
    if scope is OWN:
        assert not any("TEMP B-TREE" in ln for ln in plan(conn, *build_search(f, NOW, scope=scope)))


@pytest.mark.sqlite_only
def test_a_reviewer_s_search_starts_from_their_assignments(conn) -> None:  # type: ignore[no-untyped-def]
    for f in SCOPED.values():
        for sql, params in (build_search(f, NOW, scope=REVIEWER), build_count(f, NOW, scope=REVIEWER)):
            lines = plan(conn, sql, params)
            assert any("qa_assignments_reviewer (reviewer=?)" in ln for ln in lines), lines
            assert not [ln for ln in lines if ln.startswith("SCAN ") and "capped" not in ln], lines
