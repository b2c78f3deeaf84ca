"""The catalog bench's kept fill on PostgreSQL (``bench_catalog.py --engine postgresql --pg-url URL
--keep DIR``): a 10M-call fill there takes hours, so it must stop and go on like the SQLite one --
the same calls, the same keys -- and a kept schema must never be taken for another kept run's."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import bench_catalog, bench_catalog_pg, catalog_resume  # noqa: E402
from pbx_recorder.catalog import Catalog, engine  # noqa: E402

pytestmark = pytest.mark.postgres_only
NOW = 1_800_000_000.0
CALLS, BATCH = 1500, 500


@pytest.fixture
def database(_postgres_for_catalogs: Any) -> Any:
    """A database of its own (the kept schemas have fixed names)."""
    server = _postgres_for_catalogs
    name = "bench_" + uuid.uuid4().hex[:10]
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    yield server.url(database=name)
    engine.close_pools()
    server.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


def _bench(root: Path, url: str) -> tuple[bench_catalog.Bench, bench_catalog_pg.PgServer]:
    kept = catalog_resume.open_state(root, CALLS, BATCH, NOW)
    pg = bench_catalog_pg.PgServer(root, url, kept=kept.run_id)
    return bench_catalog.Bench(root, CALLS, BATCH, ["postgresql"], pg, kept), pg


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def test_a_stopped_fill_goes_on_with_the_same_calls_and_the_kept_schemas_stay(
        tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bench, pg = _bench(tmp_path, database)
    bench.sign_ahead_fill = False
    real = Catalog.write_calls
    seen: list[int] = []

    def stops_at_the_second_batch(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt  # the run killed while it writes the second batch
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "write_calls", stops_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        bench.fill()
    bench.close()
    pg.close()
    monkeypatch.setattr(Catalog, "write_calls", real)
    assert _count(database, "bench_kept_catalog.calls") == BATCH  # the first batch, committed
    bench, pg = _bench(tmp_path, database)
    bench.sign_ahead_fill = False
    bench.fill()
    bench.close()
    pg.close()
    assert bench.fill_written == {"postgresql": CALLS - BATCH}  # it went on after the first batch
    assert _count(database, "bench_kept_catalog.calls") == CALLS
    assert _count(database, "bench_kept_cdr.cdr") == CALLS
    with psycopg.connect(database) as conn:
        ids = {str(r[0]) for r in conn.execute("SELECT call_id FROM bench_kept_catalog.calls")}
    made = {str(g.call["call_id"]) for start in range(0, CALLS, BATCH)
            for g in bench.gen.calls(start, BATCH, batch_seed=True)}
    assert ids == made  # the calls a fill in one go writes


def test_a_kept_schema_is_refused_to_another_kept_run(tmp_path: Path, database: str) -> None:
    bench, pg = _bench(tmp_path / "a", database)
    bench.close()
    pg.close()
    with pytest.raises(SystemExit, match="another kept run"):
        _bench(tmp_path / "b", database)
    bench, pg = _bench(tmp_path / "a", database)  # its own directory again: accepted
    bench.close()
    pg.close()
