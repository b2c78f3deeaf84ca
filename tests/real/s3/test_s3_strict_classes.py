"""Storage classes on strict servers (moto, SeaweedFS): a class only a bucket lifecycle rule
reaches, a delete marker a transition leaves on a versioned bucket, configurable archive
classes, and restore / get messages that name the object's own class.

moto and SeaweedFS refuse a PUT into a class they do not know with ``InvalidStorageClass``
(400); Ceph RGW (Debian's 16) with ``InvalidArgument`` and no message, as RGW 20 refuses a
direct write into its cloud-tier class.  The tests play the bucket's lifecycle engine where
the server has none here (an in-place copy into the class, and on a versioned bucket the
delete marker RGW's cloud transition leaves: RGW 16 has no cloud tier).
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit"))  # lifecycle_support

from lifecycle_support import CLASSES, NOW, add_call, add_recording, make_env, rec  # noqa: E402

from pbx_recorder.errors import NotFound, ObjectNotRestored, StorageRefused  # noqa: E402
from pbx_recorder.lifecycle import access, transitions  # noqa: E402
from pbx_recorder.lifecycle.migration import Migrator, Target  # noqa: E402
from pbx_recorder.recording.recording_objects import version_of  # noqa: E402

pytestmark = pytest.mark.real
RULE_CLASS = "COLD-TIER"  # admin-named, like an RGW cloud-tier class: no server here takes a PUT into it


def _migrate(env, cold) -> tuple:
    env.tiers["cold"] = cold
    add_call(env, "c")
    key = add_recording(env, "c", "r", age_days=40)
    prog = Migrator(env.conn, env.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    return prog, key


def _transition(tier, key: str, storage_class: str, *, marker: bool = False) -> None:
    """What a bucket lifecycle rule does: the object's version moves to ``storage_class`` (here
    a copy replaces it); a transition that leaves a delete marker on a versioned bucket puts one
    over the moved version."""
    full = tier.full_key(key)
    old = tier.client.head_object(Bucket=tier.bucket, Key=full).get("VersionId")
    tier.client.copy_object(Bucket=tier.bucket, Key=full, CopySource={"Bucket": tier.bucket, "Key": full},
                            StorageClass=storage_class, MetadataDirective="COPY")
    if old:
        tier.client.delete_object(Bucket=tier.bucket, Key=full, VersionId=old)
    if marker:
        tier.client.delete_object(Bucket=tier.bucket, Key=full)


@pytest.mark.parametrize(("server", "code"), [
    ("moto", "InvalidStorageClass (HTTP 400): The storage class"),
    ("rgw", "InvalidArgument (HTTP 400): the server sent no message"),
])
def test_a_direct_write_into_a_rule_only_class_is_refused_for_good(server, code, request, tmp_path) -> None:
    factory = request.getfixturevalue(f"{server}_tier")
    env = make_env(tmp_path, names=("hot",))
    prog, key = _migrate(env, factory(lock=False, storage_class=RULE_CLASS))
    assert prog.done == 0 and prog.failed == 1
    assert code in prog.errors[0]
    assert f"StorageClass={RULE_CLASS}" in prog.errors[0]
    with pytest.raises(StorageRefused, match="not retried"):
        factory(lock=False, storage_class=RULE_CLASS).put("x.wav", io.BytesIO(b"x"))
    assert rec(env, "r")["tier"] == "hot" and env.tiers["hot"].stat(key) is not None


@pytest.mark.parametrize("server", ["moto", "weed", "rgw"])
def test_lifecycle_mode_leaves_the_class_to_the_bucket_rule(server, request, tmp_path) -> None:
    env = make_env(tmp_path, names=("hot",))
    cold = request.getfixturevalue(f"{server}_tier")(lock=False, storage_class=RULE_CLASS,
                                                     class_transition="lifecycle")
    prog, key = _migrate(env, cold)
    assert prog.done == 1, prog.errors
    r = rec(env, "r")
    assert r["tier"] == "cold" and cold.stat(key).storage_class == "STANDARD"
    assert version_of(r, key)  # versioned bucket: the version stored is recorded
    out = tmp_path / "out.wav"
    assert access.download(env.conn, r, env.tiers, out, actor="t", role="auditor", now=NOW) == r["sha256"]


def _rule_tier(moto_tier):
    cold = moto_tier(lock=False, storage_class="DEEP_ARCHIVE", class_transition="lifecycle",
                     archive_classes=["DEEP_ARCHIVE"])
    report = cold.probe()
    assert report.ok and "has no lifecycle rule" in report.warnings[0]
    cold.client.put_bucket_lifecycle_configuration(Bucket=cold.bucket, LifecycleConfiguration={"Rules": [{
        "ID": "cold", "Status": "Enabled", "Filter": {"Prefix": "rec/"},
        "Transitions": [{"Days": 30, "StorageClass": "DEEP_ARCHIVE"}]}]})
    report = cold.probe()
    assert report.ok and report.warnings == []
    return cold


def test_the_catalog_follows_the_rule_then_restore_and_get(moto_tier, tmp_path) -> None:
    env = make_env(tmp_path, names=("hot",))
    cold = _rule_tier(moto_tier)
    prog, key = _migrate(env, cold)
    assert prog.done == 1, prog.errors
    _transition(cold, key, "DEEP_ARCHIVE")
    assert transitions.follow(env.conn, env.tiers) == ["r: STANDARD -> DEEP_ARCHIVE"]
    assert transitions.follow(env.conn, env.tiers) == []  # nothing new
    r = rec(env, "r")
    out = tmp_path / "out.wav"
    with pytest.raises(ObjectNotRestored, match="archive class DEEP_ARCHIVE"):
        access.download(env.conn, r, env.tiers, out, actor="t", role="auditor", now=NOW)
    assert access.restore(env.conn, r, env.tiers) in ("in_progress", "done")
    assert access.restore(env.conn, r, env.tiers) == "done"  # this server finishes restores at once
    assert access.download(env.conn, r, env.tiers, out, actor="t", role="auditor", now=NOW) == r["sha256"]


def test_the_catalog_follows_through_a_delete_marker(moto_tier, tmp_path) -> None:
    env = make_env(tmp_path, names=("hot",))
    cold = _rule_tier(moto_tier)
    prog, key = _migrate(env, cold)
    assert prog.done == 1, prog.errors
    _transition(cold, key, "DEEP_ARCHIVE", marker=True)  # the current version is now a delete marker
    assert transitions.follow(env.conn, env.tiers) == ["r: STANDARD -> DEEP_ARCHIVE"]
    with pytest.raises(ObjectNotRestored, match="archive class DEEP_ARCHIVE") as caught:
        access.download(env.conn, rec(env, "r"), env.tiers, tmp_path / "o.wav", actor="t", role="auditor",
                        now=NOW)
    assert "no such object" not in str(caught.value)


@pytest.mark.parametrize("server", ["moto", "weed", "rgw"])
def test_a_delete_marker_over_the_recording_is_seen_through(server, request) -> None:
    tier = request.getfixturevalue(f"{server}_tier")(lock=False)
    data = b"call audio" * 500
    digest = hashlib.sha256(data).hexdigest()
    stored = tier.put("2027/r.wav", io.BytesIO(data), sha256=digest)
    assert stored.version_id
    tier.put("2027/other.wav", io.BytesIO(b"x"))
    tier.client.delete_object(Bucket=tier.bucket, Key=tier.full_key("2027/r.wav"))  # the transition's marker
    info = tier.stat("2027/r.wav")
    assert info is not None and info.size == len(data) and info.sha256 == digest
    assert tier.open("2027/r.wav").read() == data
    assert tier.verify("2027/r.wav", digest, stored.version_id)
    assert tier.restore("2027/r.wav", version_id=stored.version_id) in ("", "done")  # readable class
    assert tier.delete("2027/r.wav") >= 2  # every version and the marker
    assert tier.stat("2027/r.wav") is None
    with pytest.raises(NotFound):
        tier.open("2027/r.wav")


def test_get_names_the_objects_class_not_the_catalogs(moto_tier, tmp_path) -> None:
    env = make_env(tmp_path, names=("hot",))
    cold = moto_tier(lock=False, storage_class="DEEP_ARCHIVE")
    prog, _key = _migrate(env, cold)
    assert prog.done == 1 and rec(env, "r")["storage_class"] == "DEEP_ARCHIVE"
    env.conn.execute("UPDATE recordings SET storage_class='GLACIER'")  # the catalog's word is stale
    with pytest.raises(ObjectNotRestored) as caught:
        access.download(env.conn, rec(env, "r"), env.tiers, tmp_path / "o.wav", actor="t", role="auditor",
                        now=NOW)
    assert "archive class DEEP_ARCHIVE" in str(caught.value) and "GLACIER" not in str(caught.value)


def test_restore_of_a_readable_class_says_so(moto_tier, tmp_path) -> None:
    """An admin listed STANDARD_IA as an archive class, the server refuses a restore of it
    (InvalidObjectState) yet serves it: restore is not needed, and says which class it is."""
    tier = moto_tier(lock=False, archive_classes=["GLACIER", "STANDARD_IA"])
    assert tier.is_archive_class("standard_ia") and not tier.is_archive_class("STANDARD")
    tier.put("ia.wav", io.BytesIO(b"readable"), options=_cls("STANDARD_IA"))
    assert tier.restore("ia.wav") == ""
    env = make_env(tmp_path, names=())
    env.tiers["cold"] = tier
    add_call(env, "c")
    env.conn.execute("INSERT INTO recordings (recording_id, call_id, state, sha256, tier, storage_key,"
                     " storage_class, created_at)"
                     " VALUES ('r','c','migrated','x','cold','ia.wav','GLACIER',?)", (NOW,))
    assert access.restore(env.conn, rec(env, "r"), env.tiers) == ""
    assert access.object_class(rec(env, "r"), env.tiers) == "STANDARD_IA"


def _cls(name: str):
    from storage.base import PutOptions

    return PutOptions(storage_class=name)
