from __future__ import annotations

import io

import pytest
from lifecycle_support import CLASSES, NOW, add_call, add_recording, chain_ok, ledger_events, make_env, rec

from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle.migration import Migrator, Target
from storage.local import LocalTier


def migrator(env, **kw):
    return Migrator(
        env.conn,
        env.tiers,
        default=Target("hot", "cold"),
        regions={"eu": Target("hot", "cold-eu")},
        classes=CLASSES,
        **kw,
    )


def test_migrates_only_due_recordings_in_batches_with_progress(tmp_path):
    env = make_env(tmp_path)
    for i in range(5):
        add_call(env, f"c{i}")
        add_recording(env, f"c{i}", f"r{i}", age_days=40)
    add_call(env, "young")
    add_recording(env, "young", "ry", age_days=5)
    add_call(env, "never", cls="short")
    add_recording(env, "never", "rn", cls="short", age_days=40)
    seen = []
    prog = migrator(env, batch_size=2).run(NOW, progress=lambda p: seen.append((p.done, p.total)))
    assert (prog.done, prog.failed, prog.total) == (5, 0, 5)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    for i in range(5):
        r = rec(env, f"r{i}")
        assert (r["tier"], r["state"], r["migrated_at"]) == ("cold", "migrated", NOW)
        assert env.tiers["cold"].verify(r["storage_key"], r["sha256"])
        assert env.tiers["hot"].stat(r["storage_key"]) is None
    assert rec(env, "ry")["tier"] == "hot" and rec(env, "rn")["tier"] == "hot"
    assert sorted(ledger_events(env, "migrated")) == [f"r{i}" for i in range(5)]
    assert chain_ok(env)
    assert env.conn.execute("SELECT COUNT(*) FROM lifecycle_moves").fetchone()[0] == 0


def test_region_decides_destination(tmp_path):
    env = make_env(tmp_path)
    add_call(env, "ceu", region="eu")
    add_recording(env, "ceu", "reu", region="eu", age_days=40)
    add_call(env, "cus", region="us")
    add_recording(env, "cus", "rus", region="us", age_days=40)
    migrator(env).run(NOW)
    assert rec(env, "reu")["tier"] == "cold-eu"
    assert rec(env, "rus")["tier"] == "cold"  # no region entry: the default target


def test_dry_run_moves_nothing(tmp_path):
    env = make_env(tmp_path)
    add_call(env, "c")
    add_recording(env, "c", "r", age_days=40)
    prog = migrator(env).run(NOW, dry_run=True)
    assert prog.total == 1 and prog.done == 0 and rec(env, "r")["tier"] == "hot"


def test_crash_between_copy_and_catalog_update_then_resume(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    m = migrator(env)

    def crash(*a, **k):
        raise KeyboardInterrupt("simulated crash after copy")

    monkeypatch.setattr(m, "_switch", crash)
    with pytest.raises(KeyboardInterrupt):
        m.run(NOW)
    # old location still valid and referenced; a copy exists at the destination
    assert rec(env, "r")["tier"] == "hot" and env.tiers["hot"].verify(key, rec(env, "r")["sha256"])
    assert env.tiers["cold"].stat(key) is not None
    monkeypatch.undo()
    prog = migrator(env).run(NOW)
    assert prog.done == 1 and rec(env, "r")["tier"] == "cold"
    assert env.tiers["hot"].stat(key) is None
    assert ledger_events(env, "migrated") == ["r"]


def test_crash_after_catalog_switch_leaves_both_and_resume_deletes_source(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    m = migrator(env)
    monkeypatch.setattr(m, "_delete_source", lambda move, prog=None: None)  # crash before the source delete
    m.run(NOW)
    assert rec(env, "r")["tier"] == "cold"
    assert env.tiers["hot"].stat(key) is not None and env.tiers["cold"].stat(key) is not None
    assert migrator(env).resume(NOW) == 1
    assert env.tiers["hot"].stat(key) is None and env.tiers["cold"].stat(key) is not None


def test_verify_before_delete_keeps_source_when_destination_is_corrupt(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    monkeypatch.setattr(env.tiers["cold"], "verify", lambda k, s: False)
    prog = migrator(env).run(NOW)
    assert prog.failed == 1 and "does not verify" in prog.errors[0]
    assert rec(env, "r")["tier"] == "hot" and env.tiers["hot"].stat(key) is not None
    assert ledger_events(env, "migrated") == []
    with pytest.raises(IntegrityError):
        migrator(env).migrate_one(rec(env, "r"), NOW)


class BucketTier(LocalTier):
    """Two tier objects over one 'bucket' (same directory), like two S3 tiers on one bucket."""

    def __init__(self, name, root, storage_class):
        super().__init__(name, root)
        self.bucket, self.prefix, self.storage_class, self.changes = "rec", "", storage_class, []

    def change_storage_class(self, key, storage_class):
        self.changes.append((key, storage_class))
        return ""

    def put(self, *a, **k):
        raise AssertionError("a class change must not copy")


def test_same_bucket_uses_change_storage_class(tmp_path):
    env = make_env(tmp_path, names=())
    hot = BucketTier("hot", tmp_path / "bucket", "STANDARD")
    env.tiers.update(hot=hot, cold=BucketTier("cold", tmp_path / "bucket", "GLACIER"))
    add_call(env, "c")
    key = LocalTier("seed", tmp_path / "bucket").put("2027/01/c/r.wav", io.BytesIO(b"x" * 10)).key
    env.conn.execute(
        "INSERT INTO recordings (recording_id, call_id, state, sha256, tier, storage_key,"
        " retention_class, created_at) VALUES ('r','c','stored','', 'hot', ?, 'standard', ?)",
        (key, NOW - 40 * 86400),
    )
    prog = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    assert prog.done == 1 and hot.changes == [(key, "GLACIER")]
    r = rec(env, "r")
    assert (r["tier"], r["storage_class"], r["state"]) == ("cold", "GLACIER", "migrated")
    assert hot.stat(key) is not None  # nothing deleted: it is the same object
    assert ledger_events(env, "migrated") == ["r"]


def test_a_recording_erased_while_it_is_copied_leaves_no_copy_behind(tmp_path, monkeypatch):
    # an erasure runs while the objects are being copied: it removes the row and both ends it
    # sees; the copy that finishes after it must not stay on the cold tier (readable audio of an
    # erased subject where nothing is encrypted), and no `migrated` entry is written
    env = make_env(tmp_path)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    m = migrator(env)
    copy = m._copy

    def copy_then_erased(rec_row, target):
        placed = copy(rec_row, target)
        env.conn.execute("DELETE FROM recordings WHERE recording_id='r'")  # (the erasure's part)
        env.conn.execute("DELETE FROM lifecycle_moves WHERE recording_id='r'")
        env.tiers["hot"].delete(key)
        return placed

    monkeypatch.setattr(m, "_copy", copy_then_erased)
    prog = m.run(NOW)
    assert prog.done == 0 and prog.failed == 0
    assert env.tiers["cold"].stat(key) is None
    assert ledger_events(env, "migrated") == []
    assert env.conn.execute("SELECT COUNT(*) FROM lifecycle_moves").fetchone()[0] == 0
    assert chain_ok(env)


def test_in_a_batch_only_the_erased_recordings_copy_is_dropped(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    keys = {}
    for name in ("a", "b"):
        add_call(env, f"c{name}")
        keys[name] = add_recording(env, f"c{name}", f"r{name}", age_days=40)
    m = migrator(env)
    copy = m._copy

    def copy_then_erased(rec_row, target):
        placed = copy(rec_row, target)
        if rec_row["recording_id"] == "ra":
            env.conn.execute("DELETE FROM recordings WHERE recording_id='ra'")
            env.conn.execute("DELETE FROM lifecycle_moves WHERE recording_id='ra'")
        return placed

    monkeypatch.setattr(m, "_copy", copy_then_erased)
    prog = m.run(NOW)
    assert prog.done == 1
    assert env.tiers["cold"].stat(keys["a"]) is None
    assert rec(env, "rb")["tier"] == "cold" and env.tiers["cold"].stat(keys["b"]) is not None
    assert ledger_events(env, "migrated") == ["rb"]
    assert chain_ok(env)
