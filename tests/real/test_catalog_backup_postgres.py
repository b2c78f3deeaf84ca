"""``catalog backup`` / ``catalog restore`` on a PostgreSQL catalog: pg_dump and pg_restore against
a private PostgreSQL cluster (tests/postgres_server.py), with a password-authenticated role so
the password demonstrably travels through ``PGPASSWORD`` and nowhere else."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.cli import main
from pbx_recorder.errors import CatalogError, CryptoError, IntegrityError
from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from pbx_recorder.lifecycle.policy import number_hash
from pbx_recorder.lifecycle.tombstones import Tombstones
from storage.local import LocalTier
from tests.catalog_redirect import sqlite_catalogs
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.real

NOW = 1_800_000_000.0
KEY = b"k" * 32
USER, PASSWORD = "pbxr_backup", "s3cret-Pw-not-on-argv"
ERASED = "+15550000007"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer.start(tmp_path_factory.mktemp("pg-backup"))
    try:
        server.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        hba = server.base / "data" / "pg_hba.conf"
        # this role must give its password (everyone else stays trusted, as the cluster is set up)
        hba.write_text(f"host all {USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.psql("SELECT pg_reload_conf()")
        yield server
    finally:
        engine.close_pools()
        server.stop()


def url_for(pg: PostgresServer, schema: str | None, database: str | None = None) -> str:
    url = pg.url(schema, database=database).replace(f"//{pg.user}@", f"//{USER}@")
    engine.configure(url, password=PASSWORD)
    return url


def fresh_database(pg: PostgresServer) -> str:
    name = "r_" + uuid.uuid4().hex[:10]
    pg.psql(f"CREATE DATABASE {name} OWNER {USER}", database="postgres")
    return name


def own_schema(pg: PostgresServer, database: str | None = None) -> str:
    name = "s_" + uuid.uuid4().hex[:10]
    pg.psql(f"CREATE SCHEMA {name} AUTHORIZATION {USER}", database=database)
    return name


def rows(url: str, table: str, key: str) -> list[tuple]:
    conn = engine.connect(url)
    try:
        return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()]
    finally:
        conn.close()


def schemas(pg: PostgresServer, database: str) -> set[str]:
    conn = engine.connect(url_for(pg, None, database))
    try:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
                                           "AND nspname <> 'information_schema'").fetchall()}
    finally:
        conn.close()


def filled_catalog(pg: PostgresServer) -> str:
    url = url_for(pg, own_schema(pg))
    cat = Catalog(url)
    for i in range(40):
        caller = ERASED if i == 7 else f"+1555000{i:04d}"
        cat.upsert_call(dict(call_id=f"c{i:02d}", caller_num=caller, callee_num="200", queue=f"q{i % 3}",
                             status="answered", started_at=NOW - 3600 * i))
        cat.upsert_recording(dict(recording_id=f"r{i:02d}", call_id=f"c{i:02d}", state="stored",
                                  size=1000 + i, sha256="0" * 64, tier="hot", storage_key=f"k/{i}.wav"))
    cat.audit("ops", "admin", "test.fill", "c07", {"n": 40})
    cat.close()
    return url


@pytest.fixture
def tier(tmp_path: Path) -> LocalTier:
    return LocalTier("cold", tmp_path / "cold")


def test_pg_dump_backup_restores_into_a_fresh_database_rows_equal_erased_subject_gone(
        pg: PostgresServer, tier: LocalTier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = filled_catalog(pg)
    keys, work = BackupKeys(tmp_path / "keys"), tmp_path / "local"
    argv: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd, *a, **kw):  # type: ignore[no-untyped-def]
        argv.append([str(c) for c in cmd])
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(subprocess, "run", spy)
    info = backup.backup(live, tier, NOW, keys=keys, work_near=work)
    assert info.key.endswith(".pgdump.pbxr") and info.engine == "postgresql"
    assert backup.list_backups(tier) == [info.key]
    stored = tier.path_for(info.key).read_bytes()
    assert stored.startswith(b"PBXR") and b"PGDMP" not in stored and b"+1555000" not in stored
    assert hashlib.sha256(stored).hexdigest() == info.sha256
    dump_cmd = next(c for c in argv if Path(c[0]).name == "pg_dump")
    assert "--format=custom" in dump_cmd and f'--schema="{backup_schema(live)}"' in dump_cmd
    assert not any(PASSWORD in " ".join(c) for c in argv)  # the password went through PGPASSWORD only
    assert list(work.iterdir()) == []  # no plaintext dump left behind

    expected_calls = [r for r in rows(live, "calls", "call_id") if r[0] != "c07"]
    expected_recs = [r for r in rows(live, "recordings", "recording_id") if r[0] != "r07"]
    Catalog(live).upsert_call(dict(call_id="after", started_at=NOW))  # not in the backup

    tombs = Tombstones(tmp_path / "tombstones.jsonl", KEY)
    tombs.add([("number", number_hash(KEY, ERASED))], request_id="RQ1", now=NOW)
    db = fresh_database(pg)
    target = url_for(pg, "restored_catalog", db)  # another name than the backup's schema
    assert backup.restore(tier, info.key, target, keys=keys, scrub=tombs.apply, work_near=work) == (
        info.sha256, 1)
    assert rows(target, "calls", "call_id") == expected_calls
    assert rows(target, "recordings", "recording_id") == expected_recs
    assert schemas(pg, db) == {"public", "restored_catalog"}  # the backup's own name is gone
    # vacuumed and analyzed once restored: the live rows counted after the scrub (the restore's
    # index builds counted the erased call too) and pages marked all-visible (index-only reads
    # do not visit the table)
    conn = engine.connect(target)
    stats = conn.execute("SELECT reltuples, relallvisible FROM pg_class "
                         "WHERE oid = 'calls'::regclass").fetchone()
    conn.close()
    assert stats[0] == len(expected_calls) and stats[1] > 0
    restored = Catalog(target)
    assert restored.get_call("c08")["caller_num"] == "+15550000008" and restored.get_call("c07") is None
    restored.upsert_call(dict(call_id="new", agent="alice", tags='["vip"]', started_at=NOW))  # its triggers
    # work renamed (schema 10: the tag row carries the call's agent; schema 17 its status, consent
    # decision and queue, here the columns' empty defaults)
    assert rows(target, "call_tags", "call_id") == [("new", "vip", NOW, "alice", "", "", "")]
    restored.close()
    assert any(Path(c[0]).name == "pg_restore" for c in argv)
    assert not any(PASSWORD in " ".join(c) for c in argv)

    # the same schema name, created empty beforehand in another database: restored in place
    db2 = fresh_database(pg)
    same = backup_schema(live)
    pg.psql(f"CREATE SCHEMA {same} AUTHORIZATION {USER}", database=db2)
    backup.restore(tier, info.key, url_for(pg, same, db2), keys=keys, work_near=work)
    in_backup = [r for r in rows(live, "calls", "call_id") if r[0] != "after"]
    assert rows(url_for(pg, same, db2), "calls", "call_id") == in_backup  # no tombstones: c07 stays

    with pytest.raises(CatalogError, match="empty schema"):  # never over a catalog (the live one)
        backup.restore(tier, info.key, live, keys=keys, work_near=work)
    with pytest.raises(CatalogError, match="empty schema"):
        backup.restore(tier, info.key, target, keys=keys, work_near=work)
    assert len(rows(live, "calls", "call_id")) == 41


def backup_schema(url: str) -> str:
    from pbx_recorder.lifecycle.backup_postgres import schema_of

    schema = schema_of(url)
    assert schema
    return schema


def test_tampered_foreign_or_wrong_engine_backup_is_refused_and_creates_nothing(
        pg: PostgresServer, tier: LocalTier, tmp_path: Path) -> None:
    live = filled_catalog(pg)
    keys, work = BackupKeys(tmp_path / "keys"), tmp_path / "local"
    info = backup.backup(live, tier, NOW, keys=keys, work_near=work)
    db = fresh_database(pg)
    target = url_for(pg, "restored_catalog", db)
    good = tier.path_for(info.key).read_bytes()

    # a copy under another name: the key is the envelope's associated data
    other = info.key.replace("T", "T9", 1)
    tier.path_for(other).parent.mkdir(parents=True, exist_ok=True)
    tier.path_for(other).write_bytes(good)
    with pytest.raises(CryptoError):
        backup.restore(tier, other, target, keys=keys, sha256=info.sha256, work_near=work)

    # another installation's backup keys
    with pytest.raises(CryptoError):
        backup.restore(tier, info.key, target, keys=BackupKeys(tmp_path / "foreign"), work_near=work)

    # damaged: the hash sidecar no longer matches; with a matching hash, the envelope refuses it
    damaged = good[:-40] + bytes(b ^ 0xFF for b in good[-40:-20]) + good[-20:]
    tier.path_for(info.key).write_bytes(damaged)
    with pytest.raises(IntegrityError):
        backup.restore(tier, info.key, target, keys=keys, work_near=work)
    with pytest.raises(CryptoError):
        backup.restore(tier, info.key, target, keys=keys, sha256=hashlib.sha256(damaged).hexdigest(),
                       work_near=work)

    # a SQLite backup is no PostgreSQL restore, and a PostgreSQL backup no SQLite file
    with sqlite_catalogs():  # a SQLite file on purpose, on a PBXR_TEST_CATALOG=postgresql run too
        sqlite_cat = Catalog(tmp_path / "catalog.db")
        sqlite_cat.upsert_call(dict(call_id="s1", started_at=NOW))
        sqlite_cat.close()
        sqlite_info = backup.backup(tmp_path / "catalog.db", tier, NOW + 1, keys=keys)
    with pytest.raises(CatalogError, match="SQLite backup"):
        backup.restore(tier, sqlite_info.key, target, keys=keys, work_near=work)
    tier.path_for(info.key).write_bytes(good)
    with pytest.raises(CatalogError, match="postgresql:// URL"):
        backup.restore(tier, info.key, tmp_path / "restored.db", keys=keys, work_near=work)
    assert not (tmp_path / "restored.db").exists()

    assert schemas(pg, db) == {"public"}  # nothing was created by any refused restore
    assert list(work.iterdir()) == []


def cli_site(pg: PostgresServer, tmp_path: Path) -> tuple[str, Path]:
    """A filled live catalog and a config naming it, with its password file and an HMAC key."""
    live = filled_catalog(pg)
    (tmp_path / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    (tmp_path / "pg.password").write_text(PASSWORD + "\n")
    (tmp_path / "pg.password").chmod(0o600)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
catalog: {{path: {tmp_path}/var/catalog.db, url: "{live}", password_file: {tmp_path}/pg.password}}
storage:
  hot: hot
  cold: cold
  tiers:
    hot: {{type: local, path: {tmp_path}/hot}}
    cold: {{type: local, path: {tmp_path}/cold}}
privacy: {{hash_key_file: {tmp_path}/hmac.key}}
""")
    return live, cfg


def test_cli_catalog_backup_and_restore_with_the_password_file(
        pg: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live, cfg = cli_site(pg, tmp_path)
    engine.close_pools()
    assert main(["--config", str(cfg), "catalog", "backup"]) == 0
    out = capsys.readouterr().out
    key = out.split()[0].split(":", 1)[1]
    assert key.endswith(".pgdump.pbxr") and PASSWORD not in out
    assert main(["--config", str(cfg), "catalog", "backups"]) == 0
    assert key in capsys.readouterr().out
    target = url_for(pg, "from_cli", fresh_database(pg))
    engine.configure(target)  # no password of its own: the CLI gives the catalog's (same server, user)
    assert main(["--config", str(cfg), "catalog", "restore", "--from", key, "--to", target]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and PASSWORD not in out
    engine.configure(target, password=PASSWORD)
    assert rows(target, "calls", "call_id") == rows(live, "calls", "call_id")

    # after an erasure the runtime takes a fresh backup under a new backup-key epoch: pg_dump too
    from pbx_recorder.lifecycle.runtime import Runtime

    rt = Runtime.load(str(cfg), "catalog.backup")
    report = rt.shred_backups(time.time() + 5)
    assert report["fresh_backup"].startswith("cold:catalog-backups/")
    assert report["fresh_backup"].endswith(".pgdump.pbxr") and report["destroyed_backup_keys"]


def test_a_restore_that_fails_after_pg_restore_leaves_no_unscrubbed_catalog(
        pg: PostgresServer, tier: LocalTier, tmp_path: Path) -> None:
    live = filled_catalog(pg)
    keys, work = BackupKeys(tmp_path / "keys"), tmp_path / "local"
    info = backup.backup(live, tier, NOW, keys=keys, work_near=work)

    def broken_scrub(conn):  # type: ignore[no-untyped-def]
        assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 40  # pg_restore did run
        raise OSError("tombstone file unreadable")

    db = fresh_database(pg)
    with pytest.raises(OSError, match="tombstone"):  # restored as the backup's schema: dropped
        backup.restore(tier, info.key, url_for(pg, "restored", db), keys=keys, scrub=broken_scrub,
                       work_near=work)
    assert schemas(pg, db) == {"public"}
    same = backup_schema(live)  # restored into an existing empty schema: emptied again, kept
    pg.psql(f"CREATE SCHEMA {same} AUTHORIZATION {USER}", database=db)
    with pytest.raises(OSError, match="tombstone"):
        backup.restore(tier, info.key, url_for(pg, same, db), keys=keys, scrub=broken_scrub, work_near=work)
    assert schemas(pg, db) == {"public", same}
    conn = engine.connect(url_for(pg, same, db))
    try:
        assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = ?", (same,)).fetchone()[0] == 0
    finally:
        conn.close()
    backup.restore(tier, info.key, url_for(pg, same, db), keys=keys, work_near=work)  # and it can be re-run
    assert len(rows(url_for(pg, same, db), "calls", "call_id")) == 40


def test_cli_restore_applies_an_erasure_another_node_made_after_the_backup(
        pg: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The erasure ran on node A (its tombstone file is there); node B restores a backup it took
    before: the shared tombstones of the live catalog take the erased subject out."""
    from pbx_recorder.hash_key import read_hash_key
    from pbx_recorder.lifecycle import shared_tombstones

    live, cfg = cli_site(pg, tmp_path)
    engine.close_pools()
    assert main(["--config", str(cfg), "catalog", "backup"]) == 0
    key = capsys.readouterr().out.split()[0].split(":", 1)[1]
    conn = engine.connect(live)
    try:
        conn.execute("BEGIN")
        erased = number_hash(read_hash_key(tmp_path / "hmac.key"), ERASED)
        shared_tombstones.record(conn, [("number", erased)], request_id="RQ-node-a",
                                 now=time.time())
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert not (tmp_path / "erasure-tombstones.jsonl").exists()  # this node's file: nothing
    target = url_for(pg, "after_erasure", fresh_database(pg))
    engine.configure(target)
    assert main(["--config", str(cfg), "catalog", "restore", "--from", key, "--to", target]) == 0
    assert "1 erased call(s)" in capsys.readouterr().out
    engine.configure(target, password=PASSWORD)
    restored = [r[0] for r in rows(target, "calls", "call_id")]
    assert "c07" not in restored and len(restored) == 39
