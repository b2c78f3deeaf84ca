"""The ledger rows keyed with ``web.secret_key_file`` (schema 24, ``recording.ledger``; session-45
review): an insider who can write the catalog but not read the key appended a ``deleted`` entry
after the last signed head with its hash computed, removed the recording's row and objects, and
``verify``, ``verify --deep`` and ``ledger verify`` all passed; the daemon's next head signed over
the forged row, which then passed for good.  Now such a row is named (no MAC after keyed rows, or a
MAC that does not verify), a stripped MAC breaks the row's hash, the head writer refuses to sign
over either, and a process without the key cannot append to a keyed chain (fail closed)."""

from __future__ import annotations

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder import audit_key
from pbx_recorder.errors import CatalogError, IntegrityError
from pbx_recorder.recording import chain_head, ledger
from pbx_recorder.service.secret_box import create_key_file

CALL = "n1_3.3"


@pytest.fixture()
def dep(tmp_path, monkeypatch):
    d = Deployment(tmp_path)
    key = create_key_file(tmp_path / "web.key")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(cfg.read_text() + f"web: {{secret_key_file: {key}}}\n")
    from pbx_recorder.config import load_config

    load_config(cfg)  # what every process of the recorder does at start: the key is registered
    d.call(CALL)
    d.rid = d.record(CALL)  # type: ignore[attr-defined]
    chain_head.write_all(ledger.connection_of(d.catalog), d.heads, d.sign_key, now=NOW + 2)
    yield d
    audit_key.register(tmp_path / "cat.db", None)
    d.close()


def _rows(d):
    return ledger.connection_of(d.catalog).execute(
        "SELECT seq, at, event, recording_id, payload, hash, mac FROM ledger ORDER BY seq").fetchall()


def _forge(d, event: str, rid: str, *, keyed: bool, mac: str = "") -> None:
    """A ledger row appended by hand after the signed head, its hash computed as the recorder would."""
    last = _rows(d)[-1]
    seq, at = int(last[0]) + 1, NOW + 5
    digest = ledger.entry_hash(last[5], seq, at, event, rid, {"reason": "retention"}, keyed)
    d.sql("INSERT INTO ledger (seq, at, event, recording_id, payload, prev_hash, hash, mac) VALUES "
          f"({seq}, {at}, '{event}', '{rid}', '{{\"reason\":\"retention\"}}', '', '{digest}', '{mac}')")


def test_rows_are_keyed_and_everything_verifies(dep, capsys):
    rows = _rows(dep)
    assert rows and all(str(r[6]).startswith(ledger.MAC_PREFIX) for r in rows)
    assert dep.cli(capsys, "ledger", "verify")[0] == 0
    assert dep.cli(capsys, "verify")[0] == 0


def test_a_forged_deletion_with_the_row_and_objects_removed_is_named_and_never_signed_over(dep, capsys):
    rid = dep.rid
    for obj_key in [str(o["key"]) for o in dep.catalog.get_recording(rid)["objects"]]:
        (dep.tier.root / obj_key).unlink()
    _forge(dep, "deleted", rid, keyed=False)  # the insider has no key: an unkeyed row
    dep.sql(f"DELETE FROM recordings WHERE recording_id = '{rid}'")
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code != 0 and "row without a MAC after keyed rows" in out  # before: 0
    assert dep.cli(capsys, "verify")[0] != 0
    with pytest.raises(IntegrityError, match="refusing to sign the ledger chain head"):
        dep.heads.write(ledger.connection_of(dep.catalog), "ledger", dep.sign_key, now=NOW + 10)


def test_a_forged_row_claiming_to_be_keyed_fails_its_mac(dep, capsys):
    _forge(dep, "released", dep.rid, keyed=True, mac=ledger.MAC_PREFIX + "0" * 64)
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code != 0 and "row's MAC does not verify" in out


def test_a_mac_stripped_from_a_genuine_row_breaks_its_hash(dep, capsys):
    last = _rows(dep)[-1]
    dep.sql(f"UPDATE ledger SET mac = '' WHERE seq = {last[0]}")
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code != 0 and "row content does not match its hash" in out


def test_a_process_without_the_key_cannot_append_to_a_keyed_chain(dep, tmp_path):
    audit_key.register(tmp_path / "cat.db", None)
    conn = ledger.connection_of(dep.catalog)
    with pytest.raises(CatalogError, match="keyed"):
        ledger.append(conn, "held", dep.rid, {}, NOW + 9)
    assert _rows(dep)[-1][2] != "held"


def test_an_unkeyed_chain_from_before_the_upgrade_is_extended_by_keyed_rows(tmp_path, capsys):
    d = Deployment(tmp_path)  # no key: the rows of an older version
    try:
        d.call(CALL)
        d.record(CALL)
        assert all(r[6] == "" for r in _rows(d))
        key = create_key_file(tmp_path / "web.key")
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(cfg.read_text() + f"web: {{secret_key_file: {key}}}\n")
        from pbx_recorder.config import load_config

        load_config(cfg)
        d.call("n1_4.4")
        d.record("n1_4.4")
        macs = [bool(r[6]) for r in _rows(d)]
        assert macs[0] is False and macs[-1] is True and macs == sorted(macs)
        assert d.cli(capsys, "ledger", "verify")[0] == 0
    finally:
        audit_key.register(tmp_path / "cat.db", None)
        d.close()
