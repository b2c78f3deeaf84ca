"""A compliance review's attacks on legal holds and retention (insider with write access to the
catalog, not the signing key), each now refused, withheld or reported by ``verify``:

1. an edited ``retain_until`` (or class) made retention dispose of a recording early;
2. an edited, deleted or inserted ``holds`` row unprotected recordings stored after the hold;
3. a query hold did not cover recordings stored after it, and a hold placed during a long
   erasure or retention run did not stop the deletions after it;
4. a query hold kept the phone number in clear.

Runs on SQLite and, with ``PBXR_TEST_CATALOG=postgresql``, on PostgreSQL (every catalog opened
through ``engine.connect``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tamper_support import CALLER, NOW, Deployment

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.catalog.number_keys import protection_for
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.config import load_config
from pbx_recorder.config.storage import MIN_RETENTION_DAYS
from pbx_recorder.core import retention
from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle import policy
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.lifecycle.retention_jobs import RetentionJob
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.verify_bindings import expectation_of, row_binding

DAY = 86400.0


class Protected(Deployment):
    """The tamper deployment with the catalog's numbers encrypted and blind-indexed (as the
    daemon runs it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.catalog.close()
        self.numbers = protection_for(load_config(root / "cfg.yaml", env={}))
        self.catalog = Catalog(root / "cat.db", clock=lambda: NOW,
                               sealer=CallSealer(self.sign_key, reveal=self.numbers.open_call),
                               numbers=self.numbers)
        self.shipper.catalog = self.catalog
        protect(self.catalog._conn(), self.numbers)

    def record_class(self, call_id: str, cls: str, *, created_at: float) -> str:
        """A recording stored with retention class ``cls`` (the manifest's, as the pipeline writes it)."""
        rid = f"{call_id}_call001"
        src = self.root / "mon" / f"{rid}.wav"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(os.urandom(6000))
        m = Manifest(recording_id=rid, call_id=call_id, recorded_from=created_at, created_at=created_at,
                     retention_class=cls, cdr={"src": CALLER, "dst": "4930123456"},
                     files=(ManifestFile(src.name, 0, "", 2.0),))
        self.spool.spool_recording(rid, [src], m)
        assert rid in self.shipper.ship_once().shipped
        return rid

    def conn(self):
        return open_catalog(self.root / "cat.db")

    def hash_key(self) -> bytes:
        return read_hash_key(self.root / "hash.key")

    def classes(self):
        return policy.classes_from_config(load_config(self.root / "cfg.yaml", env={}).retention.classes)

    def holds(self, conn) -> HoldManager:
        return HoldManager(conn, {"hot": self.tier}, hash_key=self.hash_key(), numbers=self.numbers)

    def row(self, rid: str):
        return self.catalog.get_recording(rid)


@pytest.fixture()
def dep(tmp_path):
    d = Protected(tmp_path)
    yield d
    d.close()
    engine.close_pools()


def _erase(dep, capsys, *args):
    code, out = dep.cli(capsys, "erase", *args)
    return code, (json.loads(out[out.index("{"):]) if "{" in out else out)


# -- 1. retention: an explicit end only extends; the class is bound by the ledger ----------------
def test_core_an_explicit_end_never_shortens_the_class_period():
    classes = {"finance": retention.ClassPolicy("finance", 1095)}
    rec = {"recording_id": "r", "call_id": "c", "created_at": NOW, "retention_class": "finance",
           "retain_until": 1.0, "state": "verified"}
    assert retention.effective_until(rec, classes, NOW) == NOW + 1095 * DAY
    assert retention.disposal_candidates([rec], [], NOW + 270 * DAY, classes) == []
    longer = {**rec, "retain_until": NOW + 2000 * DAY}  # extending is allowed
    assert retention.effective_until(longer, classes, NOW) == NOW + 2000 * DAY
    unknown = {**rec, "retention_class": "renamed"}  # an unknown class: the configured minimum
    assert retention.effective_until(unknown, classes, NOW) == NOW + MIN_RETENTION_DAYS * DAY
    assert retention.MIN_RETENTION_DAYS == MIN_RETENTION_DAYS


def test_an_edited_retain_until_does_not_dispose_early_and_verify_reports_it(dep, capsys):
    dep.call("n1_1.1", retention_class="finance")
    rid = dep.record_class("n1_1.1", "finance", created_at=NOW)
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql("UPDATE recordings SET retain_until=1.0")  # the insider's one edit
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "retain_until differs from the ledger" in out
    conn = dep.conn()
    job = RetentionJob(conn, {"hot": dep.tier}, dep.classes(), dep.holds(conn))
    result = job.apply(NOW + 270 * DAY, "cron")  # nine months on: 1095 days not over
    assert result.disposed == [] and dep.row(rid)["state"] == "verified"
    assert job.apply(NOW + 1096 * DAY, "cron").disposed == [rid]  # its class period still ends
    conn.close()


def test_an_edited_created_at_does_not_dispose_early_and_verify_reports_it(dep, capsys):
    """The class's period counts from ``created_at``, a plain column: moved two thousand days back,
    the hourly ``retention apply`` destroyed a finance recording a day after it was stored, and
    verify said nothing (session-45 review).  The ``stored`` ledger entry and the signed manifest
    now record it: retention refuses the disposal, verify names the row."""
    dep.call("n1_1.1", retention_class="finance")
    rid = dep.record_class("n1_1.1", "finance", created_at=NOW)
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql(f"UPDATE recordings SET created_at={NOW - 2000 * DAY}")  # the insider's one edit
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "row created_at differs from the ledger" in out
    assert "row created_at differs from its signed manifest" in out
    conn = dep.conn()
    job = RetentionJob(conn, {"hot": dep.tier}, dep.classes(), dep.holds(conn))
    result = job.apply(NOW + DAY, "cron")
    assert result.disposed == [] and dep.row(rid)["state"] == "verified"
    assert [d.recording_id for d in result.refused] == [rid] and "created_at" in result.refused[0].reason
    conn.close()


def test_a_created_at_moved_later_only_keeps_the_recording_longer(dep, capsys):
    dep.call("n1_1.1", retention_class="finance")
    rid = dep.record_class("n1_1.1", "finance", created_at=NOW)
    dep.sql(f"UPDATE recordings SET created_at={NOW + 10 * DAY}")
    assert "row created_at differs from the ledger" in dep.cli(capsys, "verify")[1]
    conn = dep.conn()
    job = RetentionJob(conn, {"hot": dep.tier}, dep.classes(), dep.holds(conn))
    assert job.apply(NOW + 1096 * DAY, "cron").disposed == []  # (its period counts from the later time)
    assert job.apply(NOW + 1106 * DAY, "cron").disposed == [rid]
    conn.close()


def test_a_class_edited_by_hand_is_reported_by_verify(dep, capsys):
    dep.call("n1_1.1")
    dep.record_class("n1_1.1", "finance", created_at=NOW)
    dep.sql("UPDATE recordings SET retention_class='standard'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "retention_class differs from the ledger" in out


def test_set_class_is_in_the_ledger_and_binds_the_new_end(dep, capsys):
    dep.call("n1_1.1")
    rid = dep.record_class("n1_1.1", "standard", created_at=NOW)
    code, out = dep.cli(capsys, "retention", "set-class", "n1_1.1", "finance")
    assert code == 0, out
    conn = dep.conn()
    events = [r[0] for r in conn.execute("SELECT event FROM ledger WHERE recording_id=? ORDER BY seq",
                                         (rid,))]
    conn.close()
    assert events[-1] == "reclassed"
    assert dep.cli(capsys, "verify")[0] == 0
    assert dep.cli(capsys, "ledger", "verify")[0] == 0
    dep.sql("UPDATE recordings SET retain_until=retain_until - 900 * 86400")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "retain_until differs from the ledger" in out


def test_a_row_stored_before_the_class_was_in_the_ledger_is_not_reported():
    old_stored = [("stored", json.dumps({"tier": "hot", "key": "k", "sha256": "", "size": 1}))]
    row = {"recording_id": "r", "call_id": "c", "retention_class": "anything", "retain_until": 5.0}
    assert not [m for m in row_binding(row, expectation_of(old_stored)) if "retention" in m[0]
                or "retain_until" in m[0]]


# -- 2. holds are in the ledger; verify and deletions hold the table to it ------------------------
def test_a_recording_stored_under_a_caller_hold_is_held_by_its_own_row(dep, capsys):
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    assert dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "litigation 42")[0] == 0
    dep.call("n1_2.2", started_at=NOW - 30)
    r2 = dep.record("n1_2.2")  # a later call of the held subject
    assert dep.row(r2)["legal_hold"]
    conn = dep.conn()
    held = [json.loads(p) for (p,) in conn.execute(
        "SELECT payload FROM ledger WHERE recording_id=? AND event='held'", (r2,))]
    conn.close()
    assert held and held[0]["at_store"] is True
    assert dep.cli(capsys, "verify")[0] == 0


def test_an_edited_hold_row_is_reported_and_no_recording_is_erased(dep, capsys):
    dep.call("n1_1.1")
    r1 = dep.record("n1_1.1")
    dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "litigation 42")
    dep.call("n1_2.2", started_at=NOW - 30)
    r2 = dep.record("n1_2.2")
    dep.sql("UPDATE holds SET value='hmac-sha256:' || substr(value, 13, 10) || 'deadbeef', value4='x'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "hold value differs from the ledger" in out
    code, receipt = _erase(dep, capsys, "--caller", CALLER)
    # both held by their own rows (r2 since it was stored): withheld before the table is consulted
    assert receipt["objects"] == [] and {w["recording_id"] for w in receipt["withheld"]} == {r1, r2}
    assert dep.row(r1)["state"] == "verified" and dep.row(r2)["state"] == "verified"
    dep.sql("UPDATE recordings SET legal_hold=0", "DELETE FROM hold_recordings")  # the table's hold alone
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code != 0 and "no recording is deleted until the holds table agrees" in out
    assert dep.row(r1)["state"] == "verified" and dep.row(r2)["state"] == "verified"


def test_a_hold_row_deleted_after_a_hold_on_a_subject_without_calls_is_reported_and_refused(dep, capsys):
    dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "litigation 42")  # no call yet
    dep.call("n1_2.2")
    r2 = dep.record_class("n1_2.2", "standard", created_at=NOW - 400 * DAY)  # due by its class
    dep.sql("DELETE FROM holds")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "has no holds row (removed)" in out
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code != 0 and "no recording is deleted until the holds table agrees" in out
    assert dep.row(r2)["state"] == "verified"
    dep.sql("UPDATE recordings SET legal_hold=0")
    conn = dep.conn()
    with pytest.raises(PolicyRefusal):
        RetentionJob(conn, {"hot": dep.tier}, dep.classes(), dep.holds(conn)).apply(NOW + 4000 * DAY, "cron")
    conn.close()
    assert dep.row(r2)["state"] == "verified"


def test_a_release_or_an_insert_by_hand_is_reported(dep, capsys):
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "case 1")
    dep.sql("UPDATE holds SET released_at=1.0, released_by='x'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "released in the catalog without a hold_released ledger entry" in out
    dep.sql("UPDATE holds SET released_at=NULL, released_by=''",
            "INSERT INTO holds (hold_id, scope, value, value4, reason, created_by, created_at) "
            "VALUES ('H-forged', 'call', 'n1_9.9', '', 'x', 'x', 1.0)")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "H-forged" in out and "not written by hold add" in out
    assert "released in the catalog" not in out


def test_hold_add_and_remove_verify_clean(dep, capsys):
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    code, out = dep.cli(capsys, "hold", "add", "--caller", CALLER, "--reason", "case 2")
    hold_id = out.split(":")[0].strip()
    dep.call("n1_2.2", started_at=NOW - 30)
    dep.record("n1_2.2")
    assert dep.cli(capsys, "hold", "remove", hold_id)[0] == 0
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    code, receipt = _erase(dep, capsys, "--caller", CALLER)
    assert receipt["status"] == "done" and len(receipt["objects"]) == 2


def test_holds_of_an_older_catalog_get_their_entries_once(dep, capsys):
    dep.call("n1_1.1")
    dep.record("n1_1.1")
    dep.sql("INSERT INTO holds (hold_id, scope, value, value4, reason, created_by, created_at) "
            "VALUES ('H-old', 'call', 'n1_1.1', '', 'before entries', 'x', 1.0)")
    code, out = dep.cli(capsys, "verify")
    assert code == 0 and "predate hold ledger entries" in out
    conn = dep.conn()
    assert dep.holds(conn).active_holds()[0]["hold_id"] == "H-old"  # first use: the backfill
    conn.close()
    code, out = dep.cli(capsys, "verify")
    assert code == 0 and "predate" not in out
    dep.sql("UPDATE holds SET value='n1_0.0'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "hold value differs from the ledger" in out


# -- 3. query holds cover later recordings; holds placed mid-run stop later deletions ----------
def test_a_query_hold_covers_a_recording_shipped_after_it(dep, capsys):
    dep.call("n1_1.1", queue="trading")
    dep.record("n1_1.1")
    dep.call("n1_2.2", queue="trading", caller="4917000000009")
    r2 = dep.record("n1_2.2", ship=False)  # still in the spool
    assert dep.cli(capsys, "hold", "add", "--query", json.dumps({"queue": "trading"}),
                   "--reason", "FCA inquiry")[0] == 0
    dep.shipper.ship_once()  # shipped after the hold was placed
    code, receipt = _erase(dep, capsys, "--call-id", "n1_2.2")
    assert receipt["objects"] == [] and [w["recording_id"] for w in receipt["withheld"]] == [r2]
    dep.sql("UPDATE recordings SET legal_hold=0", "DELETE FROM hold_recordings")  # the table's hold alone
    code, receipt = _erase(dep, capsys, "--call-id", "n1_2.2")
    assert receipt["objects"] == [] and [w["recording_id"] for w in receipt["withheld"]] == [r2]


def test_a_hold_placed_during_an_erasure_stops_the_later_deletions(dep, capsys, monkeypatch):
    dep.call("n1_1.1")
    r1 = dep.record("n1_1.1")
    dep.call("n1_2.2", started_at=NOW - 30)
    r2 = dep.record("n1_2.2")
    conn = dep.conn()
    holds = dep.holds(conn)
    original = Eraser._erase_recording

    def erase_then_hold(self, rec, *args, **kwargs):
        out = original(self, rec, *args, **kwargs)
        if rec["recording_id"] == r1:  # the hold arrives while the erasure runs
            holds.add("call", "n1_2.2", "late subpoena", "legal", now=NOW)
        return out

    monkeypatch.setattr(Eraser, "_erase_recording", erase_then_hold)
    eraser = Eraser(conn, {"hot": dep.tier}, hash_key=dep.hash_key(), holds=holds, numbers=dep.numbers)
    receipt = eraser.erase(caller=CALLER, actor="dpo", now=NOW)
    conn.close()
    assert [o["recording_id"] for o in receipt["objects"]] == [r1]
    assert [w["recording_id"] for w in receipt["withheld"]] == [r2] and receipt["status"] == "refused_partial"
    assert dep.row(r2)["state"] == "verified"


def test_a_hold_placed_during_a_retention_run_stops_the_later_disposals(dep):
    dep.call("n1_1.1")
    r1 = dep.record_class("n1_1.1", "standard", created_at=NOW - 400 * DAY)
    conn = dep.conn()
    holds = dep.holds(conn)
    job = RetentionJob(conn, {"hot": dep.tier}, dep.classes(), holds)
    decided = job.iter_report

    def decide_then_hold(*args, **kwargs):
        for d in decided(*args, **kwargs):
            holds.add("call", d.call_id, "late subpoena", "legal", now=NOW)
            yield d

    job.iter_report = decide_then_hold  # type: ignore[method-assign]
    result = job.apply(NOW, "cron")
    conn.close()
    assert result.disposed == [] and [d.recording_id for d in result.refused] == [r1]
    assert dep.row(r1)["state"] == "verified"


# -- 4. a query hold keeps no number in clear --------------------------------------------------
@pytest.mark.parametrize("number", [CALLER, CALLER[-4:]])
def test_a_query_hold_by_number_stores_and_prints_no_number(dep, capsys, number):
    dep.call("n1_1.1")
    r1 = dep.record("n1_1.1")
    code, out = dep.cli(capsys, "hold", "add", "--query", json.dumps({"caller": number}),
                        "--reason", "case 7")
    assert code == 0 and "1 recording(s) held" in out and number not in out
    conn = dep.conn()
    (value,) = conn.execute("SELECT value FROM holds").fetchone()
    audit = " ".join(str(r[0]) for r in conn.execute("SELECT detail FROM audit_log"))
    conn.close()
    assert number not in value and CALLER[-4:] not in value and number not in audit
    dep.call("n1_2.2", started_at=NOW - 30)
    r2 = dep.record("n1_2.2")  # a later call of the number: covered by the stored index
    assert dep.row(r2)["legal_hold"]
    dep.sql("UPDATE recordings SET legal_hold=0", "DELETE FROM hold_recordings")
    code, receipt = _erase(dep, capsys, "--caller", CALLER)
    assert sorted(w["recording_id"] for w in receipt["withheld"]) == sorted([r1, r2])
