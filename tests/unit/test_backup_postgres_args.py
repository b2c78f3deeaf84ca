"""What a PostgreSQL catalog backup hands pg_dump/pg_restore: the schema from the URL, the
password only in the child's environment, the tools found where Debian puts them."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError
from pbx_recorder.lifecycle import backup_postgres as bp

BASE = "postgresql://rec@db.example:5433/pbx"


def with_options(options: str, extra: str = "") -> str:
    return f"{BASE}?{extra}options={quote(options)}"


@pytest.mark.parametrize(("options", "schema"), [
    ("-csearch_path=cat", "cat"),
    ("-c search_path=cat,public", "cat"),
    ('-c search_path="$user",node_2', "node_2"),
    ("--search_path=cat2", "cat2"),
    ("-c statement_timeout=0", None),
])
def test_schema_is_the_first_entry_of_the_urls_search_path(options: str, schema: str | None) -> None:
    assert bp.schema_of(with_options(options)) == schema


def test_no_options_dumps_the_database_and_an_odd_schema_name_is_refused() -> None:
    assert bp.schema_of(BASE) is None and bp.schema_of(BASE + "?sslmode=require") is None
    with pytest.raises(CatalogError, match="plain SQL name"):
        bp.schema_of(with_options("-csearch_path=x;drop"))


def test_with_schema_replaces_only_the_options() -> None:
    url = bp.with_schema(with_options("-csearch_path=a", "sslmode=require&"), "b")
    assert bp.schema_of(url) == "b" and "sslmode=require" in url and url.count("options=") == 1


def test_password_goes_to_the_childs_environment_never_into_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url, env = bp._child("postgresql://rec:hunter2@db.example:5433/pbx?sslmode=require", None)
    assert url == "postgresql://rec@db.example:5433/pbx?sslmode=require" and env["PGPASSWORD"] == "hunter2"
    engine.configure(BASE, password="from-file")
    url, env = bp._child(BASE, None)
    assert url == BASE and env["PGPASSWORD"] == "from-file" and "PGPASSWORD" not in os.environ
    engine.configure(BASE, password=None)
    assert "PGPASSWORD" not in bp._child(BASE, None)[1]


def test_tools_come_from_path_else_the_newest_versioned_bin_else_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bp.shutil, "which", lambda name: None)
    monkeypatch.setattr(bp, "BIN_ROOT", tmp_path)
    with pytest.raises(CatalogError, match=r"pg_dump not found .*postgresql-client"):
        bp.tool("pg_dump")
    for version in ("9", "15", "16"):
        exe = tmp_path / version / "bin" / "pg_dump"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert bp.tool("pg_dump") == str(tmp_path / "16" / "bin" / "pg_dump")
    monkeypatch.setattr(bp.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert bp.tool("pg_restore") == "/usr/bin/pg_restore"
