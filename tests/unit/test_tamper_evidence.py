"""Issue 6, "tamper evidence that an insider cannot defeat": each attack that used to leave
``verify``, ``verify --deep`` or ``ledger verify`` at exit 0, made by an insider with write
access to the catalog file and the tier folders, but not the signing key."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from tamper_support import CALLER, NOW, Deployment, two_recorded_calls

from pbx_recorder.errors import IntegrityError, TierUnavailable, VerifyIncomplete
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle.erasure import Eraser
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.recording import chain_head, ledger
from pbx_recorder.recording.verify import Verifier
from storage.local import LocalTier


@pytest.fixture()
def dep(tmp_path):
    d = two_recorded_calls(tmp_path)
    yield d
    d.close()


def test_a_clean_deployment_passes_every_check(dep, capsys):
    for args in (("verify",), ("verify", "--deep"), ("ledger", "verify"), ("audit", "verify")):
        code, out = dep.cli(capsys, *args)
        assert code == 0, (args, out)
    assert "status ok" in dep.cli(capsys, "verify")[1]


def test_deleted_row_and_objects_are_caught_by_every_command(dep, capsys):
    rid = "n1_1.1_call001"
    sidecar = dep.sidecar_of(rid)
    (dep.tier.root / dep.key_of(rid)).unlink()
    sidecar.unlink()
    dep.sql(f"DELETE FROM recordings WHERE recording_id = '{rid}'")
    for args in (("verify",), ("verify", "--deep"), ("ledger", "verify")):
        code, out = dep.cli(capsys, *args)
        assert code == IntegrityError.exit_code, (args, out)
        assert rid in out and "catalog row" in out and "gone" in out or "removed" in out


@pytest.mark.sqlite_only  # the attack's SQL is SQLite's (sqlite_sequence, json_set)
def test_truncated_ledger_with_lowered_sequence_is_caught(dep, capsys):
    last = dep.sql  # delete the last row and hide the gap the AUTOINCREMENT counter would show
    last("DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)",
         "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'ledger'")
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code == IntegrityError.exit_code and "truncated" in out, out
    assert dep.cli(capsys, "verify")[0] == IntegrityError.exit_code


def test_rewritten_chain_is_caught(dep, capsys):
    """Every row rehashed after an edit: the chain is internally consistent again."""
    conn = ledger.connection_of(dep.catalog)
    rows = conn.execute("SELECT seq, at, event, recording_id, payload FROM ledger ORDER BY seq").fetchall()
    prev = ledger.GENESIS
    conn.execute("BEGIN IMMEDIATE")
    for seq, at, event, rid, payload in rows:
        body = json.loads(payload)
        body["tier"] = "elsewhere" if seq == 1 else body.get("tier", "")
        digest = ledger.entry_hash(prev, seq, at, event, rid, body)
        conn.execute("UPDATE ledger SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (json.dumps(body, sort_keys=True, separators=(",", ":")), prev, digest, seq))
        prev = digest
    conn.execute("COMMIT")
    assert ledger.verify_chain(conn) == []  # the in-database check alone is fooled
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code == IntegrityError.exit_code and "chain rewritten" in out, out


def test_forged_checkpoint_and_removed_checkpoints_are_caught(dep, capsys):
    head = dep.heads.dir / "ledger.head.json"
    data = json.loads(head.read_text())
    data["seq"] -= 1
    head.write_text(json.dumps(data))
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code == IntegrityError.exit_code and "invalid signature" in out
    shutil.rmtree(dep.heads.dir)
    code, out = dep.cli(capsys, "ledger", "verify")
    assert code == IntegrityError.exit_code and "no signed checkpoint" in out


def test_checkpoint_writer_refuses_to_launder_a_truncation(dep):
    dep.sql("DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)")
    conn = ledger.connection_of(dep.catalog)
    with pytest.raises(IntegrityError, match="truncated"):
        dep.heads.write(conn, "ledger", dep.sign_key, now=NOW + 5)
    assert chain_head.write_all(conn, dep.heads, dep.sign_key, now=NOW + 5) != []


def test_swapped_rows_are_caught_by_plain_and_deep_verify(dep, capsys):
    a, b = "n1_1.1_call001", "n1_2.2_call001"
    cols = ("call_id, size, sha256, audio_sha256, storage_key, key_id, wrapped_key, manifest, signature, "
            "objects, manifest_sha256")
    dep.sql("CREATE TEMP TABLE t AS SELECT recording_id, " + cols + " FROM recordings",
            *[f"UPDATE recordings SET {c} = (SELECT {c} FROM t WHERE t.recording_id = "
              f"CASE recordings.recording_id WHEN '{a}' THEN '{b}' ELSE '{a}' END)"
              for c in cols.split(", ")])
    for args in (("verify",), ("verify", "--deep")):
        code, out = dep.cli(capsys, *args)
        assert code == IntegrityError.exit_code, out
        # the rows' signed manifests are the stored objects: a's row now names b's, sealed for b
        assert f"{a}: signed manifest not readable: encrypted file belongs to another recording" in out
        assert f"{b}: row storage_key differs from the ledger" in out


def test_changed_caller_number_is_caught_and_cannot_escape_erasure(dep, capsys):
    dep.sql("UPDATE calls SET caller_num = '4900000000000' WHERE call_id = 'n1_1.1'")
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code
    assert "call n1_1.1: call metadata does not match its seal" in out
    dep.sql("UPDATE calls SET seal = '' WHERE call_id = 'n1_1.1'")
    assert "call n1_1.1: call metadata not sealed" in dep.cli(capsys, "verify")[1]
    for column, value in (("consent_decision", "'refused'"), ("agent", "'mallory'"), ("started_at", "1.0")):
        dep.sql(f"UPDATE calls SET {column} = {value} WHERE call_id = 'n1_2.2'")
        assert "call n1_2.2: call metadata does not match its seal" in dep.cli(capsys, "verify")[1], column


def test_erasure_finds_a_call_whose_number_was_edited_through_its_signed_manifest(dep):
    dep.sql("UPDATE calls SET caller_num = '4900000000000' WHERE call_id = 'n1_1.1'")
    conn = ledger.connection_of(dep.catalog)
    key = read_hash_key(dep.root / "hash.key")
    holds = HoldManager(conn, {"hot": dep.tier}, hash_key=key)
    eraser = Eraser(conn, {"hot": dep.tier}, hash_key=key, holds=holds)
    receipt = eraser.erase(caller=CALLER, actor="dpo", now=NOW + 10)
    assert receipt["recordings_erased"] == 1 and dep.catalog.get_call("n1_1.1") is None


def test_flipped_byte_of_the_same_size_is_caught_by_plain_verify(dep, capsys):
    path = dep.tier.root / dep.key_of("n1_1.1_call001")
    blob = bytearray(path.read_bytes())
    blob[200] ^= 1
    path.write_bytes(bytes(blob))
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and "n1_1.1_call001: stored bytes hash differs" in out


def test_reput_object_with_copied_metadata_and_fixed_catalog_hash_is_caught(dep, capsys):
    """The insider replaces the object and writes its new hash into the row: the ledger and the
    server's own checksum / version id still say what was stored."""
    rid = "n1_1.1_call001"
    path = dep.tier.root / dep.key_of(rid)
    fake = bytes(len(path.read_bytes()))
    path.write_bytes(fake)
    forged = hashlib.sha256(fake).hexdigest()
    dep.sql(f"UPDATE recordings SET sha256 = '{forged}' WHERE recording_id = '{rid}'")
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and f"{rid}: row sha256 differs from the ledger" in out
    assert f"{rid}: stored bytes hash differs" in out


class ServerChecksumTier:
    """An S3-like tier: user metadata anyone can copy, plus the server's own checksum (computed
    from the bytes, or forced for ``forced``) and version id."""

    def __init__(self, inner, version_id: str, forced: dict | None = None) -> None:
        self.inner, self.name, self.version, self.forced = inner, inner.name, version_id, forced or {}

    def stat(self, key):
        import dataclasses

        info = self.inner.stat(key)
        if info is None:
            return None
        server = self.forced.get(key) or hashlib.sha256((self.inner.root / key).read_bytes()).hexdigest()
        return dataclasses.replace(info, sha256="copied-by-the-attacker", server_sha256=server,
                                   version_id=self.version)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.sqlite_only  # the attack's SQL is SQLite's (sqlite_sequence, json_set)
def test_s3_reput_is_caught_by_server_checksum_and_version_id(dep):
    rid = "n1_1.1_call001"
    conn = ledger.connection_of(dep.catalog)
    # as if stored on a versioned bucket (this edit breaks the chain: those findings are left out)
    dep.sql(f"UPDATE ledger SET payload = json_set(payload, '$.version_id', 'v1') "
            f"WHERE recording_id = '{rid}'")
    honest = ServerChecksumTier(dep.tier, "v1")
    found = [m for m in Verifier(conn, {"hot": honest}).run(rid).mismatches if "ledger seq" not in m.what]
    assert not [m for m in found if m.recording_id == rid]
    reput = ServerChecksumTier(dep.tier, "v2", {dep.key_of(rid): "ab" * 32})
    found = [str(m) for m in Verifier(conn, {"hot": reput}).run(rid).mismatches]
    assert any("server checksum differs from the stored hash" in f for f in found)
    assert any("replaced after it was stored (version id differs)" in f for f in found)


def test_outage_pending_and_mismatch_are_told_apart(dep, capsys, monkeypatch):
    dep.record("n1_1.1", 2, ship=False)  # finished, still in the spool
    code, out = dep.cli(capsys, "verify")
    assert code == 0 and "PENDING n1_1.1_call002: waiting in the spool" in out and "status pending" in out

    def outage(self, key):  # what the S3 tier raises for a refused connection or a 503
        raise TierUnavailable(f"S3 tier {self.name!r}: head {key}: endpoint unreachable")

    with monkeypatch.context() as m:
        m.setattr(LocalTier, "stat", outage)
        code, out = dep.cli(capsys, "verify")
    assert code == VerifyIncomplete.exit_code == 9, out
    assert "UNREACHABLE tier hot" in out and "MISMATCH" not in out and "status unreachable" in out
    (dep.tier.root / dep.key_of("n1_2.2_call001")).unlink()
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and "status mismatch" in out


def test_replaced_manifest_sidecar_with_edited_objects_list_is_caught(dep, capsys):
    """The sidecar holds the CDR: replaced, and its hash in the row's objects list rewritten."""
    rid = "n1_1.1_call001"
    sidecar = dep.sidecar_of(rid)
    original = sidecar.read_bytes()
    forged = original[:-16] + bytes(16)  # a sealed sidecar re-written by someone without the key
    assert forged != original
    sidecar.write_bytes(forged)
    objects = dep.catalog.get_recording(rid)["objects"]
    for o in objects:
        if o["role"] == "manifest":
            o["sha256"] = hashlib.sha256(forged).hexdigest()
    dep.sql(f"UPDATE recordings SET objects = '{json.dumps(objects)}' WHERE recording_id = '{rid}'")
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code, out
    assert "hash differs from the ledger" in out and "manifest stored bytes hash differs" in out


@pytest.mark.sqlite_only  # the attack's SQL is SQLite's (sqlite_sequence, json_set)
def test_chain_head_copies_on_a_tier_outlive_the_local_checkpoint_files(tmp_path, capsys):
    d = Deployment(tmp_path, vault=True)
    try:
        d.call("n1_1.1")
        d.record("n1_1.1")
        assert sorted(p.name for p in (tmp_path / "vault" / "chain-heads" / "n1").rglob("*.json")) == [
            "2026-03-04.json", "2026-03-04.json"]  # ledger and audit
        shutil.rmtree(d.heads.dir)  # the insider removes the local files, then truncates
        d.sql("DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)",
              "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'ledger'")
        code, out = d.cli(capsys, "ledger", "verify")
        assert code == IntegrityError.exit_code and "truncated" in out, out
    finally:
        d.close()


def test_removed_checkpoints_are_not_silently_recreated(dep, capsys):
    """Deleting every checkpoint, then letting the daemon store one more recording, must not
    produce a fresh checkpoint over whatever the chain now says; `--init` is a deliberate act."""
    shutil.rmtree(dep.heads.dir)
    dep.call("n1_3.3")
    dep.record("n1_3.3")
    assert not (dep.heads.dir / "ledger.head.json").exists()
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and "no signed checkpoint" in out
    code, out = dep.cli(capsys, "ledger", "checkpoint")
    assert code == IntegrityError.exit_code and "--init" in out
    assert dep.cli(capsys, "ledger", "checkpoint", "--init")[0] == 0
    assert dep.cli(capsys, "verify")[0] == 0


def test_upgrade_seals_older_call_rows_only_on_init(dep, capsys):
    dep.sql("INSERT INTO calls (call_id, caller_num, status) VALUES ('n1_0.9', '4912345678901', 'answered')")
    code, out = dep.cli(capsys, "verify")
    assert code == IntegrityError.exit_code and "call n1_0.9: call metadata not sealed" in out
    code, out = dep.cli(capsys, "ledger", "checkpoint", "--init")
    assert code == 0 and "sealed 1 call row(s)" in out
    assert dep.cli(capsys, "verify")[0] == 0


@pytest.mark.parametrize("attack", [
    ("DELETE FROM holds", "UPDATE recordings SET legal_hold=0"),
    ("UPDATE holds SET released_at=1", "UPDATE recordings SET legal_hold=0"),
    ("DELETE FROM hold_recordings",),
    ("UPDATE recordings SET legal_hold=0",),
])
def test_a_legal_hold_removed_behind_the_ledgers_back_is_caught(dep, capsys, attack):
    """Red-team re-try: the ledger records holds, but nothing compared it with the catalog, so
    an insider could drop a hold (and the flag) and let retention delete the evidence."""
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "litigation 7")
    assert code == 0, out
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql(*attack)
    code, out = dep.cli(capsys, "verify")
    assert code == 4 and "MISMATCH n1_1.1_call001: legal hold in the ledger" in out, out


def test_a_released_hold_is_not_reported(dep, capsys):
    code, out = dep.cli(capsys, "hold", "add", "--call", "n1_1.1", "--reason", "litigation 7")
    hold_id = out.split(":")[0].strip()
    assert dep.cli(capsys, "hold", "remove", hold_id)[0] == 0
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out


@pytest.mark.parametrize("command", [("calls", "show", "n1_1.1", "--unmask"), ("calls", "search", "--unmask"),
                                     ("calls", "live", "--unmask")])
@pytest.mark.sqlite_only  # the attack's SQL is SQLite's (sqlite_sequence, json_set)
def test_an_operators_audit_row_deleted_from_the_tail_is_caught(dep, capsys, command):
    """Red-team re-try: the audit rows of ``--unmask`` (who saw full numbers) are written outside
    the lifecycle runtime, so no head covered them: deleting the newest row and lowering
    ``sqlite_sequence`` left ``audit verify`` and ``verify`` at exit 0."""
    assert dep.cli(capsys, *command)[0] == 0
    dep.sql("DELETE FROM audit_log WHERE id=(SELECT MAX(id) FROM audit_log)",
            "UPDATE sqlite_sequence SET seq=(SELECT MAX(id) FROM audit_log) WHERE name='audit_log'")
    for args in (("audit", "verify"), ("verify",)):
        code, out = dep.cli(capsys, *args)
        assert code == 4 and "rows removed after the signed head (truncated)" in out, (args, out)


def test_a_wrapped_data_key_copied_from_another_recording_is_caught_by_plain_verify(dep, capsys):
    """Red-team re-try: overwriting a row's wrapped_key with another recording's makes the audio
    unreadable (a quiet destruction of evidence); only ``verify --deep`` noticed it."""
    dep.sql("UPDATE recordings SET wrapped_key=(SELECT wrapped_key FROM recordings WHERE "
            "recording_id='n1_2.2_call001') WHERE recording_id='n1_1.1_call001'")
    code, out = dep.cli(capsys, "verify")
    assert code == 4 and "MISMATCH n1_1.1_call001: row wrapped_key differs from the ledger" in out, out


def test_a_key_rotation_keeps_verify_clean_and_the_new_wrapped_key_bound(dep, capsys):
    code, out = dep.cli(capsys, "keys", "rotate", "--to", "k2")
    assert code == 0, out
    cfg = dep.root / "cfg.yaml"
    cfg.write_text(cfg.read_text().replace("./keys/k1.key", "./keys/k2.key")
                   .replace("key_id: k1", "key_id: k2"))
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql("UPDATE recordings SET wrapped_key=(SELECT wrapped_key FROM recordings WHERE "
            "recording_id='n1_2.2_call001') WHERE recording_id='n1_1.1_call001'")
    code, out = dep.cli(capsys, "verify")
    assert code == 4 and "row wrapped_key differs from the ledger" in out, out


def test_a_call_row_without_recordings_deleted_by_hand_is_caught(dep, capsys):
    """Red-team re-try: the row of a call with no recording (a refused consent: the evidence that
    the caller said no) could be deleted without any check noticing; erasure still may."""
    dep.call("n1_3.3", caller="4917000000001", consent_decision="refused", record_decision="refused")
    dep.call("n1_4.4", caller="4917000000002", consent_decision="refused")
    assert dep.cli(capsys, "verify")[0] == 0
    dep.sql("DELETE FROM calls WHERE call_id='n1_3.3'")
    code, out = dep.cli(capsys, "verify")
    assert code == 4 and "MISMATCH call n1_3.3: sealed call row removed" in out, out
    dep.sql("INSERT INTO calls (call_id) VALUES ('n1_3.3')")  # a stand-in row is caught as unsealed
    assert dep.cli(capsys, "verify")[0] == 4
    dep.sql("DELETE FROM calls WHERE call_id='n1_3.3'")
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_4.4")  # the recorder's own removal is fine
    assert code == 0, out
    code, out = dep.cli(capsys, "verify")
    assert "n1_4.4" not in out and "call n1_3.3: sealed call row removed" in out, out
