"""``review sample`` with the signing key's public half: a pick whose call row fails its seal (an
insider rewrote its ``agent``, e.g. to hand a reviewer their own call as another agent's) is not
assigned; the run names it and raises an ALERT.  Without the check the forged call is assigned."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import cli, privilege
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.service import qa_sampling_run
from tests.peers.service_support import NOW
from tests.unit.test_call_seal_rule_tags import recorded_call

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(60, 92)))
WEEK = "2027-W02"  # NOW is Friday 2027-01-15 08:00 UTC
FORGED = "w-dave-1"


def _recorded_week(db) -> None:  # type: ignore[no-untyped-def]
    """One sealed, recorded, answered call of dave in the week (the seeded calls are unsealed:
    written before signing was configured, they are refused by the check too)."""
    recorder = Catalog(db, clock=lambda: NOW, sealer=CallSealer(KEY))
    try:
        recorder.upsert_call({**recorded_call(FORGED, NOW - 7200, agent="dave"), "status": "answered"})
        recorder.upsert_recording({"recording_id": f"r-{FORGED}", "call_id": FORGED, "state": "stored",
                                   "tier": "hot", "storage_key": f"k/{FORGED}", "created_at": NOW})
    finally:
        recorder.close()


def _sql(db, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg, no-untyped-def]
    conn = open_catalog(db)
    try:
        rows = [tuple(r) for r in conn.execute(sql, params).fetchall()]
        conn.commit()
        return rows
    finally:
        conn.close()


@pytest.fixture
def week(seeded_service, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(privilege, "os_user", lambda: (0, "root"))
    db = seeded_service.seeded.db
    _recorded_week(db)
    # the insider: dave's call rewritten as erin's (erin is no reviewer; the row's seal breaks)
    _sql(db, "UPDATE calls SET agent = 'erin' WHERE call_id = ?", FORGED)
    pub = tmp_path / "sign.pem.pub"
    pub.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return seeded_service, db, pub


def _config(tmp_path, db, key, signing: str = "") -> str:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {db}}}\ntimezone: UTC\n{signing}"
                   f"web:\n  qa_sampling:\n    - {{name: weekly, count: 2, reviewers: [qa1]}}\n"
                   f"  secret_key_file: {key}\n")
    return str(cfg)


def test_a_pick_whose_row_fails_its_seal_is_not_assigned(week, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    service, db, pub = week
    cfg = _config(tmp_path, db, service.key_file, f"signing: {{key_file: {str(pub)[:-4]}}}\n")
    with caplog.at_level(logging.ERROR, logger="pbx_recorder.service.qa_sampling_run"):
        result = CliRunner().invoke(cli, ["--config", cfg, "review", "sample", "--week", WEEK])
    assert result.exit_code == 0, result.output
    assert "not assigned, their row fails its seal (see `pbx-recorder verify`)" in result.output
    assert FORGED in result.output.split("fails its seal")[1]
    assert any(f"ALERT call={FORGED}" in r.getMessage() for r in caplog.records)
    assert _sql(db, "SELECT call_id FROM qa_assignments WHERE call_id = ?", FORGED) == []
    sample = _sql(db, "SELECT detail FROM audit_log WHERE action = 'qa.sample'")
    assert len(sample) == 1 and FORGED in json.loads(sample[0][0])["refused"]["weekly"]


def test_without_the_check_the_forged_call_is_assigned(week, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same catalog without the signing key configured: the run trusts the stored agent."""
    service, db, _ = week
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, db, service.key_file),
                                      "review", "sample", "--week", WEEK])
    assert result.exit_code == 0, result.output
    assert _sql(db, "SELECT call_id, reviewer FROM qa_assignments WHERE call_id = ?", FORGED) == [
        (FORGED, "qa1")]


def test_the_check_passes_an_intact_row(week) -> None:  # type: ignore[no-untyped-def]
    _, db, _ = week
    _sql(db, "UPDATE calls SET agent = 'dave' WHERE call_id = ?", FORGED)  # put back as sealed
    check = qa_sampling_run.sealed_row_check(KEY.public_key())
    conn = open_catalog(db)
    try:
        assert check(conn, FORGED) == ""
        assert check(conn, "no-such-call") == "call row gone"
    finally:
        conn.close()
