"""A recording is several stored objects (audio, legs, kept original, manifest sidecar):
the shipper lists them in ``recordings.objects`` and every lifecycle job acts on all of them."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from lifecycle_support import CLASSES, KEY, NOW

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.naming import storage_key
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import copies, open_catalog
from pbx_recorder.lifecycle.migration import Migrator, Target
from pbx_recorder.lifecycle.policy import DAY
from pbx_recorder.lifecycle.retention_jobs import RetentionJob
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.recording_objects import objects_of
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.spool import Spool
from pbx_recorder.recording.verify import Verifier
from storage.envelope import EncryptStage, decrypt_stream
from storage.keyring import KeyRing
from storage.local import LocalTier
from storage.transcode import Transcoder

CALL = "n1_1700000000.1"
RID = CALL + "_call001"
NUMBER = "+15558675309"
RX, TX = b"RIFFrx" + b"\x01" * 3000, b"RIFFtx" + b"\x02" * 2000


class Setup:
    def __init__(self, tmp_path, stages=()):
        self.tmp = tmp_path
        self.db = tmp_path / "cat.db"
        self.catalog = Catalog(self.db, clock=lambda: NOW)
        self.spool = Spool(tmp_path / "spool")
        self.tiers = {n: LocalTier(n, tmp_path / "tiers" / n) for n in ("hot", "cold")}
        self.shipper = Shipper(self.spool, self.catalog, lambda region: self.tiers["hot"],
                               prepare_stages=stages)

    def spool_dual(self, rid=RID):
        mon = self.tmp / "mon" / rid
        mon.mkdir(parents=True)
        (mon / "a-rx.wav").write_bytes(RX)
        (mon / "a-tx.wav").write_bytes(TX)
        m = Manifest(recording_id=rid, call_id=CALL, mode="dual", recorded_from=1700000000.0,
                     created_at=1700000100.0, cdr={"src": NUMBER, "dst": "200"},
                     files=(ManifestFile("a-rx.wav", 0, "", 2.0, role="read"),
                            ManifestFile("a-tx.wav", 0, "", 2.0, role="write")))
        self.spool.spool_recording(rid, [mon / "a-rx.wav", mon / "a-tx.wav"], m)

    def ship_dual(self, rid=RID):
        self.catalog.upsert_call({"call_id": CALL, "caller_num": NUMBER, "callee_num": "200"})
        self.spool_dual(rid)
        assert self.shipper.ship_once().shipped == [rid]
        return self.catalog.get_recording(rid)

    def keys(self, tier):
        return sorted(o.key for o in self.tiers[tier].list())

    def conn(self):
        return open_catalog(self.db)


def test_shipper_lists_every_object_and_the_sidecar_holds_the_number(tmp_path):
    s = Setup(tmp_path)
    row = s.ship_dual()
    roles = {o["role"]: o for o in row["objects"]}
    assert sorted(roles) == ["audio", "leg:write", "manifest"]
    assert roles["audio"]["key"] == row["storage_key"] and roles["audio"]["sha256"] == row["sha256"]
    assert roles["leg:write"]["sha256"] == hashlib.sha256(TX).hexdigest()
    assert roles["leg:write"]["size"] == len(TX) and roles["leg:write"]["key"].endswith(f"{RID}-write.wav")
    assert roles["manifest"]["key"] == row["storage_key"][: -len("wav")] + "json"
    assert s.keys("hot") == sorted(o["key"] for o in row["objects"])
    assert NUMBER in s.tiers["hot"].path_for(roles["manifest"]["key"]).read_text()  # why it must go too


def test_erase_by_caller_removes_every_object_on_every_tier(tmp_path):
    s = Setup(tmp_path)
    row = s.ship_dual()
    leg = next(o["key"] for o in row["objects"] if o["role"] == "leg:write")
    s.tiers["cold"].put(leg, s.tiers["hot"].path_for(leg))  # a stray copy left on another tier
    conn = s.conn()
    holds = HoldManager(conn, s.tiers, hash_key=KEY)
    receipt = Eraser(conn, s.tiers, hash_key=KEY, holds=holds).erase(caller=NUMBER, actor="dpo", now=NOW)
    assert receipt["status"] == "done" and receipt["recordings_erased"] == 1
    assert receipt["recording_objects_erased"] == 3 and receipt["objects_deleted"] == 4
    assert receipt["objects"][0]["roles"] == ["audio", "leg:write", "manifest"]
    assert s.keys("hot") == [] and s.keys("cold") == []
    assert NUMBER not in json.dumps(receipt)


def test_retention_apply_removes_every_object(tmp_path):
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    conn.execute("UPDATE recordings SET retention_class='short', created_at=?, retain_until=?",
                 (NOW - 100 * DAY, NOW - 90 * DAY))
    job = RetentionJob(conn, s.tiers, CLASSES, HoldManager(conn, s.tiers, hash_key=KEY))
    assert job.apply(NOW, "cron").disposed == [RID]
    assert s.keys("hot") == [] and s.keys("cold") == []
    payload = json.loads(conn.execute("SELECT payload FROM ledger WHERE event='deleted'").fetchone()[0])
    assert payload["versions"] == 3 and payload["objects"] == 3


def make_due(conn):
    conn.execute("UPDATE recordings SET retention_class='standard', created_at=?", (NOW - 40 * DAY,))


def copying_while(tmp_path, meanwhile):
    """A shipped recording due for cold and a migrator whose copy runs ``meanwhile(setup)`` once
    its objects are on cold, before the switch: (setup, its connection, the migrator)."""
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    make_due(conn)
    m = Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES)
    real_copy = m._copy

    def copy_then(rec, t):
        copied = real_copy(rec, t)
        meanwhile(s)
        return copied

    m._copy = copy_then  # type: ignore[method-assign]
    return s, conn, m


def test_migration_moves_all_objects_and_updates_the_list(tmp_path):
    s = Setup(tmp_path)
    before = s.ship_dual()
    conn = s.conn()
    make_due(conn)
    prog = Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    assert prog.done == 1 and prog.bytes == sum(o["size"] for o in before["objects"])
    row = s.catalog.get_recording(RID)
    assert row["tier"] == "cold" and s.keys("hot") == []
    assert s.keys("cold") == sorted(o["key"] for o in row["objects"])
    pairs = [(o["key"], o["sha256"]) for o in row["objects"]]
    assert pairs == [(o["key"], o["sha256"]) for o in before["objects"]]
    assert all(s.tiers["cold"].verify(o["key"], o["sha256"]) for o in row["objects"])


@pytest.mark.parametrize("batch", [False, True])  # capacity relief's migrate_one; the batched run
def test_a_recording_disposed_of_while_it_is_copied_is_not_brought_back(tmp_path, batch):
    """Retention disposes of the recording (hot objects deleted, row kept 'expired') while a
    migration copies it to cold: the copy is dropped, the row stays expired.  Before, the switch
    set it 'migrated' on the cold tier, a copy outliving a certified disposal."""

    def retention_runs(s):
        other = s.conn()
        other.execute("UPDATE recordings SET retention_class='short', retain_until=?", (NOW - 90 * DAY,))
        assert RetentionJob(other, s.tiers, CLASSES, HoldManager(other, s.tiers, hash_key=KEY)
                            ).apply(NOW, "cron").disposed == [RID]

    s, conn, m = copying_while(tmp_path, retention_runs)
    if batch:
        assert m.run(NOW).done == 0
    else:
        assert m.migrate_one(s.catalog.get_recording(RID), NOW) is False
    row = s.catalog.get_recording(RID)
    assert row["state"] == "expired" and row["tier"] == "hot"
    assert s.keys("cold") == [] and s.keys("hot") == []
    events = [r[0] for r in conn.execute("SELECT event FROM ledger WHERE recording_id=? ORDER BY seq",
                                         (RID,))]
    assert "migrated" not in events


def test_the_same_move_finished_by_another_run_keeps_its_copy(tmp_path):
    """Two runs copy the same recording to cold; the other switches first: this run's switch
    fails its compare-and-set and must not drop the objects (they are the other run's copy)."""

    def another_run_moves_it(s):
        other = s.conn()
        assert Migrator(other, s.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW).done == 1

    s, _, m = copying_while(tmp_path, another_run_moves_it)
    rec = s.catalog.get_recording(RID)
    assert m.migrate_one(rec, NOW) is False
    row = s.catalog.get_recording(RID)
    assert row["state"] == "migrated" and row["tier"] == "cold"
    assert s.keys("cold") == sorted(o["key"] for o in row["objects"]) and s.keys("hot") == []
    assert all(s.tiers["cold"].verify(o["key"], o["sha256"]) for o in row["objects"])


def test_a_cold_tier_that_is_the_hot_folder_is_refused_and_nothing_is_deleted(tmp_path):
    """The cold tier's folder is a symlink to the hot one (a bind mount alike; the config check
    compares the paths it was given): the copy would be the source itself, deleted after the
    switch.  The move is refused and the recording stays where it was."""
    s = Setup(tmp_path)
    before = s.ship_dual()
    conn = s.conn()
    make_due(conn)
    alias = tmp_path / "alias-of-hot"
    alias.symlink_to(s.tiers["hot"].root)
    s.tiers["cold"] = LocalTier("cold", alias)
    prog = Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    assert prog.done == 0 and prog.failed == 1 and "one location" in prog.errors[0]
    row = s.catalog.get_recording(RID)
    assert row["tier"] == "hot" and row["state"] == before["state"]
    assert all(s.tiers["hot"].verify(o["key"], o["sha256"]) for o in row["objects"])


def test_a_hold_placed_while_a_recording_is_copied_leaves_it_where_it_was(tmp_path):
    """The copy carries the hold flag read before it; a hold placed meanwhile fails the switch's
    compare-and-set: the copy is dropped and the next run copies it with the hold."""
    s, _, m = copying_while(tmp_path, lambda s: HoldManager(s.conn(), s.tiers, hash_key=KEY).add(
        "call", CALL, "counsel", "court order", now=NOW))
    assert m.migrate_one(s.catalog.get_recording(RID), NOW) is False
    row = s.catalog.get_recording(RID)
    assert row["tier"] == "hot" and row["legal_hold"] and s.keys("cold") == []
    assert all(s.tiers["hot"].verify(o["key"], o["sha256"]) for o in row["objects"])


def test_two_s3_tiers_on_one_bucket_under_other_endpoint_spellings_are_refused(tmp_path):
    """``http://minio:9000`` and ``http://minio:9000/`` (or a region given on one only) may be one
    bucket: a copy onto itself, then the source delete of every version: refused."""
    from types import SimpleNamespace

    from pbx_recorder.lifecycle.migration import may_be_one_location, same_location

    def s3(name, endpoint):
        return SimpleNamespace(name=name, bucket="recordings", prefix="pbx/",
                               client=SimpleNamespace(meta=SimpleNamespace(endpoint_url=endpoint)))

    a, b = s3("hot", "http://minio:9000"), s3("cold", "http://MINIO:9000/")
    assert same_location(a, b)  # the same endpoint written two ways: a storage-class change
    c = s3("cold", "https://s3.eu-west-1.amazonaws.com")
    assert not same_location(a, c) and may_be_one_location(a, c)
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    make_due(conn)
    tiers = {"hot": s.tiers["hot"], "cold": c}
    m = Migrator(conn, tiers, default=Target("hot", "cold"), classes=CLASSES)
    m._tier = lambda name: a if name == "hot" else c  # type: ignore[method-assign]
    prog = m.run(NOW)
    assert prog.done == 0 and prog.failed == 1 and "may be) one location" in prog.errors[0]
    assert s.catalog.get_recording(RID)["tier"] == "hot"


def test_migration_crash_between_copies_resumes(tmp_path, monkeypatch):
    s = Setup(tmp_path)
    row = s.ship_dual()
    conn = s.conn()
    make_due(conn)
    cold, real_put, puts = s.tiers["cold"], s.tiers["cold"].put, []

    def crash_on_second(key, source, **kw):
        puts.append(key)
        if len(puts) == 2:
            raise KeyboardInterrupt("simulated crash between two objects")
        return real_put(key, source, **kw)

    monkeypatch.setattr(cold, "put", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    monkeypatch.undo()
    assert s.catalog.get_recording(RID)["tier"] == "hot" and len(s.keys("cold")) == 1
    assert s.keys("hot") == sorted(o["key"] for o in row["objects"])  # source intact
    # the partial destination copy is known to erasure/retention through the journal
    assert ("cold", puts[0]) in copies(conn, s.tiers, s.catalog.get_recording(RID))
    prog = Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES).run(NOW)
    assert prog.done == 1 and s.keys("hot") == []
    assert s.keys("cold") == sorted(o["key"] for o in row["objects"])
    assert conn.execute("SELECT COUNT(*) FROM lifecycle_moves").fetchone()[0] == 0


def test_migration_resume_after_switch_deletes_every_source_object(tmp_path, monkeypatch):
    s = Setup(tmp_path)
    s.ship_dual()
    conn = s.conn()
    make_due(conn)
    m = Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES)
    monkeypatch.setattr(m, "_delete_source", lambda move, prog=None: None)
    m.run(NOW)
    assert len(s.keys("hot")) == 3 and len(s.keys("cold")) == 3
    assert Migrator(conn, s.tiers, default=Target("hot", "cold"), classes=CLASSES).resume(NOW) == 1
    assert s.keys("hot") == [] and len(s.keys("cold")) == 3


def test_keep_original_is_stored_and_listed(tmp_path):
    s = Setup(tmp_path, stages=[Transcoder("flac", keep_original=True)])
    mon = tmp_path / "mon"
    mon.mkdir()
    wav = mon / "a.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "1.5", "sine",
                    "440"], check=True)
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    m = Manifest(recording_id=RID, call_id=CALL, recorded_from=1700000000.0, created_at=1700000100.0,
                 files=(ManifestFile("a.wav", 0, "", 1.5),))
    s.spool.spool_recording(RID, [wav], m)
    assert s.shipper.ship_once().shipped == [RID]
    row = s.catalog.get_recording(RID)
    roles = {o["role"]: o for o in row["objects"]}
    assert sorted(roles) == ["audio", "manifest", "original"]
    assert row["storage_key"].endswith(".flac")
    assert roles["original"]["key"] == storage_key(CALL, RID + "-original", 1700000000.0, "wav")
    assert roles["original"]["sha256"] == sha == row["audio_sha256"]
    assert s.tiers["hot"].verify(roles["original"]["key"], sha)
    assert s.spool.pending() == []  # the spool entry is gone, the original is not
    assert s.keys("hot") == sorted(o["key"] for o in row["objects"])


def test_an_original_not_kept_is_transcoded_again_when_the_first_ship_fails(tmp_path):
    """``keep_original: false``: the tier is down at the first try; the retry finds the original
    still in the spool entry (the stage deleted it: the retry failed in sox for good) and stores
    the FLAC and the manifest only."""
    from pbx_recorder.errors import TierUnavailable

    s = Setup(tmp_path, stages=[Transcoder("flac", keep_original=False)])
    s.shipper.backoff_base_s = 0.0
    mon = tmp_path / "mon"
    mon.mkdir()
    wav = mon / "a.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "1.5", "sine",
                    "440"], check=True)
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    m = Manifest(recording_id=RID, call_id=CALL, recorded_from=1700000000.0, created_at=1700000100.0,
                 files=(ManifestFile("a.wav", 0, "", 1.5),))
    s.spool.spool_recording(RID, [wav], m)
    hot = s.tiers["hot"]
    real_put = hot.put
    calls = []

    def down_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise TierUnavailable("tier down")
        return real_put(*args, **kwargs)

    hot.put = down_once  # type: ignore[method-assign]
    assert s.shipper.ship_once().retrying == [RID]
    assert s.shipper.ship_once().shipped == [RID]
    row = s.catalog.get_recording(RID)
    assert sorted(o["role"] for o in row["objects"]) == ["audio", "manifest"]  # the original not stored
    assert row["storage_key"].endswith(".flac") and row["audio_sha256"] == sha
    assert s.spool.pending() == []  # the entry (the original with it) removed once stored


def test_verify_names_a_missing_leg(tmp_path):
    s = Setup(tmp_path)
    row = s.ship_dual()
    conn = s.conn()
    assert not any("leg" in m.what for m in Verifier(conn, s.tiers, deep=True).run().mismatches)
    leg = next(o["key"] for o in row["objects"] if o["role"] == "leg:write")
    s.tiers["hot"].delete(leg)
    found = [m for m in Verifier(conn, s.tiers).run().mismatches if "leg:write" in m.what]
    assert len(found) == 1 and found[0].what == "leg:write object missing" and leg in found[0].expected


def test_fallback_for_rows_without_objects_derives_exact_keys():
    key = storage_key(CALL, RID, 1700000000.0, "wav", "eu")
    row = {"recording_id": RID, "storage_key": key, "sha256": "ab", "objects": "[]",
           "manifest": {"files": [{"role": "read"}, {"role": "write"}]}}
    got = objects_of(row)
    assert got[0] == ("audio", key, "ab")
    assert {o.role: o.key for o in got[1:]} == {
        "leg:write": storage_key(CALL, RID + "-write", 1700000000.0, "wav", "eu"),
        "manifest": storage_key(CALL, RID, 1700000000.0, "json", "eu"),
    }
    # a key that is not this recording's own stem, or not a naming key: the primary only
    assert objects_of({**row, "recording_id": RID + "0"}) == [("audio", key, "ab")]
    assert objects_of({"recording_id": "r", "storage_key": "2027/01/c/r.wav", "sha256": ""}) == [
        ("audio", "2027/01/c/r.wav", "")
    ]


def test_kept_original_goes_through_the_later_stages_too(tmp_path):
    """With encryption after transcoding the original is stored encrypted, never in clear."""
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    s = Setup(tmp_path, stages=[Transcoder("flac", keep_original=True), EncryptStage(ring, "k1")])
    mon = tmp_path / "mon"
    mon.mkdir()
    wav = mon / "a.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "1.0", "sine",
                    "440"], check=True)
    clear = wav.read_bytes()
    m = Manifest(recording_id=RID, call_id=CALL, recorded_from=1700000000.0, created_at=1700000100.0,
                 files=(ManifestFile("a.wav", 0, "", 1.0),))
    s.spool.spool_recording(RID, [wav], m)
    assert s.shipper.ship_once().shipped == [RID]
    row = s.catalog.get_recording(RID)
    original = next(o for o in row["objects"] if o["role"] == "original")
    assert original["key"] == storage_key(CALL, RID + "-original", 1700000000.0, "pbxr")
    stored = s.tiers["hot"].path_for(original["key"]).read_bytes()
    assert clear[:64] not in stored and hashlib.sha256(stored).hexdigest() == original["sha256"]
    digest, _ = decrypt_stream(s.tiers["hot"].path_for(original["key"]), tmp_path / "out.wav", ring,
                               wrapped_key=row["wrapped_key"], key_id=row["key_id"])
    assert digest == hashlib.sha256(clear).hexdigest() == row["audio_sha256"]
