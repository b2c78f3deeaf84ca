"""A last-4-digits search of a catalog without number keys finds every number ending in those
digits on PostgreSQL too (issue 11).

The keyless search compared ``substr(caller_num, -4)``: on SQLite the last 4 characters, on
PostgreSQL the string from position -4, i.e. the whole string, so only a number that IS those 4
digits matched.  The clause is now a suffix ``LIKE`` both engines read alike
(``catalog/queries.py`` ``_number_clause``).  A catalog with keys searches its blind indexes
(tests/unit/test_number_protection.py).
"""

from __future__ import annotations

from datetime import UTC

import pytest

from pbx_recorder.catalog import CallFilters, Catalog
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_795_000_000.0


def test_last_four_digits_match_the_end_of_every_number(postgres: PostgresServer) -> None:
    catalog = Catalog(postgres.fresh_schema(), clock=lambda: NOW)
    try:
        for i, (caller, callee) in enumerate([("13812345678", "100"), ("+8613900001234", "200"),
                                              ("5678", "13812345678"), ("02012345678", "300")]):
            catalog.upsert_call({"call_id": f"n1_{i}.{i}", "caller_num": caller, "callee_num": callee,
                                 "status": "answered", "started_at": NOW - 60 * (i + 1)})

        def search(**kw: str) -> list[str]:
            return [r["call_id"] for r in catalog.search(CallFilters(**kw), now=NOW, tz=UTC)]

        assert search(caller="5678") == ["n1_0.0", "n1_2.2", "n1_3.3"]
        assert search(caller="1234") == ["n1_1.1"]
        assert search(callee="5678") == ["n1_2.2"]
        assert search(caller="13812345678") == ["n1_0.0"]  # the full number: exact, not a suffix
    finally:
        catalog.close()
