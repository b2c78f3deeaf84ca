"""Retention and migration passes read only the recordings that may be due (schema 14,
``pbx_recorder.lifecycle.due_rows``): they find exactly what the core finds over every row, at
the cutoffs too, and a catalog where little is due is not read through."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from lifecycle_support import CLASSES, KEY, NOW, make_env
from sqlalchemy import create_engine, inspect, text

from pbx_recorder import scan
from pbx_recorder.catalog import pg_schema
from pbx_recorder.catalog.schema import MIGRATIONS, apply_migrations
from pbx_recorder.catalog.schema_model import metadata
from pbx_recorder.core import retention
from pbx_recorder.lifecycle import due_rows
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.migration import Migrator, Target
from pbx_recorder.lifecycle.retention_jobs import RetentionJob

DAY = retention.DAY
STATES = ("stored", "verified", "migrated", "expired", "spooled", "erased")
CLASS_NAMES = ("standard", "finance", "short", "no-such-class", "")


class Counted:
    """A progress bar that counts the rows a pass read."""

    def __init__(self) -> None:
        self.done = 0

    def advance(self, n: int = 1, extra: str = "") -> None:
        self.done += n


def _insert(conn: Any, rows: list[dict[str, Any]]) -> None:
    conn.execute("INSERT INTO calls (call_id) VALUES ('c')")
    for r in rows:
        conn.execute("INSERT INTO recordings (recording_id, call_id, state, tier, retention_class, "
                     "retain_until, created_at, storage_key) VALUES (?, 'c', ?, ?, ?, ?, ?, ?)",
                     (r["id"], r["state"], r["tier"], r["cls"], r["until"], r["created"], f"k/{r['id']}"))
    conn.commit()


def _random_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    # created times at and around every class's cutoffs (retention and cold_after), and anywhere
    edges = [NOW - d * DAY + e for d in (10, 30, 180, 1095) for e in (-1.0, -1e-6, 0.0, 1e-6, 0.5, 2.0)]
    rows = []
    for i in range(n):
        created = rnd.choice([*edges, NOW - rnd.uniform(0, 1500) * DAY, 0.0])  # (NOT NULL)
        until = rnd.choice([None, None, None, NOW - rnd.uniform(-50, 50) * DAY, NOW])
        rows.append({"id": f"r{i:05d}", "state": rnd.choice(STATES), "tier": rnd.choice(["hot", "cold"]),
                     "cls": rnd.choice(CLASS_NAMES), "until": until, "created": created})
    return rows


def _all(conn: Any) -> list[dict[str, Any]]:
    return list(scan.rows(conn, "recordings", scan.columns_of(conn, "recordings")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retention_finds_what_the_core_finds_over_every_row(tmp_path: Path, seed: int) -> None:
    env = make_env(tmp_path)
    _insert(env.conn, _random_rows(600, seed))
    job = RetentionJob(env.conn, env.tiers, CLASSES, HoldManager(env.conn, env.tiers, hash_key=KEY))
    for now in (NOW, NOW + 0.5, NOW + 40 * DAY):
        found = [(d.recording_id, d.action, d.reason) for d in job.iter_report(now, batch=7)]
        want = {(c.recording_id, "dispose" if c.allowed else "refuse", c.reason)
                for c in retention.disposal_candidates(_all(env.conn), [], now, CLASSES)}
        assert len(found) == len(set(found))  # each recording once
        assert set(found) == want and want


@pytest.mark.parametrize("seed", [4, 5])
def test_migration_finds_what_the_core_finds_over_every_hot_row(tmp_path: Path, seed: int) -> None:
    env = make_env(tmp_path)
    _insert(env.conn, _random_rows(600, seed))
    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES)
    for now in (NOW, NOW + 0.5, NOW + 40 * DAY):
        found = [r["recording_id"] for chunk in m.iter_candidates(now, batch=7) for r in chunk]
        hot = [r for r in _all(env.conn) if r["tier"] == "hot"]
        want = {c.recording_id for c in retention.migration_candidates(hot, CLASSES, now)}
        assert len(found) == len(set(found)) and set(found) == want and want


def test_a_pass_reads_only_what_may_be_due(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    young = [{"id": f"y{i}", "state": "stored", "tier": "hot", "cls": "standard", "until": None,
              "created": NOW - 5 * DAY} for i in range(3000)]
    old = [{"id": "old", "state": "stored", "tier": "hot", "cls": "standard", "until": None,
            "created": NOW - 200 * DAY},
           {"id": "cool", "state": "stored", "tier": "hot", "cls": "standard", "until": None,
            "created": NOW - 100 * DAY},
           {"id": "set", "state": "verified", "tier": "hot", "cls": "short", "until": NOW - DAY,
            "created": NOW - 20 * DAY}]  # an explicit end can only extend its class period
    _insert(env.conn, young + old)
    job = RetentionJob(env.conn, env.tiers, CLASSES, HoldManager(env.conn, env.tiers, hash_key=KEY))
    read = Counted()
    assert {d.recording_id for d in job.iter_report(NOW, progress=read)} == {"old", "set"}
    assert read.done == 2  # not the 3,003 others (before schema 14: every live row)
    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES)
    seen: list[int] = []
    # "old" is read but left to disposal (expired), "cool" is due; the young ones are younger
    # than any cold_after_days
    assert [r["recording_id"] for c in m.iter_candidates(NOW, progress=seen.append) for r in c] == ["cool"]
    assert sum(seen) == 2


@pytest.mark.sqlite_only  # SQLite's plans; PostgreSQL picks its own from statistics
def test_each_range_is_an_index_search(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    seen: list[str] = []

    class Explaining:
        def execute(self, sql: str, params: Any = ()) -> Any:
            seen.extend(str(r[3]) for r in env.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            return env.conn.execute(sql, params)

    cols = scan.columns_of(env.conn, "recordings")
    list(due_rows.retention_due(Explaining(), cols, CLASSES, NOW, batch=10))
    list(due_rows.migration_due(Explaining(), cols, CLASSES, ["hot"], NOW, batch=10))
    assert seen and all(p.startswith("SEARCH recordings USING INDEX recordings_") for p in seen), \
        [p for p in seen if not p.startswith("SEARCH recordings USING INDEX recordings_")]
    assert any("recordings_retain_until" in p for p in seen) and any("recordings_due" in p for p in seen)
    assert not any("TEMP B-TREE" in p for p in seen)


@pytest.mark.sqlite_only  # SQLite databases of its own
def test_sqlite_migration_14_adds_the_indexes(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:13], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    names = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recordings'"
    assert not {"recordings_due", "recordings_retain_until"} & {r[0] for r in conn.execute(names)}
    assert apply_migrations(conn) == len(MIGRATIONS) >= 14
    assert {"recordings_due", "recordings_retain_until"} <= {r[0] for r in conn.execute(names)}


@pytest.mark.sqlite_only  # the PostgreSQL pass runs the revisions on its own catalogs
def test_alembic_0014_adds_the_indexes(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as connection:
        metadata.create_all(connection)
        for name in ("recordings_due", "recordings_retain_until"):  # a catalog of revision 0013
            connection.execute(text(f"DROP INDEX {name}"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0013')"))
        connection.commit()
        command.upgrade(pg_schema._config(connection), "head")
        connection.commit()
        indexes = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("recordings")}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert indexes["recordings_due"] == ["state", "retention_class", "created_at"]
    assert indexes["recordings_retain_until"] == ["retain_until"]
    assert version == pg_schema.HEAD


def test_apply_disposes_a_recording_once_if_the_pass_meets_it_twice(tmp_path: Path, monkeypatch: Any) -> None:
    """A recording whose state changes while the pass runs (stored -> verified by the shipper, a
    held one migrated) can be met in two ranges; the second meeting finds it no longer live."""
    from lifecycle_support import add_call, add_recording, ledger_events

    env = make_env(tmp_path)
    add_call(env, "c1")
    add_recording(env, "c1", "r1", age_days=200)
    job = RetentionJob(env.conn, env.tiers, CLASSES, HoldManager(env.conn, env.tiers, hash_key=KEY))
    once = list(job.iter_report(NOW))
    assert [d.recording_id for d in once] == ["r1"]
    monkeypatch.setattr(job, "iter_report", lambda *a, **k: iter(once + once))
    result = job.apply(NOW, actor="retention-cron")
    assert result.disposed == ["r1"] and not result.failed
    assert ledger_events(env, "deleted") == ["r1"]
    assert env.conn.execute("SELECT COUNT(*) FROM deletion_log").fetchone()[0] == 1
