"""The catalog's two engines: one schema description, one SQL surface.

* The SQLite migration ladder (shipped, never edited) and the SQLAlchemy description the
  PostgreSQL baseline is created from name the same tables, columns and indexes.
* The Alembic head and the revision a node compares against without importing Alembic agree.
* The PostgreSQL connection's translation of the catalog's SQL: qmark parameters, literal
  percent signs, quoted question marks; rows readable like ``sqlite3.Row``.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, inspect

from pbx_recorder.catalog import engine, pg_schema
from pbx_recorder.catalog.pg_connection import Row, translate
from pbx_recorder.catalog.schema import apply_migrations
from pbx_recorder.catalog.schema_model import ROWID_ONLY_ON_POSTGRES, metadata

pytestmark = pytest.mark.sqlite_only  # it builds the SQLite ladder's result itself


def _ladder(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "ladder.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn)
    conn.close()
    return inspect(create_engine(f"sqlite:///{path}"))


def test_the_ladder_and_the_model_have_the_same_tables_and_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    insp = _ladder(tmp_path)
    ladder_tables = set(insp.get_table_names()) - {"schema_version", "sqlite_stat1", "sqlite_sequence"}
    assert ladder_tables == set(metadata.tables)
    for name, table in metadata.tables.items():
        model_cols = [c.name for c in table.columns if (name, c.name) not in ROWID_ONLY_ON_POSTGRES]
        ladder_cols = [c["name"] for c in insp.get_columns(name)]
        assert model_cols == ladder_cols, name
        pk = set(insp.get_pk_constraint(name)["constrained_columns"])
        assert {c.name for c in table.primary_key.columns} == pk


def test_the_ladder_and_the_model_have_the_same_indexes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    insp = _ladder(tmp_path)
    for name, table in metadata.tables.items():
        model = {i.name: [getattr(e, "name", None) or str(e).split(".")[-1].split(" ")[0]
                          for e in i.expressions] for i in table.indexes}
        ladder = {i["name"]: [c or "?" for c in i["column_names"]] for i in insp.get_indexes(name)}
        assert set(model) == set(ladder), name
        for idx, cols in model.items():
            assert len(cols) == len(ladder[idx]), (name, idx)


def test_the_head_a_node_checks_is_alembics_head() -> None:
    assert pg_schema.HEAD == pg_schema.head_revision()


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT * FROM calls WHERE call_id = ?", "SELECT * FROM calls WHERE call_id = %s"),
    ("SELECT '?' , x FROM t WHERE a = ? AND b LIKE '50%'",
     "SELECT '?' , x FROM t WHERE a = %s AND b LIKE '50%%'"),
    ('SELECT "we?ird" FROM t WHERE a IN (?,?)', 'SELECT "we?ird" FROM t WHERE a IN (%s,%s)'),
    ("SELECT 'it''s ?' WHERE a = ?", "SELECT 'it''s ?' WHERE a = %s"),
])
def test_qmark_statements_become_psycopg_statements(sql: str, expected: str) -> None:
    assert translate(sql) == expected


def test_a_row_reads_like_an_sqlite_row() -> None:
    row = Row(("a", "b"), {"a": 0, "b": 1}, (1, "x"))
    assert row[0] == 1 and row["b"] == "x" and dict(row) == {"a": 1, "b": "x"} and list(row) == [1, "x"]
    with pytest.raises(IndexError):
        row["nope"]


def test_targets_and_what_may_be_logged() -> None:
    assert engine.is_url("postgresql://rec@db:5432/catalog") and not engine.is_url("/var/lib/x/catalog.db")
    assert engine.describe("postgresql://rec@db:5432/catalog?options=-csearch_path%3Dx") == \
        "postgresql://rec@db:5432/catalog"
    assert "secret" not in engine.describe("postgresql://rec:secret@db/catalog")
