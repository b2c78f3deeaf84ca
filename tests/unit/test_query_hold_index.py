"""A legal hold by query reads the index range ``calls search`` reads (``lifecycle.query_hold_rows``),
not the whole ``calls`` table (issue 11: minutes at 10 M calls): it holds exactly the recordings
a reference that tests every call holds, for each kind of indexed filter, beside filters the
search has no index for, across pages (7 calls a page: the timed calls newest first, with ties,
then the untimed ones) and after calls were updated; it reads only the candidates. A query
without an indexed filter, or with one the search refuses, still reads the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.lifecycle import policy, query_hold_rows
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import rows
from tests.unit.test_catalog_bulk import NOW
from tests.unit.test_catalog_bulk_once import HASH_KEY, _catalog, _hooks, _numbers, _with_numbers

N = 66
H = 3600.0
QUEUES = ("sales", "support", "claims")
STATUSES = ("answered", "no_answer", "busy", "failed")
CONSENTS = ("granted", "refused", "timeout")


def _calls() -> list[tuple[dict[str, Any], list[Any]]]:
    out = []
    for i in range(N):
        call, recs = _with_numbers(i)
        tags = (["vip"] if i % 5 == 0 else []) + (["complaint"] if i % 7 == 0 else [])
        call.update(queue=QUEUES[i % 3], agent=f"a{i % 4}", status=STATUSES[(i // 2) % 4],
                    consent_decision=CONSENTS[(i // 3) % 3], tags=tags,
                    direction="outbound" if i % 6 == 0 else "inbound", did="4008001234" if i % 2 else "",
                    started_at=None if i % 11 == 10 else NOW - (i // 2) * H)  # ties: two calls an hour
        out.append((call, recs))
    return out


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Catalog, HoldManager, list[dict[str, Any]]]:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.write_calls(_calls(), after_store=_hooks())
    for i in (1, 2, 3, 4):  # updated after they were written: tags and status (the copies follow)
        call = dict(catalog.get_call(f"n1_{i}.0") or {})
        catalog.upsert_call({**call, "tags": ["escalated"], "status": "failed"})
    holds = HoldManager(catalog.connection(), {}, hash_key=HASH_KEY, numbers=_numbers())
    holds.query_page = 7
    numbers = _numbers()
    every = [numbers.open_call(c) for c in rows(catalog.connection(), "SELECT * FROM calls")]
    assert len(every) == N
    return catalog, holds, every


def _expected(catalog: Catalog, every: list[dict[str, Any]], q: dict[str, Any]) -> set[str]:
    calls = {str(c["call_id"]) for c in every if policy.query_matches(c, q)}
    return {str(r["recording_id"]) for c in sorted(calls) for r in catalog.recordings_for_call(c)}


QUERIES: list[dict[str, Any]] = [
    {"queue": "sales"},  # no time range: the untimed calls of the queue too
    {"queue": "sales", "start": NOW - 20 * H, "end": NOW - 5 * H},
    {"tag": "vip"},
    {"tag": "escalated"},  # only on updated calls
    {"tag": "complaint", "status": "answered"},
    {"status": "failed", "consent": "refused"},
    {"agent": "a1", "did": "4008001234"},  # DID: tested on the rows only
    {"agent": "a2", "direction": "outbound"},
    {"start": NOW - 10 * H},
    {"end": NOW - 25 * H, "consent": "granted"},
    {"call_id": "n1_12.0"},
]


@pytest.mark.parametrize("q", QUERIES, ids=[json.dumps(q, sort_keys=True) for q in QUERIES])
def test_a_query_hold_holds_what_every_call_tested_would_and_reads_only_candidates(
        filled: Any, q: dict[str, Any]) -> None:
    catalog, holds, every = filled
    read: list[int] = []
    holds.tick = read.append
    expected = _expected(catalog, every, q)
    assert expected, q  # each query matches something
    held = holds.add("query", json.dumps(q), "audit", "carol", now=NOW)
    assert set(held["recordings"]) == expected and len(held["recordings"]) == len(expected)
    assert sum(read) < N  # candidates only, not the table
    filters = query_hold_rows.search_filters(policy.parse_query(q), 7)
    assert filters is not None
    by_index = sum(1 for c in every if all(
        policy.query_matches(c, {k: v}) for k, v in q.items() if k in query_hold_rows.INDEXED))
    assert sum(read) == by_index  # exactly the calls the indexed filters select


@pytest.mark.parametrize("q", [{"direction": "outbound"}, {"did": "4008001234", "region": ""},
                               {"region": "cn"}])
def test_a_query_without_an_indexed_filter_reads_the_table(filled: Any, q: dict[str, Any]) -> None:
    catalog, holds, every = filled
    read: list[int] = []
    holds.tick = read.append
    parsed = policy.parse_query(q)
    assert query_hold_rows.search_filters(parsed, 7) is None
    held = holds.add("query", json.dumps(q), "audit", "carol", now=NOW)
    assert set(held["recordings"]) == _expected(catalog, every, parsed)
    assert sum(read) == N


def test_values_the_search_refuses_fall_back_to_the_table(filled: Any) -> None:
    catalog, holds, every = filled
    assert query_hold_rows.search_filters({"status": "bogus"}, 7) is None  # unknown status
    assert query_hold_rows.search_filters({"start": "yesterday"}, 7) is None
    # NaN compares false with every time: the row test keeps every timed call, no index range would
    assert query_hold_rows.search_filters({"start": float("nan"), "queue": "sales"}, 7) is None
    assert query_hold_rows.search_filters({"end": float("inf"), "queue": "sales"}, 7) is None
    nan = holds.add("query", '{"start": NaN, "queue": "sales"}', "audit", "carol", now=NOW)
    assert set(nan["recordings"]) == _expected(catalog, every, {"start": float("nan"), "queue": "sales"})
    read: list[int] = []
    holds.tick = read.append
    held = holds.add("query", json.dumps({"status": "bogus", "queue": "sales"}), "audit", "carol", now=NOW)
    assert held["recordings"] == [] and sum(read) == N
