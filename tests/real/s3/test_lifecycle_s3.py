"""Lifecycle jobs against real S3 servers: cold migration + restore (moto), same-bucket class
change (moto), legal hold enforced by Object Lock (SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit"))  # lifecycle_support

from lifecycle_support import CLASSES, KEY, NOW, add_call, add_recording, make_env, rec  # noqa: E402

from pbx_recorder.errors import ObjectNotRestored  # noqa: E402
from pbx_recorder.lifecycle import access  # noqa: E402
from pbx_recorder.lifecycle.holds import HoldManager  # noqa: E402
from pbx_recorder.lifecycle.migration import Migrator, Target  # noqa: E402
from pbx_recorder.lifecycle.retention_jobs import RetentionJob  # noqa: E402
from storage.s3 import S3Tier  # noqa: E402

pytestmark = pytest.mark.real


def test_migrate_to_glacier_then_get_needs_restore(moto_tier, tmp_path):
    env = make_env(tmp_path, names=("hot",))
    env.tiers["cold"] = moto_tier(lock=False)
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    m = Migrator(env.conn, env.tiers, default=Target("hot", "cold", storage_class="GLACIER"), classes=CLASSES)
    prog = m.run(NOW)
    assert prog.done == 1, prog.errors
    r = rec(env, "r")
    assert (r["tier"], r["storage_class"]) == ("cold", "GLACIER") and env.tiers["hot"].stat(key) is None
    with pytest.raises(ObjectNotRestored, match="recordings restore r"):
        access.download(env.conn, r, env.tiers, tmp_path / "out.wav", actor="t", role="auditor", now=NOW)
    assert access.restore(env.conn, r, env.tiers) in ("in_progress", "done")
    assert access.restore(env.conn, r, env.tiers) == "done"  # moto finishes restores at once
    digest = access.download(env.conn, r, env.tiers, tmp_path / "out.wav", actor="t", role="auditor", now=NOW)
    assert digest == hashlib.sha256((tmp_path / "out.wav").read_bytes()).hexdigest() == r["sha256"]


def test_same_bucket_class_change_in_place(moto_tier, tmp_path):
    env = make_env(tmp_path, names=())
    hot = moto_tier(lock=False)
    cold = S3Tier("cold", bucket=hot.bucket, client=hot.client, prefix="rec", storage_class="STANDARD_IA")
    env.tiers.update(hot=hot, cold=cold)
    add_call(env, "c")
    data = b"pcm" * 1000
    hot.put("2027/r.wav", io.BytesIO(data))
    env.conn.execute(
        "INSERT INTO recordings (recording_id, call_id, state, sha256, tier, storage_key, retention_class,"
        " created_at) VALUES ('r','c','stored',?,'hot','2027/r.wav','standard',?)",
        (hashlib.sha256(data).hexdigest(), NOW - 40 * 86400),
    )
    assert Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW).done == 1
    info = cold.stat("2027/r.wav")
    assert info is not None and info.storage_class == "STANDARD_IA"
    assert rec(env, "r")["tier"] == "cold"


def test_legal_hold_is_enforced_by_object_lock(weed_tier, tmp_path):
    env = make_env(tmp_path, names=())
    tier = weed_tier(lock=True)
    env.tiers["hot"] = tier
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=400)
    holds = HoldManager(env.conn, env.tiers, hash_key=KEY)
    job = RetentionJob(env.conn, env.tiers, CLASSES, holds)
    h = holds.add("call", "c", "litigation", "alice", now=NOW)
    info = tier.stat(key)
    assert info is not None and info.legal_hold is True
    res = job.apply(NOW, "cron")
    assert res.disposed == [] and "litigation" in res.refused[0].reason
    holds.remove(h["hold_id"], "alice", now=NOW)
    assert tier.stat(key).legal_hold is False
    assert job.apply(NOW, "cron").disposed == ["r"]
    assert tier.stat(key) is None and list(tier.list("2027/")) == []
