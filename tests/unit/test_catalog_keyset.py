"""Keyset pages: following the cursors visits every matching call once, in the one-query order;
a cursor is opaque and checked; the count is exact up to its cap and labelled beyond it."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.queries import Count, Cursor, decode_cursor, encode_cursor
from pbx_recorder.cli import cli
from pbx_recorder.errors import CatalogError
from tests.unit.test_catalog_tags import NOW, fill


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("keyset") / "cat.db", clock=lambda: NOW)
    fill(catalog, 300, seed=11)
    for i in range(3):  # more untimed stand-in rows, to page through them too
        catalog.upsert_recording({"recording_id": f"r-s{i}", "call_id": f"standin{i}"})
    return catalog


def _walk(catalog: Catalog, f: CallFilters) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(1000):
        page = catalog.search_page(dataclasses.replace(f, after=after), now=NOW, count=False)
        seen += [r["call_id"] for r in page.rows]
        if page.next_cursor is None:
            return seen
        assert len(page.rows) == f.limit  # only the last page is short
        after = page.next_cursor
    raise AssertionError("pages never ended")


@pytest.mark.parametrize("f", [CallFilters(limit=7), CallFilters(limit=1), CallFilters(preset="30d", limit=9),
                               CallFilters(tag="vip", limit=5), CallFilters(agent="a3", limit=4),
                               CallFilters(tag="sales", status="answered", limit=3)],
                         ids=["all", "one-by-one", "30d", "tag", "agent", "tag+status"])
def test_pages_visit_every_call_once_in_order(filled: Catalog, f: CallFilters) -> None:
    everything = [r["call_id"] for r in filled.search(dataclasses.replace(f, limit=10000), now=NOW)]
    assert len(everything) > 2 * f.limit
    assert _walk(filled, f) == everything
    if f == CallFilters(limit=7):
        assert everything[-4:] == ["standin", "standin0", "standin1", "standin2"]  # untimed rows last


def test_the_count_is_exact_up_to_the_cap_and_labelled_beyond(filled: Catalog) -> None:
    exact = filled.search_page(CallFilters(agent="a3", limit=2), now=NOW).count
    n = len(filled.search(CallFilters(agent="a3", limit=10000), now=NOW))
    assert exact == Count(n, exact=True) and str(exact) == f"{n:,}"
    tagged = filled.search_page(CallFilters(tag="vip", preset="30d", limit=2), now=NOW).count
    every = filled.search(CallFilters(tag="vip", preset="30d", limit=10000), now=NOW)
    assert tagged == Count(len(every), exact=True) and len(every) > 2
    capped = filled.search_page(CallFilters(limit=2), now=NOW, count_cap=50).count
    assert capped == Count(50, exact=False) and str(capped) == "more than 50"


@pytest.mark.parametrize("text", ["", "x" * 2000, "not-base64!",
                                  base64.urlsafe_b64encode(b"[2,1.0,\"a\"]").decode(),
                                  base64.urlsafe_b64encode(b"[1,\"NaN\",\"a\"]").decode(),
                                  base64.urlsafe_b64encode(b"[1,1e999,\"a\"]").decode(),
                                  base64.urlsafe_b64encode(b"[1,true,\"a\"]").decode(),
                                  base64.urlsafe_b64encode(b"[1,1.0,5]").decode()])
def test_a_forged_cursor_is_refused(filled: Catalog, text: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(text)
    if text:
        with pytest.raises(CatalogError):
            filled.search_page(CallFilters(after=text), now=NOW)


def test_a_cursor_round_trips_exactly() -> None:
    for cur in (Cursor(1780000000.123456789, "n1_1.0"), Cursor(None, ""), Cursor(0.1 + 0.2, "é'\"; --")):
        assert decode_cursor(encode_cursor(cur)) == cur


def test_cli_prints_the_count_and_the_next_page(tmp_path: Path) -> None:
    db = tmp_path / "cat.db"
    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\n")
    catalog = Catalog(db)
    for i in range(5):
        catalog.upsert_call({"call_id": f"n1_{i}.0", "status": "answered", "started_at": 1_700_000_000.0 + i})
    catalog.close()

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", *args],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    first = run("--limit", "2")
    assert "2 call(s) of 5 matching" in first and "n1_4.0" in first and "n1_3.0" in first
    after = first.split("next page: --after ")[1].split()[0]
    second = run("--limit", "2", "--after", after)
    assert "n1_2.0" in second and "n1_1.0" in second and "n1_4.0" not in second
    last = run("--limit", "2", "--after", second.split("--after ")[1].split()[0])
    assert "n1_0.0" in last and "next page" not in last
    bad = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", "--after", "garbage"])
    assert isinstance(bad.exception, CatalogError) and "cursor" in str(bad.exception)


def test_json_output_stays_one_document_and_the_cursor_goes_to_stderr(tmp_path: Path) -> None:
    db = tmp_path / "cat.db"
    cfg = tmp_path / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\n")
    catalog = Catalog(db)
    for i in range(3):
        catalog.upsert_call({"call_id": f"n1_{i}.0", "started_at": 1_700_000_000.0 + i})
    catalog.close()
    result = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", "--json", "--limit", "2"],
                                catch_exceptions=False)
    assert [r["call_id"] for r in json.loads(result.stdout)] == ["n1_2.0", "n1_1.0"]
    after = result.stderr.split("next page: --after ")[1].split()[0]
    rest = CliRunner().invoke(cli, ["--config", str(cfg), "calls", "search", "--json", "--after", after],
                              catch_exceptions=False)
    assert [r["call_id"] for r in json.loads(rest.stdout)] == ["n1_0.0"] and "next page" not in rest.stderr
