"""A query hold's free fields at rest: ``agent`` as a remote agent's dial string names a mobile
number, and ``holds.value`` kept the query in clear (only its caller/callee/number filters were
blind indexes).  The stored query is now one token under the catalog key, bound to the hold id;
the ledger's digest is of the token, so ``verify`` stays clean; ``catalog migrate`` seals the rows
older versions wrote (with a ``hold_rekeyed`` entry), never one the ledger contradicts; ``keys
rotate`` seals them again under the new key.  SQLite and, with ``PBXR_TEST_CATALOG=postgresql``,
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tamper_support import NOW, Deployment

from pbx_recorder.catalog import Catalog, engine, query_holds_sealed_pass
from pbx_recorder.catalog.number_keys import protection_for, protection_under
from pbx_recorder.catalog.number_migration import protect
from pbx_recorder.catalog.number_protection import is_token, token_key_id
from pbx_recorder.config import load_config
from pbx_recorder.errors import CryptoError, PolicyRefusal
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import Tx, default_ledger, open_catalog
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.rekey import still_under_other_keys
from pbx_recorder.recording.verify_bindings import HOLDS_LEDGER, hold_value_digest

MOBILE = "4915199887766"  # the remote agent's mobile
DIAL = f"Local/{MOBILE}@from-internal"
QUERY = {"agent": DIAL, "queue": "sales"}


class Protected(Deployment):
    """The tamper deployment with the catalog's numbers encrypted and blind-indexed (as the daemon
    runs it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.catalog.close()
        self.config = load_config(root / "cfg.yaml", env={})
        self.numbers = protection_for(self.config)
        self.catalog = Catalog(root / "cat.db", clock=lambda: NOW,
                               sealer=CallSealer(self.sign_key, reveal=self.numbers.open_call),
                               numbers=self.numbers)
        self.shipper.catalog = self.catalog
        protect(self.catalog._conn(), self.numbers)

    def conn(self):
        return open_catalog(self.root / "cat.db")

    def holds(self, conn, numbers=None) -> HoldManager:
        return HoldManager(conn, {"hot": self.tier}, hash_key=read_hash_key(self.root / "hash.key"),
                           numbers=numbers)

    def stored(self) -> dict[str, str]:
        conn = self.conn()
        try:
            return {str(h): str(v) for h, v in conn.execute("SELECT hold_id, value FROM holds")}
        finally:
            conn.close()

    def catalog_text(self) -> str:
        """What a copy of the catalog gives: on SQLite the bytes of the file and its WAL after a
        checkpoint; on both engines the holds, ledger and audit rows."""
        conn = self.conn()
        try:
            parts = [str(r) for r in conn.execute("SELECT * FROM holds").fetchall()]
            parts += [str(p) for (p,) in conn.execute("SELECT payload FROM ledger")]
            parts += [str(d) for (d,) in conn.execute("SELECT detail FROM audit_log")]
            if not engine.is_postgres(conn):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
        files = [self.root / "cat.db", self.root / "cat.db-wal"]
        parts += [f.read_bytes().decode("latin-1") for f in files if f.exists()]
        return "\n".join(parts)


@pytest.fixture()
def dep(tmp_path):
    d = Protected(tmp_path)
    yield d
    d.close()
    engine.close_pools()


def _hold(dep, capsys, query=QUERY) -> str:
    code, out = dep.cli(capsys, "hold", "add", "--query", json.dumps(query), "--reason", "FCA inquiry")
    assert code == 0, out
    return out.split(":")[0].strip()


def _old_hold(dep, hold_id: str, value: str, ledgered: str | None = None) -> None:
    """A query hold as the version before wrote it: the query in clear, its ledger entry the
    digest of ``ledgered`` (default: of that value)."""
    conn = dep.conn()
    try:
        with Tx(conn):
            conn.execute("INSERT INTO holds (hold_id, scope, value, value4, reason, created_by, created_at) "
                         "VALUES (?, 'query', ?, '', 'case 9', 'legal', ?)", (hold_id, value, NOW))
            default_ledger()(conn, "hold_added", HOLDS_LEDGER, {
                "hold_id": hold_id, "scope": "query",
                "value_sha256": hold_value_digest(value if ledgered is None else ledgered, "")}, NOW)
            conn.execute("INSERT INTO catalog_settings (name, value) VALUES ('holds_ledgered', '1') "
                         "ON CONFLICT (name) DO NOTHING")
    finally:
        conn.close()


def test_the_dial_string_is_not_in_the_catalog_and_later_calls_of_the_agent_are_held(dep, capsys):
    hold_id = _hold(dep, capsys)  # the agent has no call yet
    assert is_token(dep.stored()[hold_id])
    text = dep.catalog_text()
    assert MOBILE not in text and DIAL not in text
    dep.call("n1_1.1", agent=DIAL, queue="sales", started_at=NOW - 30)
    rid = dep.record("n1_1.1")  # stored after the hold: held by its own row at once
    assert dep.catalog.get_recording(rid)["legal_hold"]
    dep.call("n1_2.2", agent="alice", queue="sales", started_at=NOW - 20)
    assert not dep.catalog.get_recording(dep.record("n1_2.2"))["legal_hold"]
    code, out = dep.cli(capsys, "verify")  # the ledger's digest is the token's
    assert code == 0, out
    dep.sql("UPDATE recordings SET legal_hold=0", "DELETE FROM hold_recordings")  # the holds row alone
    code, out = dep.cli(capsys, "erase", "--call-id", "n1_1.1")
    receipt = json.loads(out[out.index("{"):])
    assert receipt["objects"] == [] and [w["recording_id"] for w in receipt["withheld"]] == [rid]
    code, out = dep.cli(capsys, "hold", "list", "--json")  # shown opened, its free fields masked
    assert code == 0 and json.loads(json.loads(out[:out.rindex("]") + 1])[0]["value"]) == {
        "agent": "Local/491******7766@from-internal", "queue": "sales"}


def test_a_token_moved_onto_another_hold_does_not_open(dep, capsys):
    first = _hold(dep, capsys)
    second = _hold(dep, capsys, {"queue": "support"})
    token = dep.stored()[first]
    assert json.loads(query_hold_rows.opened(dep.numbers, first, token)) == QUERY
    with pytest.raises(CryptoError):
        query_hold_rows.opened(dep.numbers, second, token)
    dep.sql(f"UPDATE holds SET value = '{token}' WHERE hold_id = '{second}'")
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "hold value differs from the ledger" in out and second in out


def test_without_number_keys_a_free_field_naming_a_number_is_refused(dep):
    conn = dep.conn()
    try:
        with pytest.raises(PolicyRefusal, match="catalog without number protection"):
            dep.holds(conn).add("query", json.dumps(QUERY), "case 3", "legal", now=NOW)
        assert conn.execute("SELECT COUNT(*) FROM holds").fetchone()[0] == 0
        kept = dep.holds(conn).add("query", json.dumps({"agent": "bob", "start": NOW - 99}), "case 3",
                                   "legal", now=NOW)
        assert json.loads(kept["value"]) == {"agent": "bob", "start": NOW - 99}  # nothing to hide
    finally:
        conn.close()


def test_catalog_migrate_seals_an_old_row_once_and_verify_stays_clean(dep, capsys):
    _old_hold(dep, "H-old", json.dumps(QUERY, sort_keys=True))
    assert dep.cli(capsys, "verify")[0] == 0
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "query holds sealed 1 of 1" in out, out
    stored = dep.stored()
    assert is_token(stored["H-old"]) and MOBILE not in stored["H-old"]
    assert MOBILE not in dep.catalog_text()
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
    conn = dep.conn()
    try:
        said = [json.loads(p) for (p,) in conn.execute(
            "SELECT payload FROM ledger WHERE recording_id = ? AND event = 'hold_rekeyed'", (HOLDS_LEDGER,))]
        assert not query_holds_sealed_pass.pending(conn, dep.numbers)
    finally:
        conn.close()
    assert [(p["hold_id"], p["was"]) for p in said] == [("H-old", "clear")]
    code, out = dep.cli(capsys, "catalog", "migrate", "--force")  # once: a token is only read
    assert code == 0 and dep.stored() == stored and "query holds sealed" not in out
    dep.call("n1_1.1", agent=DIAL, queue="sales")
    rid = dep.record("n1_1.1")
    assert dep.catalog.get_recording(rid)["legal_hold"]  # the sealed old hold still holds
    assert dep.cli(capsys, "verify")[0] == 0


def test_catalog_migrate_does_not_seal_over_a_row_the_ledger_contradicts(dep, capsys):
    _old_hold(dep, "H-edited", json.dumps({"queue": "nothing"}), ledgered=json.dumps(QUERY))
    code, out = dep.cli(capsys, "catalog", "migrate")
    assert code == 0 and "query holds sealed 0 of 1" in out
    assert "H-edited: its value differs from the ledger" in out
    assert dep.stored()["H-edited"] == json.dumps({"queue": "nothing"})  # an edit is not laundered
    code, out = dep.cli(capsys, "verify")
    assert code != 0 and "H-edited" in out and "hold value differs from the ledger" in out


def test_keys_rotate_seals_the_query_holds_again_under_the_new_key(dep, capsys):
    hold_id = _hold(dep, capsys)
    dep.ring.generate("k2")
    conn = dep.conn()
    try:
        assert "holds.value (number tokens)" in still_under_other_keys(conn, "k2")
        report = query_holds_sealed_pass.run(conn, protection_under(dep.config, "k2"))
        assert (report.read, report.resealed, report.left) == (1, 1, [])
        assert "holds.value (number tokens)" not in still_under_other_keys(conn, "k2")
    finally:
        conn.close()
    token = dep.stored()[hold_id]
    assert token_key_id(token) == "k2"
    assert json.loads(query_hold_rows.opened(protection_under(dep.config, "k2"), hold_id, token)) == QUERY
    code, out = dep.cli(capsys, "verify")
    assert code == 0, out
