"""The audit log: one writer, chained and signed like the ledger, checked by verify, readable with
``audit list|verify`` (issue 6)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder import audit_trail
from pbx_recorder.audio_access import open_plaintext
from pbx_recorder.errors import AccessDenied, IntegrityError
from pbx_recorder.lifecycle.journal import audit as journal_audit
from pbx_recorder.recording import chain_head, ledger

ROOT = Path(__file__).resolve().parents[2]


def test_one_writer_inserts_into_the_audit_log():
    writers = []
    for folder in ("pbx_recorder", "ami", "storage", "consent", "esl"):
        for path in (ROOT / folder).rglob("*.py"):
            if re.search(r"INSERT\s+INTO\s+audit_log", path.read_text(), re.IGNORECASE):
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["pbx_recorder/audit_trail.py"]


@pytest.fixture()
def dep(tmp_path, monkeypatch):
    d = Deployment(tmp_path)
    d.call("n1_1.1")
    rid = d.record("n1_1.1")
    conn = ledger.connection_of(d.catalog)
    # every former writer, now through audit_trail.record
    d.catalog.audit("ops", "admin", "calls.search.unmask", "", {"caller": "4915112345678", "results": 1})
    journal_audit(conn, actor="dpo", role="auditor", action="hold.add", target="H1",
                  detail={"scope": "caller", "value": "hmac-sha256:ab"}, now=NOW + 1)
    with pytest.raises(AccessDenied):
        open_plaintext(conn, d.catalog.get_recording(rid), d.tier, d.ring, actor="bob", role="agent",
                       dst=io.BytesIO(), now=NOW + 2)
    open_plaintext(conn, d.catalog.get_recording(rid), d.tier, d.ring, actor="sue", role="supervisor",
                   dst=io.BytesIO(), now=NOW + 3)
    chain_head.write_all(conn, d.heads, d.sign_key, now=NOW + 4)
    (tmp_path / "cfg.yaml").write_text((tmp_path / "cfg.yaml").read_text() + """
access:
  users: {root: admin, dora: auditor, adam: agent}
""")
    monkeypatch.setenv("PBX_RECORDER_USER", "dora")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(tmp_path / "cfg.yaml"))  # installed config
    yield d
    d.close()


def test_every_row_is_chained_and_no_number_is_kept_in_clear(dep, capsys):
    conn = ledger.connection_of(dep.catalog)
    rows = conn.execute("SELECT id, action, detail, prev_hash, hash FROM audit_log ORDER BY id").fetchall()
    assert [r[1] for r in rows] == ["calls.search.unmask", "hold.add", "read_audio_denied", "read_audio"]
    assert all(r[4] for r in rows) and rows[0][3] == audit_trail.GENESIS
    assert [r[3] for r in rows[1:]] == [r[4] for r in rows[:-1]]
    assert "4915112345678" not in json.dumps([r[2] for r in rows])
    assert audit_trail.verify_chain(conn) == ([], 0)
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == 0 and "4 audit rows, 0 problems" in out


@pytest.mark.parametrize("attack", [
    ("UPDATE audit_log SET actor = 'nobody' WHERE action = 'read_audio'",),
    ("DELETE FROM audit_log WHERE action = 'hold.add'",),
    ("INSERT INTO audit_log (at, actor, action) VALUES (1, 'x', 'made.up')",),
    ("DELETE FROM audit_log WHERE id = (SELECT MAX(id) FROM audit_log)",
     "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'audit_log'"),
])
@pytest.mark.sqlite_only  # the attacks are SQLite SQL (sqlite_sequence, AUTOINCREMENT)
def test_edits_removals_and_truncation_are_caught(dep, capsys, attack):
    dep.sql(*attack)
    for args in (("audit", "verify"), ("verify",)):
        code, out = dep.cli(capsys, *args)
        assert code == IntegrityError.exit_code, (args, out)
        assert "audit" in out


def test_a_recomputed_audit_chain_is_caught_by_its_signed_head(dep, capsys):
    conn = ledger.connection_of(dep.catalog)
    rows = conn.execute("SELECT id, at, actor, role, action, target, detail FROM audit_log "
                        "ORDER BY id").fetchall()
    prev = audit_trail.GENESIS
    conn.execute("BEGIN IMMEDIATE")
    for row_id, at, actor, role, action, target, detail in rows:
        actor = "nobody" if action == "read_audio" else actor
        digest = audit_trail.entry_hash(prev, row_id, at, actor, role, action, target, json.loads(detail))
        conn.execute("UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?",
                     (actor, prev, digest, row_id))
        prev = digest
    conn.execute("COMMIT")
    assert audit_trail.verify_chain(conn) == ([], 0)
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == IntegrityError.exit_code and "chain rewritten" in out


def test_rows_from_before_the_chain_are_accepted_only_as_a_prefix(tmp_path):
    import sqlite3

    from pbx_recorder.catalog.schema import MIGRATIONS

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO audit_log (at, actor, action) VALUES (1, 'old', 'calls.search')")
    conn.executescript("".join(MIGRATIONS[1:]))
    audit_trail.record(conn, actor="new", role="admin", action="calls.show", now=2.0)
    assert audit_trail.verify_chain(conn) == ([], 1)


def test_audit_list_filters_masks_and_is_itself_audited(dep, capsys):
    code, out = dep.cli(capsys, "audit", "list", "--action", "read_audio*", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["actor"], r["action"]) for r in rows] == [("sue", "read_audio"), ("bob", "read_audio_denied")]
    code, out = dep.cli(capsys, "audit", "list", "--actor", "ops")
    assert code == 0 and "calls.search.unmask" in out
    assert "491******5678" in out and "4915112345678" not in out
    assert "1 audit row(s)" in out
    last = dep.catalog.audit_entries(limit=1)[0]
    assert (last["actor"], last["action"], last["detail"]) == ("dora", "audit.list",
                                                               {"actor": "ops", "results": 1})
    assert dep.cli(capsys, "audit", "verify")[0] == 0  # the reads extended the chain properly


def test_agents_may_not_read_the_audit_log(dep, capsys, monkeypatch):
    monkeypatch.setenv("PBX_RECORDER_USER", "adam")
    code, out = dep.cli(capsys, "audit", "list")
    assert code == AccessDenied.exit_code and "may not audit.read" in out
    assert dep.catalog.audit_entries(limit=1)[0]["action"] == "denied:audit.read"


def test_many_rows_are_written_in_batches_chained_row_by_row_and_a_failed_batch_leaves_none(
        tmp_path, monkeypatch) -> None:
    """``record_many`` (an export's per-call rows): BATCH_ROWS a transaction; a batch that fails
    half-way is rolled back whole, the batches before it stay, and the chain verifies."""
    d = Deployment(tmp_path)
    conn = ledger.connection_of(d.catalog)
    before = conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    n = audit_trail.record_many(conn, ((f"c-{i}", {"job": "j1"}) for i in range(1203)), actor="lead",
                                role="supervisor", action="calls.export.item", now=NOW)
    assert n == 1203 and not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == before + 1203
    real = audit_trail._entry

    def fails_at(*args):
        if args[7] == "d-700":  # (the target)
            raise audit_trail.CatalogError("disk full")
        return real(*args)

    monkeypatch.setattr(audit_trail, "_entry", fails_at)
    with pytest.raises(audit_trail.CatalogError, match="disk full"):
        audit_trail.record_many(conn, ((f"d-{i}", {"job": "j2"}) for i in range(1000)), actor="lead",
                                role="supervisor", action="calls.export.item", now=NOW)
    assert not conn.in_transaction
    targets = [t for (t,) in conn.execute("SELECT target FROM audit_log WHERE target LIKE 'd-%'")]
    assert len(targets) == audit_trail.BATCH_ROWS and "d-499" in targets  # the first batch only
    assert audit_trail.verify_chain(conn)[0] == []
    conn.execute("BEGIN IMMEDIATE")  # a caller's own transaction: refused, and left as it was
    with pytest.raises(audit_trail.CatalogError, match="inside an open transaction"):
        audit_trail.record_many(conn, [("e-1", {})], actor="lead", role="supervisor", action="x", now=NOW)
    assert conn.in_transaction
    conn.execute("ROLLBACK")
