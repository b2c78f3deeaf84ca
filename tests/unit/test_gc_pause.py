"""Python's collector held off while a PostgreSQL bulk batch is pipelined (``catalog.gc_pause``):
nested and concurrent blocks, a collector that was off, an error inside; and ``write_calls``
holds it off on PostgreSQL only (on SQLite nothing keeps the batch's cursors alive)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.catalog import engine, gc_pause
from tests.unit.test_catalog_bulk import _call, _catalog, _hooks


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_nested_blocks_turn_it_back_on_at_the_last_end() -> None:
    with gc_pause.paused():
        assert not gc.isenabled()
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_pause.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_turns_it_back_on() -> None:
    with pytest.raises(RuntimeError), gc_pause.paused():
        raise RuntimeError("batch failed")
    assert gc.isenabled()


def test_overlapping_blocks_in_two_threads() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with gc_pause.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gc_pause.paused():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after the first ended": False}  # the second block still held it off
    assert gc.isenabled()


def test_write_calls_holds_it_off_on_postgresql_only(tmp_path: Path) -> None:
    cat = _catalog(tmp_path / "cat.db")
    seen: list[bool] = []

    def watch(*_args: object) -> None:
        seen.append(gc.isenabled())

    try:
        assert cat.write_calls((_call(i) for i in range(3)), after_store=[*_hooks(), watch]) == 3  # type: ignore[arg-type]
        on_postgres = engine.is_postgres(cat._conn())
    finally:
        cat.close()
    assert seen == [not on_postgres] * 3
    assert gc.isenabled()
