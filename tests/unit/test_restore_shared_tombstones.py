"""``catalog restore`` applies the erasures kept in the shared catalog, not only the tombstone
file of the host it runs on: an erasure made on another node (its tombstone file is there) never
comes back with a backup this node took before it."""

from __future__ import annotations

import json

import pytest
from lifecycle_support import NOW, add_call, add_recording, make_cli_env, make_env

from pbx_recorder.cli import main
from pbx_recorder.config import load_config
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle import shared_tombstones
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.policy import number_hash
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.lifecycle.tombstones import Tombstones

NUMBER = "+15557770001"


def _fill(env):
    add_call(env, "c-subject", caller=NUMBER)
    add_recording(env, "c-subject", "r-subject")
    add_call(env, "c-other", caller="+15557770002")


def _erase_on_node_a(env, key, tmp_path, *, request_id="RQ-A"):
    """``erase`` as node A runs it: its tombstone file is on node A, the shared rows in the catalog."""
    a_file = tmp_path / "node-a" / "erasure-tombstones.jsonl"
    a_file.parent.mkdir()
    eraser = Eraser(env.conn, env.tiers, hash_key=key, holds=HoldManager(env.conn, env.tiers, hash_key=key),
                    tombstones=Tombstones(a_file, key))
    assert eraser.erase(caller=NUMBER, request_id=request_id, actor="dpo", now=NOW)["status"] == "done"
    return a_file


def test_restore_scrub_applies_the_live_catalogs_tombstones_from_another_node(tmp_path):
    (tmp_path / "b").mkdir()
    env, cfg_path = make_cli_env(tmp_path / "b")  # node B: this host
    cfg = load_config(cfg_path, env={})
    key = read_hash_key(cfg.privacy.hash_key_file)
    _fill(env)
    old = make_env(tmp_path / "backup-copy")  # what node B's backup from before the erasure holds
    _fill(old)
    _erase_on_node_a(env, key, tmp_path)
    rt = Runtime(cfg, env.conn, env.tiers, "dpo", "admin")
    assert rt.tombstones().hashes() == set()  # node B's own file knows nothing of the erasure
    assert rt.tombstones().apply(old.conn) == 0  # (what restore applied before)
    assert rt.restore_scrub()(old.conn) == 1
    assert [r[0] for r in old.conn.execute("SELECT call_id FROM calls ORDER BY call_id")] == ["c-other"]
    assert old.conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0


def test_a_live_only_tombstone_is_not_applied_and_request_ids_may_hold_colons(tmp_path):
    env = make_env(tmp_path)
    h1, h2 = number_hash(b"k" * 32, "+1555"), number_hash(b"k" * 32, "+1666")
    shared_tombstones.record(env.conn, [("number", h1)], request_id="case:7:a", now=NOW)
    shared_tombstones.record(env.conn, [("number", h2)], request_id="R2", now=NOW, restore=False)
    assert shared_tombstones.restore_hashes(env.conn, batch=1) == {h1}


def test_restored_catalogs_own_shared_tombstones_are_applied_too(tmp_path):
    """A backup taken on a node whose tombstone file was lost still carries the shared rows."""
    (tmp_path / "b").mkdir()
    env, cfg_path = make_cli_env(tmp_path / "b")
    cfg = load_config(cfg_path, env={})
    key = read_hash_key(cfg.privacy.hash_key_file)
    _fill(env)
    shared_tombstones.record(env.conn, [("number", number_hash(key, NUMBER))], request_id="R", now=NOW)
    live = make_env(tmp_path / "live")  # a live catalog that no longer holds the rows
    rt = Runtime(cfg, live.conn, live.tiers, "dpo", "admin")
    assert rt.restore_scrub()(env.conn) == 1


@pytest.mark.sqlite_only  # a SQLite file backup and restore through the CLI (PostgreSQL: tests/real)
def test_cli_restore_of_a_backup_older_than_another_nodes_erasure(tmp_path, capsys):
    env, cfg = make_cli_env(tmp_path)
    key = read_hash_key(tmp_path / "hmac.key")
    _fill(env)
    assert main(["--config", cfg, "catalog", "backup"]) == 0
    backup_key = capsys.readouterr().out.split()[0].split(":", 1)[1]
    a_file = _erase_on_node_a(env, key, tmp_path)
    assert number_hash(key, NUMBER) in a_file.read_text()
    assert main(["--config", cfg, "catalog", "restore", "--from", backup_key, "--to",
                 str(tmp_path / "r.db")]) == 0
    assert "1 erased call(s)" in capsys.readouterr().out
    restored = open_catalog(tmp_path / "r.db")
    assert [r[0] for r in restored.execute("SELECT call_id FROM calls ORDER BY call_id")] == ["c-other"]
    audit = restored.execute("SELECT detail FROM audit_log").fetchall()
    assert all(NUMBER not in str(r[0]) for r in audit)
    restored.close()
    detail = env.conn.execute("SELECT detail FROM audit_log WHERE action='catalog.restore'").fetchone()[0]
    assert json.loads(detail)["erased_calls_removed"] == 1
