"""Row edits that hid deleted objects from ``verify`` (session-45 review), each by an insider with
write access to the catalog and the tier, on a two-leg recording shipped by the real Shipper:

* the row's ``state`` set to a value that is neither stored nor deleted/erased (``missing``,
  ``orphaned``, a made-up one), the objects then deleted: verify returned at once for any such
  state and said "ok" (now: the ledger recorded it stored, so the state is a mismatch; an unknown
  state is one in any case);
* one leg deleted and struck off the row's ``objects`` list: verify walked only what the row
  listed (now: every object the ledger's ``stored`` entry recorded must be listed), and a
  retention run or an erasure deleted only what the row listed (now also what the ledger
  recorded), while verify of a gone recording looked only at names derived from the primary key
  (now also at the objects the ledger recorded: a leg left behind is named)."""

from __future__ import annotations

import json

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder.recording import ledger
from pbx_recorder.recording.recording_objects import objects_of

CALL = "n1_8.8"
RID = f"{CALL}_call001"


@pytest.fixture()
def dep(tmp_path):
    d = Deployment(tmp_path)
    d.call(CALL)
    assert d.record_two_legs(CALL) == RID
    yield d
    d.close()


def _objects(dep: Deployment):
    return objects_of(dep.catalog.get_recording(RID))


def _delete_all_objects(dep: Deployment) -> None:
    for obj in _objects(dep):
        (dep.tier.root / obj.key).unlink()


def test_the_untouched_deployment_verifies(dep, capsys):
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out


@pytest.mark.parametrize("state", ["missing", "orphaned", "stopped", "spooled", "made-up"])
def test_a_state_edited_to_hide_deleted_objects_is_named(dep, capsys, state):
    _delete_all_objects(dep)
    dep.sql(f"UPDATE recordings SET state = '{state}' WHERE recording_id = '{RID}'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0, out  # before: 0, "status ok" (or the recording listed as pending)
    assert "the ledger records it stored" in out and RID in out


def test_an_unknown_state_is_named_even_without_a_stored_entry(dep, capsys):
    dep.call("n1_9.9")
    dep.catalog.upsert_recording({"recording_id": "n1_9.9_call001", "call_id": "n1_9.9", "state": "parked"})
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "unknown recording state 'parked'" in out


def test_a_leg_deleted_and_struck_off_the_row_is_named(dep, capsys):
    leg = next(o for o in _objects(dep) if o.role.startswith("leg:"))
    (dep.tier.root / leg.key).unlink()
    row = dep.catalog.get_recording(RID)
    kept = [o for o in row["objects"] if o["key"] != leg.key]
    dep.sql(f"UPDATE recordings SET objects = '{json.dumps(kept)}' WHERE recording_id = '{RID}'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0, out  # before: 0
    assert f"row objects no longer list {leg.key}" in out


def test_retention_deletes_a_leg_struck_off_the_row_and_verify_of_the_gone_recording_sees_leftovers(
        dep, capsys):
    from pbx_recorder.lifecycle.journal import copies

    leg = next(o for o in _objects(dep) if o.role.startswith("leg:"))
    row = dep.catalog.get_recording(RID)
    kept = [o for o in row["objects"] if o["key"] != leg.key]
    dep.sql(f"UPDATE recordings SET objects = '{json.dumps(kept)}' WHERE recording_id = '{RID}'")
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(dep.root / "cat.db")
    try:
        places = copies(conn, {"hot": dep.tier}, dict(conn.execute(
            "SELECT * FROM recordings WHERE recording_id = ?", (RID,)).fetchone()))
    finally:
        conn.close()
    assert ("hot", leg.key) in places  # the destroying deletes it too (before: only what the row listed)

    # a deletion outside the lifecycle that leaves the leg behind: verify of the gone row names it
    for obj in _objects(dep):
        if obj.key != leg.key:
            (dep.tier.root / obj.key).unlink()
    dep.sql(f"UPDATE recordings SET state = 'expired' WHERE recording_id = '{RID}'")
    conn = open_catalog(dep.root / "cat.db")
    try:
        conn.execute("BEGIN")
        ledger.append(conn, "deleted", RID, {"reason": "retention"}, NOW)
        conn.execute("COMMIT")
    finally:
        conn.close()
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and leg.key in out, out
