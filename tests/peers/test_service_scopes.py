"""Row scopes in the query layer: per role, a call outside the scope never comes back from a
search, a count or a read by id -- whatever the filters (tag-first, agent, number, call id)."""

from __future__ import annotations

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import build_count, build_get, build_search, per_agent
from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.service.accounts import Accounts
from tests.peers.service_support import CALLS, CHEAP, NOW, USERS, seed

ALL = {c[0] for c in CALLS}
#: what each account may see
EXPECTED = {
    "root-admin": ALL,
    "comp": ALL,
    "counsel": ALL,
    "lead-red": {"c-red-1", "c-red-2"},
    "alice": {"c-red-1"},
    "qa1": {"c-blue-1"},
    "ops": set(),
}
FILTERS = (
    CallFilters(limit=100),
    CallFilters(tag="vip", limit=100),  # tag-first plan: call_tags leads
    CallFilters(queue="sales", status="answered", limit=100),
    CallFilters(caller="5678", limit=100),  # last-4 search: one red and one blue call
    CallFilters(agent="carol", limit=100),
)


@pytest.fixture
def seeded(tmp_path):  # type: ignore[no-untyped-def]
    # per test: under PBXR_TEST_CATALOG=postgresql each test maps its catalog path to a schema of its own
    return seed(tmp_path)


@pytest.mark.parametrize("name", sorted(USERS))
def test_no_row_outside_the_scope_is_ever_read(seeded, name: str) -> None:  # type: ignore[no-untyped-def]
    assert set(EXPECTED) == set(USERS)
    catalog = Catalog(seeded.db, clock=lambda: NOW)
    try:
        accounts = Accounts(catalog.connection(), hasher=CHEAP)
        user = accounts.get(name)
        assert user is not None
        scope = accounts.scope(user)
        allowed = EXPECTED[name]
        for f in FILTERS:
            unscoped = {r["call_id"] for r in catalog.search_page(f, now=NOW, count=False).rows}
            page = catalog.search_page(f, now=NOW, scope=scope)
            got = {r["call_id"] for r in page.rows}
            assert got == unscoped & allowed, (name, f)
            assert page.count is not None and page.count.value == len(got), (name, f)
        for call_id in ALL:
            row = catalog.get_call(call_id, scope=scope)
            assert (row is not None) == (call_id in allowed), (name, call_id)
    finally:
        catalog.close()


def test_paging_within_a_scope_never_leaves_it(seeded) -> None:  # type: ignore[no-untyped-def]
    catalog = Catalog(seeded.db, clock=lambda: NOW)
    try:
        scope = Scope.of_agents(frozenset({"alice", "bob"}))
        seen, after = [], None
        while True:
            page = catalog.search_page(CallFilters(limit=1, after=after), now=NOW, scope=scope, count=False)
            seen += [r["call_id"] for r in page.rows]
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == ["c-red-1", "c-red-2"]
    finally:
        catalog.close()


@pytest.mark.parametrize(("scope", "term"), [
    (Scope.nothing(), "1 = 0"),
    (Scope.of_agents(frozenset()), "1 = 0"),
    (Scope.of_reviewer(""), "1 = 0"),
    (Scope.of_agents(frozenset({"b", "a"})), "calls.agent IN (?, ?)"),
    (Scope.of_reviewer("qa1"), "SELECT q.call_id FROM qa_assignments q WHERE q.reviewer = ?"),
])
def test_every_builder_carries_the_scope_clause(scope: Scope, term: str) -> None:
    for sql, params in (build_search(CallFilters(tag="x"), NOW, scope=scope),
                        build_count(CallFilters(tag="x"), NOW, scope=scope),
                        build_get("c1", scope)):
        if per_agent(CallFilters(tag="x"), scope) and sql.startswith("SELECT calls.* FROM (SELECT * FROM ("):
            # a team's page is read one agent at a time (catalog/queries.py per_agent): each
            # agent's branch carries that agent's clause, on the call row itself
            assert sql.count("calls.agent IN (?)") == len(scope.agents)
            assert all(params.count(agent) >= 1 for agent in scope.agents)
        else:
            assert term in sql
        assert sql.count("?") == len(params)


def test_an_unrestricted_scope_adds_nothing() -> None:
    assert build_search(CallFilters(), NOW, scope=Scope.everything()) == build_search(CallFilters(), NOW)
    assert build_count(CallFilters(tag="x"), NOW, scope=Scope.everything()) == \
        build_count(CallFilters(tag="x"), NOW)
