"""A pooled PostgreSQL connection given back once stays the pool's: the wrapper's ``close()`` is
idempotent and its ``__del__`` never closes a connection it already returned (it did: every
released connection died when the wrapper was collected, and the pool reconnected every other
request, 110-140 ms each, found through the console bench's PostgreSQL figures)."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

from pbx_recorder.catalog.pg_connection import PgConnection


class FakeRaw:
    def __init__(self) -> None:
        self.closed = False
        self.autocommit = False
        self.row_factory: Any = None
        self.adapters = SimpleNamespace(register_dumper=lambda *a: None)

    def close(self) -> None:
        self.closed = True


def test_a_returned_connection_is_never_closed_by_its_old_wrapper() -> None:
    raw, returned = FakeRaw(), []
    conn = PgConnection(raw, on_close=lambda c: returned.append(c.raw))  # type: ignore[arg-type]
    conn.close()
    conn.close()
    del conn
    gc.collect()
    assert returned == [raw] and not raw.closed


def test_a_dropped_wrapper_gives_its_connection_back_once() -> None:
    raw, returned = FakeRaw(), []
    conn = PgConnection(raw, on_close=lambda c: returned.append(c.raw))  # type: ignore[arg-type]
    del conn
    gc.collect()
    assert returned == [raw] and not raw.closed


def test_an_unpooled_connection_is_closed_once() -> None:
    raw = FakeRaw()
    conn = PgConnection(raw)  # type: ignore[arg-type]
    conn.close()
    assert raw.closed
