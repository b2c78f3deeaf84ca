"""README "Security", still open: numbers that only a stored signed manifest names were not
re-derived by the migration pass.

A signed manifest keeps part of its call's CDR as it was when the call ended (src, dst, agent,
queue, accountcode); a later CDR replaces the call row's, and the numbers only the manifest names
are kept sealed in ``call_extra_numbers`` as the finder of the day found them: before this version,
``SIP/<number>-00000001`` as ``<number>00000001``, ``客户<number>`` glued to the CJK escape's digits.
``named_numbers_pass`` indexes kept numbers as they were kept, so ``erase --caller <number>``
missed such a call.  ``catalog migrate`` now reads back the signed manifests of the calls that keep
extra numbers (``catalog.manifest_named_pass``) and indexes what today's finder names.  Both engines."""

from __future__ import annotations

import json
import os

import pytest
from tamper_support import NOW, calls_naming, indexing_deployment

from pbx_recorder.catalog import extra_numbers, manifest_named_pass
from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording.manifest import Manifest, ManifestFile

SUBJECT = "4915199999999"
OTHER = "4917000000001"
#: the manifest's CDR field naming the subject, and what the finder before this version kept of it
FORMS = {"agent": (f"SIP/{SUBJECT}-00000001", f"{SUBJECT}00000001"),
         "accountcode": (f"客户{SUBJECT}", f"6237{SUBJECT}")}


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    yield d
    d.close()


def _record(d, call_id: str, cdr: dict[str, str]) -> str:
    """A recording whose signed manifest holds ``cdr`` (the CDR when the call ended)."""
    rid = f"{call_id}_call001"
    src = d.root / "mon" / f"{rid}.wav"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(os.urandom(6000))
    m = Manifest(recording_id=rid, call_id=call_id, recorded_from=NOW - 50, created_at=NOW - 1, cdr=cdr,
                 files=(ManifestFile(src.name, 0, "", 2.0),))
    d.spool.spool_recording(rid, [src], m)
    assert rid in d.shipper.ship_once().shipped
    return rid


def _written_before(d, field: str) -> str:
    """A call whose row's CDR (a later one) no longer names the subject, while its recording's
    signed manifest does; its index and kept numbers as the version before wrote them."""
    value, old_digits = FORMS[field]
    d.call("n1_7.7", caller=OTHER, cdr=json.dumps({"src": OTHER, "disposition": "ANSWERED"}))
    rid = _record(d, "n1_7.7", {"src": OTHER, "dst": "4930123456", field: value})
    # a call that keeps no extra numbers: its manifest is not read (its row records its rule's tags, as
    # written from schema 20 on, so ``rule_tags_pass`` does not read it either)
    d.call("n1_8.8", caller="4917000000002", rule_tags="[]")
    _record(d, "n1_8.8", {"src": "4917000000002", "dst": "4930123456"})
    numbers = d.catalog.numbers
    token = extra_numbers.seal(numbers, "n1_7.7", {old_digits})
    d.sql(f"DELETE FROM call_numbers WHERE bi = '{numbers.index.full(SUBJECT)}'",
          f"INSERT INTO call_numbers (bi, call_id) VALUES ('{numbers.index.full(old_digits)}', 'n1_7.7') "
          "ON CONFLICT DO NOTHING",
          f"UPDATE call_extra_numbers SET numbers = '{token}' WHERE call_id = 'n1_7.7'")
    return rid


@pytest.mark.parametrize("field", sorted(FORMS))
def test_a_number_only_the_manifests_cdr_names_is_found_by_erasure_after_catalog_migrate(dep, capsys, field):
    _written_before(dep, field)
    assert calls_naming(dep, SUBJECT) == set()  # what an erasure found before
    os.remove(dep.sidecar_of("n1_8.8_call001"))  # not read: n1_8.8 keeps no extra numbers
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "read back 1 signed manifests of 1 calls that keep extra numbers: 1 calls got 1 index rows" in out
    assert calls_naming(dep, SUBJECT) == {"n1_7.7"}
    conn = open_catalog(dep.config.catalog.path)
    try:
        assert not manifest_named_pass.pending(conn)
        # kept sealed with the call's extra numbers: ``keys rotate-index`` re-makes its index row
        assert SUBJECT in extra_numbers.of_call(conn, dep.catalog.numbers, "n1_7.7")
        (audit,) = [json.loads(r[0]) for r in conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'catalog.migrate' "
            "AND target = 'manifest-named-numbers'")]
        assert audit == {"calls": 1, "read": 1, "indexed": 1, "rows": 1, "unread": 0, "failed": 0,
                         "done": True}
    finally:
        conn.close()
    code, out = dep.cli(capsys, "catalog", "migrate")  # done: not read again
    assert code == 0 and "read back" not in out
    code, out = dep.cli(capsys, "erase", "--caller", SUBJECT)
    receipt = json.loads(out[out.index("{"):])
    assert code == 0 and receipt["status"] == "done" and receipt["calls_matched"] == 1


def test_a_manifest_that_cannot_be_read_keeps_the_step_open_until_it_can(dep, capsys, tmp_path):
    rid = _written_before(dep, "agent")
    sidecar = dep.sidecar_of(rid)
    kept = tmp_path / "kept"
    sidecar.rename(kept)  # (an archive class not restored, a tier down)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code and f"not read: {rid}" in out, out
    assert calls_naming(dep, SUBJECT) == set()
    kept.rename(sidecar)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "1 calls got 1 index rows" in out, out
    assert calls_naming(dep, SUBJECT) == {"n1_7.7"}


def test_a_call_erased_between_the_read_and_the_write_gets_no_row_back(dep):
    _written_before(dep, "agent")
    conn = open_catalog(dep.config.catalog.path)
    try:
        named = {"n1_7.7": {SUBJECT}}
        dep.sql("DELETE FROM call_extra_numbers WHERE call_id = 'n1_7.7'", "DELETE FROM call_numbers "
                "WHERE call_id = 'n1_7.7'", "DELETE FROM recordings WHERE call_id = 'n1_7.7'",
                "DELETE FROM calls WHERE call_id = 'n1_7.7'")
        report = manifest_named_pass.Report()
        conn.execute("BEGIN")
        manifest_named_pass._write(conn, dep.catalog.numbers, named, report)
        conn.execute("COMMIT")
        assert report.indexed == 0
        assert conn.execute("SELECT count(*) FROM call_numbers WHERE call_id = 'n1_7.7'").fetchone()[0] == 0
    finally:
        conn.close()
