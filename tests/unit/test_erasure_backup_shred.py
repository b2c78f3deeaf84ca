"""The catalog backups an erasure leaves readable are shredded by the next ``catalog backup``, one
fresh backup for every erasure since the last (``lifecycle.backup_shred``), not a copy of the
whole catalog inside each erasure (42 GB at 10 M calls: issue 11).  Until then ``erase status``
says so, and past the request's deadline it is overdue; ``--shred-backups-now`` keeps the fresh
backup inside the erasure."""

from __future__ import annotations

import json
import time

import pytest
from tamper_support import CALLER, Deployment, two_recorded_calls

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CryptoError, StorageError
from pbx_recorder.lifecycle import backup, backup_shred, policy
from pbx_recorder.lifecycle.runtime import Runtime


@pytest.fixture()
def dep(tmp_path):
    d = two_recorded_calls(tmp_path)  # n1_1.1 of CALLER, n1_2.2 of another caller
    yield d
    d.close()


def runtime(d: Deployment) -> Runtime:
    return Runtime.load(str(d.root / "cfg.yaml"), "catalog.backup")


def readable_backups(d: Deployment, rt: Runtime) -> list[str]:
    out = []
    for key in backup.list_backups(rt.backup_tier()):
        try:
            backup.restore(rt.backup_tier(), key, d.root / f"probe-{len(out)}-{time.monotonic_ns()}.db",
                           keys=rt.backup_keys())
        except CryptoError:
            continue
        out.append(key)
    return out


def stored_receipt(d: Deployment, request_id: str) -> dict:
    conn = engine.connect(d.root / "cat.db")
    try:
        return json.loads(conn.execute("SELECT receipt FROM erasure_requests WHERE request_id = ?",
                                       (request_id,)).fetchone()[0])
    finally:
        conn.close()


def audit_actions(d: Deployment) -> list[tuple[str, str]]:
    conn = engine.connect(d.root / "cat.db")
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT action, target FROM audit_log ORDER BY id")]
    finally:
        conn.close()


def test_two_erasures_then_one_catalog_backup_shreds_the_older_backups_for_both(dep, capsys):
    code, out = dep.cli(capsys, "catalog", "backup")  # the hourly backup before the erasures
    assert code == 0, out
    rt = runtime(dep)
    before = readable_backups(dep, rt)
    assert len(before) == 1

    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-a")
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "done" and receipt["backups"]["shred"] == "pending"
    assert readable_backups(dep, rt) == before  # no backup taken inside the erasure
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_2.2", "--request-id", "ER-b")
    assert code == 0 and json.loads(out)["backups"]["shred"] == "pending", out

    code, out = dep.cli(capsys, "erase", "status")
    assert code == 0 and "ER-a  done  older catalog backups not shredded yet" in out, out
    assert "ER-b  done" in out and "2 waiting for a backup shred" in out and "0 overdue" in out

    code, out = dep.cli(capsys, "catalog", "backup")
    assert code == 0 and "for 2 erasure request(s): ER-a, ER-b" in out, out
    fresh = readable_backups(dep, rt)
    assert len(fresh) == 1 and fresh != before  # the pre-erasure backup no longer opens
    a, b = stored_receipt(dep, "ER-a"), stored_receipt(dep, "ER-b")
    assert a["backups"]["shred"] == b["backups"]["shred"] == "done"
    assert a["backups"]["fresh_backup"] == b["backups"]["fresh_backup"] == f"hot:{fresh[0]}"
    assert a["backups"]["destroyed_backup_keys"] and a["status"] == "done"
    assert {k: v for k, v in a.items() if k != "backups"} == \
        {k: v for k, v in receipt.items() if k != "backups"}
    assert ("erase.backups_shredded", "ER-a,ER-b") in audit_actions(dep)
    code, out = dep.cli(capsys, "erase", "status")
    assert "ER-a" not in out and "0 waiting for a backup shred" in out, out
    code, out = dep.cli(capsys, "catalog", "backup")  # nothing waits: a plain backup again
    assert code == 0 and "erasure request" not in out and "sha256:" in out, out
    assert len(readable_backups(dep, rt)) == 2


def test_shred_backups_now_takes_the_fresh_backup_inside_the_erasure(dep, capsys):
    code, out = dep.cli(capsys, "catalog", "backup")
    assert code == 0, out
    rt = runtime(dep)
    before = readable_backups(dep, rt)
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--shred-backups-now")
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["backups"]["fresh_backup"].startswith("hot:")
    assert receipt["backups"]["destroyed_backup_keys"]
    assert backup_shred.pending(rt.conn) == {}
    after = readable_backups(dep, rt)
    assert len(after) == 1 and after != before


def test_a_request_waiting_past_its_deadline_is_overdue(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-late")
    assert code == 0, out
    rt = runtime(dep)
    late = time.time() + (policy.ERASURE_DEADLINE_DAYS + 1) * policy.DAY
    [row] = [r for r in rt.eraser().status(late) if r["request_id"] == "ER-late"]
    assert row["status"] == "done" and row["overdue"] is True and row["backup_shred_since"] is not None


def test_a_failed_backup_keeps_every_request_waiting(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-x")
    assert code == 0, out
    rt = runtime(dep)

    def full_disk(now: float) -> dict:
        raise StorageError("no space left for the catalog backup")

    with pytest.raises(StorageError):
        backup_shred.backup_then_shred(rt.conn, full_disk, time.time(), rt.config.node)
    assert set(backup_shred.pending(rt.conn)) == {"ER-x"}
    assert stored_receipt(dep, "ER-x")["backups"]["shred"] == "pending"


def test_an_erasure_finishing_during_the_backup_waits_for_the_next_one(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", CALLER, "--request-id", "ER-1")
    assert code == 0, out
    rt = runtime(dep)

    def shred_while_another_erasure_ends(now: float) -> dict:
        report = rt.shred_backups(now)
        # ER-2 completes after the fresh backup's snapshot: its rows may be in it
        code, out = dep.cli(capsys, "erase", "--call-id", "n1_2.2", "--request-id", "ER-2")
        assert code == 0, out
        return report

    shredded = backup_shred.backup_then_shred(rt.conn, shred_while_another_erasure_ends, time.time(),
                                               rt.config.node)
    assert shredded is not None and shredded[1] == ["ER-1"]
    assert set(backup_shred.pending(rt.conn)) == {"ER-2"}
    assert stored_receipt(dep, "ER-2")["backups"]["shred"] == "pending"
    assert stored_receipt(dep, "ER-1")["backups"]["shred"] == "done"


def test_a_backup_in_the_same_second_never_replaces_another(dep):
    rt = runtime(dep)
    now = time.time()
    first = backup.backup(dep.root / "cat.db", rt.backup_tier(), now, keys=rt.backup_keys())
    second = backup.backup(dep.root / "cat.db", rt.backup_tier(), now, keys=rt.backup_keys())
    assert second.key == first.key.removesuffix(".db.pbxr") + "_02.db.pbxr"
    assert backup.list_backups(rt.backup_tier())[-2:] == [first.key, second.key]  # in the order taken
    assert {first.key, second.key} <= set(backup.list_backups(rt.backup_tier()))
    assert rt.backup_tier().hash(first.key) == first.sha256


def test_an_edited_receipt_is_left_as_it_is_and_its_request_keeps_waiting(dep, capsys):
    for request_id, call_id in (("ER-ok", "n1_1.1"), ("ER-edited", "n1_2.2")):
        code, out = dep.cli(capsys, "erase", "--call-id", call_id, "--request-id", request_id)
        assert code == 0, out
    dep.sql("UPDATE erasure_requests SET receipt = '{not json' WHERE request_id = 'ER-edited'")
    rt = runtime(dep)
    shredded = backup_shred.backup_then_shred(rt.conn, rt.shred_backups, time.time(), rt.config.node)
    assert shredded is not None and shredded[1] == ["ER-edited", "ER-ok"] and shredded[2] == ["ER-ok"]
    assert set(backup_shred.pending(rt.conn)) == {"ER-edited"}
    assert stored_receipt(dep, "ER-ok")["backups"]["shred"] == "done"


def test_an_erasure_that_finds_nothing_asks_for_no_shred(dep, capsys):
    code, out = dep.cli(capsys, "erase", "--caller", "4915199999999", "--request-id", "ER-none")
    assert code == 0 and json.loads(out)["backups"] == {}, out
    assert backup_shred.pending(runtime(dep).conn) == {}
