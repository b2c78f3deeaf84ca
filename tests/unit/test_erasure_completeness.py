"""Issue 6 re-tried (red team): after ``erase --caller N`` reports ``done``, no file of the
deployment holds N -- catalog (+ WAL), a restore of the backup taken before it (readable until the
next catalog backup shreds it), the fresh one the next catalog backup takes, sidecars, spool,
tombstones.  Two places still held it: a saved live-call snapshot of a
call with no catalog row yet, and another call whose CDR alone names the subject (a transfer
to them: ``lastdata``/``dstchannel``), which neither erasure nor a later restore touched."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tamper_support import CALLER, Deployment


@pytest.mark.sqlite_only  # reads the SQLite file's bytes
def test_erase_by_caller_leaves_the_number_in_no_file_and_no_readable_backup(tmp_path, capsys):
    dep = Deployment(tmp_path)
    dep.call("n1_1.1", caller_name=CALLER, cdr=json.dumps({"src": CALLER, "clid": f'"x" <{CALLER}>'}))
    dep.record("n1_1.1")
    dep.call("n1_2.2", caller="4917000000000", callee_num=CALLER)
    dep.record("n1_2.2")
    dep.call("n1_3.3", caller="4917000000001",  # transferred to the subject
             cdr=json.dumps({"lastdata": f"PJSIP/{CALLER}@trunk,30", "dstchannel": f"PJSIP/trunk-{CALLER}"}))
    dep.call("n1_5.5", caller="4917000000002", cdr=json.dumps({"lastdata": "PJSIP/4930123456@trunk"}))
    dep.catalog.save_live_call("n1_4.4", {"call_id": "n1_4.4", "caller_num": CALLER, "live": ["4.4"]})
    assert dep.cli(capsys, "calls", "search", "--caller", CALLER, "--unmask")[0] == 0
    assert dep.cli(capsys, "catalog", "backup")[0] == 0
    code, out = dep.cli(capsys, "erase", "--caller", CALLER)
    assert code == 0, out
    receipt = json.loads(out)
    assert receipt["status"] == "done" and receipt["calls_matched"] == 3
    assert receipt["live_call_snapshots_deleted"] == 1
    dep.close()
    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and CALLER.encode() in p.read_bytes()]
    assert leaks == []
    backups = sorted((tmp_path / "hot" / "catalog-backups").glob("*.db.pbxr"))
    code, out = dep.cli(capsys, "catalog", "restore", "--from", f"catalog-backups/{backups[-1].name}",
                        "--to", str(tmp_path / "restored.db"))
    assert code == 0, out
    assert CALLER.encode() not in (tmp_path / "restored.db").read_bytes()
    conn = sqlite3.connect(tmp_path / "restored.db")
    try:
        assert [r[0] for r in conn.execute("SELECT call_id FROM calls")] == ["n1_5.5"]  # another number
        assert [r[0] for r in conn.execute("SELECT call_id FROM live_calls")] == []
    finally:
        conn.close()
    # that newest backup was taken before the erasure (it still opens until the next catalog
    # backup shreds it: lifecycle.backup_shred); the restore took the subject out again, the
    # live call's snapshot too.  The next catalog backup (the hourly timer's) shreds it.
    code, out = dep.cli(capsys, "catalog", "backup")
    assert code == 0 and "for 1 erasure request(s)" in out, out
    code, out = dep.cli(capsys, "catalog", "restore", "--from", f"catalog-backups/{backups[-1].name}",
                        "--to", str(tmp_path / "again.db"))
    assert code != 0 and not (tmp_path / "again.db").exists(), out
    fresh = sorted((tmp_path / "hot" / "catalog-backups").glob("*.db.pbxr"))[-1]
    code, out = dep.cli(capsys, "catalog", "restore", "--from", f"catalog-backups/{fresh.name}",
                        "--to", str(tmp_path / "fresh.db"))
    assert code == 0 and "0 erased call(s) removed again" in out, out
    assert CALLER.encode() not in (tmp_path / "fresh.db").read_bytes()
