"""README "Security", still open after schema 20: for a call recorded under schemas 11-19 (its row
records no rule tags, its catalog manifest copies keep none) four-eyes replay followed the rule as
configured TODAY, so an admin who edited the rule changed whether the older call needed a grant.
``catalog migrate`` now reads back such calls' signed manifests (``catalog.rule_tags_pass``),
records the rule's tags they hold in ``calls.rule_tags`` and re-seals the row (v2) -- never a row
whose current seal is already broken.  Both engines."""

from __future__ import annotations

import json
import os

import pytest
from tamper_support import NOW, indexing_deployment

from pbx_recorder.catalog import (
    engine,
    pg_schema,
    rule_tags_pass,
    schema_access_seal,
    schema_qa_seal,
    step_walk,
)
from pbx_recorder.catalog.schema import MIGRATIONS
from pbx_recorder.core.rules import rules_from_dicts
from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording.call_seal import CallSealer, sealed_bytes
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.service.four_eyes import call_set_by_rule, is_sensitive

OLD = "n1_5.5"  # recorded under schemas 11-19: its rule set vip
BARE = "n1_6.6"  # no recording (a refused consent)
SEAL_BROKEN = "call metadata does not match its seal"
#: four-eyes as configured: calls tagged vip need a grant
FOUR_EYES_TAGS = ("vip",)


def _rules(*tags: str) -> tuple[object, ...]:
    """The configuration's rules: ``vip-line`` setting ``tags`` (today)."""
    return rules_from_dicts([{"name": "vip-line", "match": {"queue": "sales"},
                              "action": {"record": "yes", "tags": list(tags)}}])


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    d.call(OLD, rule="vip-line", queue="sales")  # a row as written before schema 20: rule_tags '', v1 seal
    rid = f"{OLD}_call001"
    src = d.root / "mon" / f"{rid}.wav"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(os.urandom(6000))
    m = Manifest(recording_id=rid, call_id=OLD, recorded_from=NOW - 50, created_at=NOW - 1,
                 cdr={"src": "4915112345678", "dst": "4930123456"}, tags=("vip",),
                 files=(ManifestFile(src.name, 0, "", 2.0),))
    d.spool.spool_recording(rid, [src], m)
    assert rid in d.shipper.ship_once().shipped
    d.call(BARE, caller="4917000000003")
    yield d
    d.close()


def _row(d, call_id: str) -> dict[str, object]:
    conn = open_catalog(d.config.catalog.path)
    try:
        cur = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))
    finally:
        conn.close()


def _needs_grant(d, call_id: str, rules: tuple[object, ...]) -> bool:
    """The service's four-eyes check of a call (as ``api`` asks it on play, download, export)."""
    conn = open_catalog(d.config.catalog.path)
    try:
        call = d.catalog.get_call(call_id)
        by_rule = call_set_by_rule(conn, d.catalog.numbers, call, rules)
        return is_sensitive({**call, "tags": []}, FOUR_EYES_TAGS, (), by_rule)
    finally:
        conn.close()


def test_an_older_call_keeps_needing_a_grant_after_its_rule_is_edited(dep, capsys):
    assert _row(dep, OLD)["rule_tags"] == "" and b"call seal v1" in sealed_bytes(_row(dep, OLD))
    assert not _needs_grant(dep, OLD, _rules())  # before: an edit of the rule opened the call
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "recorded the rule tags of 1 of 2 older calls from 1 signed manifests (1 without" in out
    row = _row(dep, OLD)
    assert row["rule_tags"] == '["vip"]'
    assert b"call seal v2" in sealed_bytes(dep.catalog.numbers.open_call(row))
    assert _row(dep, BARE)["rule_tags"] == ""  # nothing to replay: left as it is
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    assert _needs_grant(dep, OLD, _rules())  # the rule edited to drop vip: still needs a grant
    assert _needs_grant(dep, OLD, _rules("other"))
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert not rule_tags_pass.pending(conn)
        (audit,) = [json.loads(r[0]) for r in conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'catalog.migrate' AND target = 'rule-tags'")]
        assert audit == {"calls": 2, "read": 1, "recorded": 1, "bare": 1, "unread": 0, "broken": 0,
                         "changed": 0, "done": True}
    finally:
        conn.close()
    sealed = _row(dep, OLD)["seal"]
    code, out = dep.cli(capsys, "catalog", "migrate")  # done: not run again
    assert code == 0 and "recorded the rule tags" not in out, out
    code, out = dep.cli(capsys, "catalog", "migrate", "--force")  # walked again: nothing changes
    assert code == 0 and "recorded the rule tags of 0 of 1 older calls" in out, out
    assert _row(dep, OLD)["seal"] == sealed and _row(dep, OLD)["rule_tags"] == '["vip"]'


def test_a_tampered_older_row_is_not_re_sealed(dep, capsys):
    dep.sql(f"UPDATE calls SET agent = 'mallory' WHERE call_id = '{OLD}'")  # an insider's edit
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code, out
    assert f"not recorded: {OLD}: its seal does not verify" in out
    assert _row(dep, OLD)["rule_tags"] == ""
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and f"call {OLD}: {SEAL_BROKEN}" in out, out
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert rule_tags_pass.pending(conn)
    finally:
        conn.close()


def test_an_unreadable_manifest_keeps_the_step_open_until_it_can_be_read(dep, capsys, tmp_path):
    sidecar = dep.sidecar_of(f"{OLD}_call001")
    kept = tmp_path / "kept"
    sidecar.rename(kept)  # (an archive class not restored, a tier down)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code and f"not recorded: {OLD}: recording {OLD}_call001" in out, out
    assert _row(dep, OLD)["rule_tags"] == ""
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert rule_tags_pass.pending(conn)
    finally:
        conn.close()
    kept.rename(sidecar)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "recorded the rule tags of 1 of 2" in out, out
    assert _row(dep, OLD)["rule_tags"] == '["vip"]'


def test_a_manifest_that_does_not_verify_records_nothing(dep, capsys):
    dep.sql(f"UPDATE recordings SET manifest_sha256 = '{'0' * 64}' WHERE call_id = '{OLD}'")
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code and "differs from the catalog's hash" in out, out
    assert _row(dep, OLD)["rule_tags"] == ""


def test_a_row_changed_between_the_read_and_the_write_is_left_for_the_next_run(dep):
    conn = open_catalog(dep.config.catalog.path)
    try:
        seen = step_walk.call_rows(conn, [OLD])
        recordings = rule_tags_pass._stored(conn, [OLD])
        dep.call(OLD, rule="vip-line", queue="sales", agent="bob")  # the recorder rewrites the row meanwhile
        report = rule_tags_pass.Report()
        sealer = CallSealer(dep.sign_key, reveal=dep.catalog.numbers.open_call)
        conn.execute("BEGIN")
        rule_tags_pass._write(conn, sealer, dep.catalog.numbers, dep.sign_key.public_key(), seen, recordings,
                              {OLD: ["vip"]}, report)
        conn.execute("COMMIT")
        assert report.changed == 1 and report.recorded == 0
        assert rule_tags_pass.tags_of([{"tags": ["vip", "b"]}, {"tags": ["vip"]}, {}]) == ["b", "vip"]
    finally:
        conn.close()
    assert _row(dep, OLD)["rule_tags"] == "" and _row(dep, OLD)["agent"] == "bob"


def _back_to_schema_19(d) -> None:
    """The catalog as schema 19 (Alembic 0018) left it: no ``rule_tags`` column at all (and no
    access-row seals, schema 21, nor audit MACs, schema 22, nor QA seals, schema 23)."""
    conn = engine.connect(d.root / "cat.db")
    try:
        conn.execute("BEGIN")
        conn.execute("ALTER TABLE calls DROP COLUMN rule_tags")
        for table in schema_access_seal.TABLES:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN seal")
        conn.execute("ALTER TABLE audit_log DROP COLUMN mac")  # (schema 22)
        for table in schema_qa_seal.TABLES:  # (schema 23)
            conn.execute(f"ALTER TABLE {table} DROP COLUMN seal")
        conn.execute("ALTER TABLE ledger DROP COLUMN mac")  # (schema 24)
        for side in ("caller", "callee"):  # (schema 25: whole number indexes, no fresh mark)
            conn.execute(f"DROP INDEX calls_{side}_fresh")
            conn.execute(f"DROP INDEX calls_{side}_number")
            conn.execute(f"CREATE INDEX calls_{side}_number ON calls({side}_bi4, started_at DESC, call_id, "
                         f"{side}_bi)")
        conn.execute("ALTER TABLE calls DROP COLUMN fresh")
        if engine.is_postgres(conn):
            conn.execute("UPDATE alembic_version SET version_num = '0018'")
        else:
            conn.execute("DELETE FROM schema_version WHERE version >= 20")
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_an_upgrade_from_schema_19_with_calls_verifies_and_records_their_tags(dep, capsys):
    """A schema-19 catalog with sealed calls and a stored recording, upgraded by the new version:
    the column comes with ``''`` for every older row, every v1 seal still verifies, and
    ``catalog migrate`` records the older call's tags from its signed manifest and re-seals it."""
    sealed_v1 = _row(dep, OLD)["seal"]
    _back_to_schema_19(dep)
    conn = open_catalog(dep.config.catalog.path)  # the new version opens it: migrations run
    try:
        assert "rule_tags" in engine.table_columns(conn, "calls")
        if engine.is_postgres(conn):
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == pg_schema.HEAD
        else:
            assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
        assert rule_tags_pass.pending(conn)
    finally:
        conn.close()
    assert _row(dep, OLD)["rule_tags"] == "" and _row(dep, OLD)["seal"] == sealed_v1
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out  # every older seal (v1) verifies on the new schema
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "recorded the rule tags of 1 of 2 older calls" in out, out
    assert _row(dep, OLD)["rule_tags"] == '["vip"]'
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    assert _needs_grant(dep, OLD, _rules())
