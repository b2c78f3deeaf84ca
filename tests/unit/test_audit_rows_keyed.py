"""The audit rows keyed with ``web.secret_key_file`` (pbx_recorder.audit_key): an insider who can
write the catalog but not read the key cannot append an audit row that passes, nor strip the MAC
of one (also not the one an incremental pass starts after), and the daemon's signer raises an
ALERT before it signs a head over such a row, which every full check still reports."""

from __future__ import annotations

import json
import logging
import os

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder import audit_key, audit_trail
from pbx_recorder.errors import CatalogError, IntegrityError
from pbx_recorder.recording import chain_head, ledger
from pbx_recorder.service.secret_box import create_key_file


@pytest.fixture()
def dep(tmp_path, monkeypatch):
    d = Deployment(tmp_path)
    key = create_key_file(tmp_path / "web.key")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(cfg.read_text() + f"web: {{secret_key_file: {key}}}\n"
                   "access:\n  users: {root: admin, dora: auditor}\n")
    monkeypatch.setenv("PBX_RECORDER_USER", "dora")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installed config
    from pbx_recorder.config import load_config

    load_config(cfg)  # what every process of the recorder does at start: the key is registered
    conn = ledger.connection_of(d.catalog)
    d.catalog.audit("ops", "admin", "calls.search.unmask", "", {"results": 1})
    audit_trail.record(conn, actor="sue", role="supervisor", action="read_audio", target="n1_1.1",
                       now=NOW + 1)
    chain_head.write_all(conn, d.heads, d.sign_key, now=NOW + 2)
    yield d
    d.close()


def _rows(d):
    conn = ledger.connection_of(d.catalog)
    return conn.execute("SELECT id, at, actor, role, action, target, detail, prev_hash, hash, mac "
                        "FROM audit_log ORDER BY id").fetchall()


def _forge(d, *, mac: str, keyed: bool) -> None:
    """An audit row appended by hand, its hash computed as the recorder would."""
    last = _rows(d)[-1]
    row_id, at = int(last[0]) + 1, NOW + 5
    digest = audit_trail.entry_hash(last[8], row_id, at, "mallory", "admin", "read_audio", "n1_1.1", {},
                                    keyed)
    d.sql("INSERT INTO audit_log (id, at, actor, role, action, target, detail, prev_hash, hash, mac) "
          f"VALUES ({row_id}, {at}, 'mallory', 'admin', 'read_audio', 'n1_1.1', '{{}}', '{last[8]}', "
          f"'{digest}', '{mac}')")


def test_rows_are_keyed_and_verify(dep, capsys):
    rows = _rows(dep)
    assert len(rows) == 2 and all(str(r[9]).startswith(audit_key.PREFIX) for r in rows)
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == 0 and "0 problems" in out, out
    # the CLI's own rows (audit list is audited) are keyed too: it loaded the config
    assert dep.cli(capsys, "audit", "list")[0] == 0
    assert str(_rows(dep)[-1][9]).startswith(audit_key.PREFIX) and _rows(dep)[-1][4] == "audit.list"
    assert dep.cli(capsys, "audit", "verify")[0] == 0


@pytest.mark.parametrize(("mac", "keyed", "said"), [
    ("", False, "row without a MAC after keyed rows"),
    ("m1." + "0" * 64, True, "MAC does not verify"),
])
def test_a_row_appended_by_hand_is_caught(dep, capsys, caplog, mac, keyed, said):
    _forge(dep, mac=mac, keyed=keyed)
    for args in (("audit", "verify"), ("verify",)):
        code, out = dep.cli(capsys, *args)
        assert code == IntegrityError.exit_code and said in out, (args, out)
    # the signer raises an ALERT before it signs over the row; signed over, the row is still found
    conn = ledger.connection_of(dep.catalog)
    with caplog.at_level(logging.ERROR, logger="pbx_recorder.recording.chain_head"):
        assert chain_head.write_all(conn, dep.heads, dep.sign_key, now=NOW + 9) == []
    assert any("ALERT audit chain" in r.getMessage() and said in r.getMessage() for r in caplog.records)
    head = dep.heads.latest("audit", dep.sign_key.public_key())
    assert head is not None and head.seq == _rows(dep)[-1][0]
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == IntegrityError.exit_code and said in out, out


def test_a_mac_stripped_breaks_the_rows_hash(dep, capsys):
    dep.sql("UPDATE audit_log SET mac = '' WHERE action = 'read_audio'")
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == IntegrityError.exit_code and "does not match its hash" in out, out


def test_every_mac_stripped_and_the_chain_recomputed_is_caught_by_the_signed_head(dep, capsys):
    rows = _rows(dep)
    prev = audit_trail.GENESIS
    statements = []
    for row_id, at, actor, role, action, target, detail, _p, _h, _m in rows:
        digest = audit_trail.entry_hash(prev, row_id, at, actor, role, action, target, json.loads(detail))
        statements.append(f"UPDATE audit_log SET prev_hash = '{prev}', hash = '{digest}', mac = '' "
                          f"WHERE id = {row_id}")
        prev = digest
    dep.sql(*statements)
    assert audit_trail.verify_chain(ledger.connection_of(dep.catalog))[0] == []  # unkeyed, consistent
    code, out = dep.cli(capsys, "audit", "verify")
    assert code == IntegrityError.exit_code and "chain rewritten" in out, out


def test_a_process_without_the_key_checks_the_chain_and_may_not_extend_it(dep, capsys):
    conn = ledger.connection_of(dep.catalog)
    audit_key.register(dep.root / "cat.db", None)
    stats: dict[str, int] = {}
    assert audit_trail.verify_chain(conn, stats=stats) == ([], 0)
    assert stats == {"keyed": 2, "unchecked": 2}
    assert "2 keyed audit row(s) not checked" in (audit_trail.key_note(stats) or "")
    # an unkeyed row after keyed ones is what a forged one looks like: refused, nothing written
    with pytest.raises(CatalogError, match="audit rows are keyed and this process has no key"):
        audit_trail.record(conn, actor="cron", role="admin", action="reports.produce", now=NOW + 3)
    assert not conn.in_transaction  # (its own transaction was left open, holding the write lock)
    with pytest.raises(CatalogError, match="audit rows are keyed and this process has no key"):
        audit_trail.record_many(conn, [("c-1", {})], actor="cron", role="admin", action="x", now=NOW + 3)
    assert not conn.in_transaction
    assert len(_rows(dep)) == 2


def test_a_key_file_this_process_cannot_read_refuses_the_command_and_writes_nothing(dep, tmp_path,
                                                                                    capsys):
    os.chmod(tmp_path / "web.key", 0o644)  # refused: readable by others
    code, out = dep.cli(capsys, "audit", "list")
    assert code != 0 and "web.secret_key_file" in out, out
    assert [r[4] for r in _rows(dep)] == ["calls.search.unmask", "read_audio"]
    os.chmod(tmp_path / "web.key", 0o600)
    assert dep.cli(capsys, "audit", "verify")[0] == 0


def test_a_mac_cleared_on_the_row_an_incremental_pass_starts_after_does_not_let_a_row_in(dep):
    """``verify --since-last`` and the signer start after a row whose hash they pinned: whether it
    is keyed comes from that hash, not from its ``mac`` column."""
    conn = ledger.connection_of(dep.catalog)
    anchor = _rows(dep)[-1]
    dep.sql(f"UPDATE audit_log SET mac = '' WHERE id = {anchor[0]}")
    _forge(dep, mac="", keyed=False)
    problems = audit_trail.verify_chain_from(conn, int(anchor[0]), str(anchor[8]))[0]
    whats = [p.what for p in problems]
    assert any("MAC does not verify" in w for w in whats), whats  # the anchor's cleared MAC
    assert any("row without a MAC after keyed rows" in w for w in whats), whats  # the forged row


def test_a_config_without_the_key_does_not_drop_one_registered(dep, tmp_path):
    """cli/operator_gate.py checks the default config with an empty environment: a key that came
    from the environment must stay registered."""
    from pbx_recorder.config import load_config

    bare = tmp_path / "bare.yaml"
    bare.write_text((tmp_path / "cfg.yaml").read_text().replace("web: {secret_key_file:", "#"))
    load_config(bare)
    audit_trail.record(ledger.connection_of(dep.catalog), actor="ops", role="admin", action="x.y",
                       now=NOW + 3)
    assert str(_rows(dep)[-1][9]).startswith(audit_key.PREFIX)
