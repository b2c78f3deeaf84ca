"""Schema 6 on a catalog made by the old schema: numbers encrypted in place, seals still valid,
no clear digit left in the file; erasure and holds by number through the blind indexes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import CallFilters, Catalog
from pbx_recorder.catalog.number_keys import protection_for
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.catalog.schema import MIGRATIONS
from pbx_recorder.cli import main
from pbx_recorder.config import load_config
from pbx_recorder.lifecycle import number_lookup
from pbx_recorder.recording import call_seal

CALLER = "4915112345678"
TRANSFER = "4930987654321"  # named only by the CDR (the call was transferred there)
SIGNING = Ed25519PrivateKey.generate()


def old_catalog(path: Path) -> None:
    """A catalog exactly as schema 4 left it, numbers in clear, seals over the clear rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript("BEGIN;" + script + f"; INSERT INTO schema_version VALUES ({number}); COMMIT;")
    calls = [
        ("c1", CALLER, "200", {"src": CALLER, "clid": f'"x" <{CALLER}>', "lastdata": "PJSIP/200"}, 1000.0),
        ("c2", "300", "201", {"src": "300", "lastdata": f"PJSIP/{TRANSFER}@trunk"}, 2000.0),
        ("c3", "+4917000000001", CALLER, {"dst": CALLER}, 3000.0),
        ("c4", "+4917000000002", "202", {}, 4000.0),
    ]
    for call_id, caller, callee, cdr, started in calls:
        conn.execute("INSERT INTO calls (call_id, caller_num, caller_name, callee_num, cdr, consent, "
                     "started_at, status) VALUES (?,?,?,?,?,?,?,'answered')",
                     (call_id, caller, caller, callee, json.dumps(cdr), json.dumps({"digits": "1"}), started))
        call_seal.reseal(conn, call_id, SIGNING)
    manifest = {"recording_id": "r1", "call_id": "c1", "cdr": {"src": CALLER}, "callee_num": "200",
                "files": [{"sha256": "ab"}]}
    for rid, call_id in (("r1", "c1"), ("r2", "c2"), ("r3", "c3"), ("r4", "c4")):
        conn.execute("INSERT INTO recordings (recording_id, call_id, state, created_at, manifest) "
                     "VALUES (?,?,'stored',1,?)", (rid, call_id, json.dumps({**manifest, "recording_id": rid,
                                                                            "call_id": call_id})))
    conn.execute("INSERT INTO live_calls VALUES ('c9', ?, 1)", (json.dumps({"caller_num": CALLER}),))
    conn.close()


def config_for(tmp_path: Path) -> str:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hmac.key").write_text("0123456789abcdef0123456789abcdef")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
catalog: {{path: {tmp_path}/catalog.db}}
storage:
  hot: hot
  tiers:
    hot: {{type: local, path: {tmp_path}/hot}}
privacy: {{hash_key_file: {tmp_path}/keys/hmac.key}}
""")
    return str(cfg)


def clear_digits(*paths: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in paths if p.exists())
    return [n for n in (CALLER, CALLER[-7:], TRANSFER[-7:]) if n.encode() in data]


@pytest.fixture
def migrated(tmp_path, capsys):
    old_catalog(tmp_path / "catalog.db")
    assert clear_digits(tmp_path / "catalog.db", tmp_path / "catalog.db-wal")  # the bytes to get rid of
    cfg = config_for(tmp_path)
    code = main(["--config", cfg, "catalog", "migrate", "--batch", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "encrypted the numbers of 4 calls, 4 manifests, 1 live calls" in out and "vacuumed" in out
    return tmp_path, cfg


@pytest.mark.sqlite_only  # writes pre-schema-6 rows into a SQLite file
def test_old_catalog_is_encrypted_in_place_and_keeps_its_seals(migrated, capsys):
    tmp_path, cfg = migrated
    db = tmp_path / "catalog.db"
    assert clear_digits(db, tmp_path / "catalog.db-wal") == []
    numbers = protection_for(load_config(cfg))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    assert call_seal.check_calls(conn, SIGNING.public_key(), numbers=numbers) == []  # seals untouched
    assert call_seal.check_calls(conn, SIGNING.public_key())[0][1].startswith("numbers encrypted")
    cat = Catalog(db, numbers=numbers)
    row = cat.get_call("c1")
    assert row["caller_num"] == CALLER and row["cdr"]["clid"] == f'"x" <{CALLER}>' and row["consent"]
    assert cat.get_recording("r1")["manifest"]["cdr"] == {"src": CALLER}
    assert cat.load_live_calls() == {"c9": {"caller_num": CALLER}}
    assert [r["call_id"] for r in cat.search(CallFilters(caller="5678"))] == ["c1"]
    assert [r["call_id"] for r in cat.search(CallFilters(callee=CALLER))] == ["c3"]
    assert main(["--config", cfg, "catalog", "migrate"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    # an index edited to hide a call from erasure is caught by the seal check (with the keys)
    conn.execute("UPDATE calls SET caller_bi = 'hmac-sha256:00' WHERE call_id = 'c1'")
    conn.commit()
    found = call_seal.check_calls(conn, SIGNING.public_key(), numbers=numbers)
    assert found and found[0][0] == "c1" and "number index does not match" in found[0][1]


@pytest.mark.sqlite_only  # writes pre-schema-6 rows into a SQLite file
def test_the_data_step_resumes_after_an_interruption(tmp_path):
    old_catalog(tmp_path / "catalog.db")
    numbers = protection_for(load_config(config_for(tmp_path)))
    cat = Catalog(tmp_path / "catalog.db")  # schema 6 applied, no keys: nothing encrypted yet

    def crash(what, n):
        if n == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        protect(cat._conn(), numbers, batch=2, progress=crash)
    tokens = [r[0] for r in cat._conn().execute("SELECT numbers FROM calls ORDER BY call_id")]
    assert [bool(t) for t in tokens] == [True, True, False, False]  # the first batch committed
    again = protect(cat._conn(), numbers, batch=2)
    assert (again.calls, again.manifests) == (2, 4) and not again.errors
    assert protect(cat._conn(), numbers).skipped


@pytest.mark.sqlite_only  # writes pre-schema-6 rows into a SQLite file
def test_erase_and_hold_by_number_use_the_indexes(migrated, capsys):
    tmp_path, cfg = migrated
    conn = sqlite3.connect(tmp_path / "catalog.db")
    hash_key = (tmp_path / "keys" / "hmac.key").read_bytes().strip()
    assert number_lookup.call_ids_for_number(conn, hash_key, CALLER) == ["c1", "c3"]
    assert number_lookup.call_ids_for_number(conn, hash_key, "+" + TRANSFER, named=True) == ["c2"]
    assert number_lookup.call_ids_for_number(conn, hash_key, CALLER[-4:]) == []  # never by 4 digits
    params: list = []
    clause = number_lookup.index_clause(number_lookup.BlindIndex(hash_key), CALLER, params)
    plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT call_id FROM calls WHERE {clause}",
                                               params))
    assert "calls_caller_number" in plan and "calls_callee_number" in plan and "SCAN" not in plan, plan
    conn.close()
    assert main(["--config", cfg, "hold", "add", "--caller", "+" + CALLER, "--reason", "case 7"]) == 0
    assert "2 recording(s) held" in capsys.readouterr().out
    assert main(["--config", cfg, "erase", "--caller", TRANSFER, "--request-id", "ER-T"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["calls_matched"] == 1 and receipt["calls_erased"] == 1
    cat = Catalog(tmp_path / "catalog.db", numbers=protection_for(load_config(cfg)))
    assert cat.get_call("c2") is None and cat.get_call("c4") is not None


@pytest.mark.sqlite_only  # writes pre-schema-6 rows into a SQLite file
def test_a_restore_drops_the_calls_a_number_tombstone_names(migrated):
    from pbx_recorder.lifecycle import policy
    from pbx_recorder.lifecycle.tombstones import Tombstones

    tmp_path, _ = migrated
    hash_key = (tmp_path / "keys" / "hmac.key").read_bytes().strip()
    tomb = Tombstones(tmp_path / "keys" / "tombstones.jsonl", hash_key)
    tomb.add([("number", policy.number_hash(hash_key, v)) for v in policy.number_variants(TRANSFER)],
             request_id="ER-1", now=5000.0)
    conn = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    assert tomb.apply(conn) == 1  # c2 names the number only in its (encrypted) CDR
    assert [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY call_id")] == ["c1", "c3", "c4"]


@pytest.mark.sqlite_only  # writes pre-schema-6 rows into a SQLite file
def test_keys_rotate_reencrypts_the_numbers_before_retiring_the_old_key(tmp_path, capsys):
    from pbx_recorder.catalog.number_keys import protection_under
    from pbx_recorder.catalog.number_protection import token_key_id

    cfg = config_for(tmp_path)
    extra = (f"encryption: {{master_key_file: {tmp_path}/master/k1.key}}\n"
             f"signing: {{key_file: {tmp_path}/keys/signing.ed25519}}\n")
    Path(cfg).write_text(Path(cfg).read_text() + extra)
    assert main(["--config", cfg, "keys", "init"]) == 0
    cat = Catalog(tmp_path / "catalog.db", numbers=protection_for(load_config(cfg)))
    cat.upsert_call(dict(call_id="c1", caller_num=CALLER, started_at=1000.0))
    cat.save_live_call("c1", {"caller_num": CALLER})
    cat.close()
    capsys.readouterr()
    assert main(["--config", cfg, "keys", "rotate", "--to", "k2"]) == 0
    out = capsys.readouterr().out
    assert ("re-encrypted the numbers of 1 calls, 0 manifests, 1 live calls and 0 calls' extra numbers "
            "under k2") in out
    Path(cfg).write_text(Path(cfg).read_text().replace("master/k1.key", "master/k2.key"))
    assert main(["--config", cfg, "keys", "rotate", "--to", "k2", "--retire-old"]) == 0
    assert "retired master key k1" in capsys.readouterr().out
    conn = sqlite3.connect(tmp_path / "catalog.db")
    assert token_key_id(conn.execute("SELECT numbers FROM calls").fetchone()[0]) == "k2"
    after = Catalog(tmp_path / "catalog.db", numbers=protection_under(load_config(cfg), "k2"))
    assert after.get_call("c1")["caller_num"] == CALLER
    assert after.load_live_calls() == {"c1": {"caller_num": CALLER}}
