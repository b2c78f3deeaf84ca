"""Schema 12's data step (``catalog.manifest_numbers``, run by ``catalog migrate``): a recording
stored under schema 11 before schema 12 left no sealed copy of a number only its signed manifest
names.  The step reads the stored manifest back (checked against ``manifest_sha256`` and its
signature first), seals such numbers and indexes them again (a rotation run before it had dropped
them); until it has read every such manifest ``keys rotate-index`` refuses.  Both engines."""

from __future__ import annotations

import json
import os

import pytest
from tamper_support import CALLER, NOW, calls_naming, indexing_deployment

from pbx_recorder.catalog import extra_numbers, manifest_numbers
from pbx_recorder.catalog.index_rotation import IndexRotation
from pbx_recorder.errors import CatalogError, IntegrityError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording import stored_manifest
from pbx_recorder.recording.manifest import Manifest, ManifestFile

TRANSFER = "4930987654321"  # only the signed manifest's CDR names it
CALL = "n1_1.1"
RID = f"{CALL}_call001"


@pytest.fixture
def dep(tmp_path):
    d = indexing_deployment(tmp_path)
    d.call(CALL)
    src = tmp_path / "mon" / f"{RID}.wav"
    src.parent.mkdir()
    src.write_bytes(os.urandom(6000))
    m = Manifest(recording_id=RID, call_id=CALL, recorded_from=NOW - 50, created_at=NOW - 1,
                 cdr={"src": CALLER, "dst": TRANSFER}, files=(ManifestFile(src.name, 0, "", 2.0),))
    d.spool.spool_recording(RID, [src], m)
    assert RID in d.shipper.ship_once().shipped
    # the state a recorder of schema 11 left: nothing sealed; and a rotation since dropped the index
    bi = d.catalog.numbers.index.full(TRANSFER)
    assert d.catalog.connection().execute("SELECT count(*) FROM call_extra_numbers").fetchone()[0] == 1
    d.sql("DELETE FROM call_extra_numbers", f"DELETE FROM call_numbers WHERE bi = '{bi}'",
          "INSERT INTO catalog_settings (name, value) VALUES ('manifest_numbers_pass', "
          f"'{{\"cursor\":\"\",\"upto\":{NOW + 10}}}')")
    yield d
    d.close()


def _rotate(d) -> None:
    conn = open_catalog(d.config.catalog.path)
    try:
        assert IndexRotation(conn, d.config.privacy.hash_key_file, d.catalog.numbers.cipher).run().finished
    finally:
        conn.close()


def test_migrate_reads_the_stored_manifest_back_and_the_rotation_keeps_its_numbers(dep, capsys):
    assert calls_naming(dep, TRANSFER) == set()  # lost
    with pytest.raises(CatalogError, match="catalog migrate"):
        _rotate(dep)
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0, out
    assert "read back 1 signed manifests stored under schema 11: 1 calls got sealed numbers" in out
    assert calls_naming(dep, TRANSFER) == {CALL}
    conn = open_catalog(dep.config.catalog.path)
    assert manifest_numbers.pending(conn) == ""
    token = conn.execute("SELECT numbers FROM call_extra_numbers WHERE call_id = ?", (CALL,)).fetchone()[0]
    conn.close()
    assert token.startswith("pn1:") and TRANSFER not in token and TRANSFER[-7:] not in token
    _rotate(dep)
    assert calls_naming(dep, TRANSFER) == {CALL}
    code, out = dep.cli(capsys, "catalog", "migrate")  # done: nothing read again
    assert code == 0 and "read back" not in out


def test_an_unreadable_manifest_is_listed_and_the_rotation_waits_for_it(dep, capsys):
    sidecar = dep.sidecar_of(RID)
    kept = sidecar.read_bytes()
    sidecar.unlink()
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code and f"not read: {RID}: not readable" in out
    conn = open_catalog(dep.config.catalog.path)
    assert "1 signed manifest(s) stored under schema 11 could not be read" in manifest_numbers.pending(conn)
    conn.close()
    with pytest.raises(CatalogError, match="could not be read"):
        _rotate(dep)
    sidecar.write_bytes(kept[:-1] + bytes([kept[-1] ^ 1]))  # altered: not taken
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == IntegrityError.exit_code and f"not read: {RID}:" in out
    assert calls_naming(dep, TRANSFER) == set()
    sidecar.write_bytes(kept)  # restored: the next run reads only the listed one
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "read back 1 signed manifests" in out
    _rotate(dep)
    assert calls_naming(dep, TRANSFER) == {CALL}


def test_the_schema_11_shrink_of_an_older_whole_copy_seals_its_numbers_first(dep, capsys):
    signed = stored_manifest.read_signed(dep.catalog.get_recording(RID), dep.tier, dep.ring)
    whole = json.dumps(dep.catalog.numbers.seal_manifest(RID, signed), sort_keys=True)  # as before schema 11
    dep.sql(f"UPDATE recordings SET manifest = '{whole}', manifest_sha256 = '' WHERE recording_id = '{RID}'",
            "DELETE FROM catalog_settings WHERE name = 'manifest_numbers_pass'")
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "kept the copy and hash of 1 older rows' signed manifests" in out, out
    conn = open_catalog(dep.config.catalog.path)
    assert "cdr" not in json.loads(conn.execute("SELECT manifest FROM recordings").fetchone()[0])
    assert extra_numbers.of_call(conn, dep.catalog.numbers, CALL) == {TRANSFER}
    conn.close()
    _rotate(dep)
    assert calls_naming(dep, TRANSFER) == {CALL}


def test_rotate_index_status_names_the_step_still_to_run(dep, capsys):
    code, out = dep.cli(capsys, "keys", "rotate-index", "--status")
    assert code == 0 and "not all been read back yet: run `pbx-recorder catalog migrate`" in out
    code, out = dep.cli(capsys, "keys", "rotate-index")
    assert code != 0 and "catalog migrate" in out
    assert dep.cli(capsys, "catalog", "migrate")[0] == 0
    code, out = dep.cli(capsys, "keys", "rotate-index", "--status")
    assert code == 0 and "catalog migrate" not in out
