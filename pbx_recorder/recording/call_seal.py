"""Seals over call metadata: an ``UPDATE calls SET caller_num=...`` must not go unnoticed.

The recorder signs the canonical JSON of a call row's identifying metadata with the node's
Ed25519 key (``signing.key_file``) each time it writes the row, and stores the base64
signature in ``calls.seal``.  ``verify`` recomputes it: a changed number, agent, time or
consent decision, a seal copied from another call (the call id is sealed too) or a removed
seal on a row that has metadata is a mismatch.

Sealed: :data:`SEALED_COLUMNS`, in their *plaintext* canonical form.  Since schema 6 the
numbers, CDR and consent evidence are stored encrypted (``catalog.protected_rows``): sealing and
checking open the row first (``reveal``), so a row keeps its seal when its numbers are
re-encrypted (the schema-6 data step, a key rotation) and a check without the catalog keys
reports the rows it cannot open instead of calling them altered.  A check with the keys also
recomputes the blind indexes: an index edited to hide a call from an erasure or a hold by number
is a mismatch too (the token itself is bound to its call id by AES-GCM).

Two versions (schema 20): a row whose ``rule_tags`` records the tags its recording rule set
(JSON, written by the recorder with the row: ``core.call_model.call_row``) is sealed as
:data:`SEALED_COLUMNS_V2` under the domain ``... v2``; a row without them (``''``: written before
schema 20, or by a writer that does not record them) as :data:`SEALED_COLUMNS` under ``... v1``,
byte for byte as before, so every older seal still verifies.  The version is read from the row,
but the domain is signed: blanking a recorded ``rule_tags`` makes ``verify`` recompute v1 bytes,
which the v2 signature does not match.  Four-eyes replay reads the recorded tags
(``service.four_eyes.set_by_rule``): a later edit of the rule in the configuration does not change
which older calls need a grant, and an edit of the catalog cell is a broken seal.

Not sealed: ``tags``, ``flags``, ``retention_class`` and
``updated_at``, which lifecycle jobs change without the signing key (retention set-class);
the numbers that matter for a recording are also in its signed manifest.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pbx_recorder.catalog import engine, named_rows_check
from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.catalog.protected_rows import INDEX_COLUMNS, NumberProtection
from pbx_recorder.errors import CryptoError
from pbx_recorder.recording.manifest import canonical_json

SEALED_COLUMNS = (
    "call_id", "pbx_node", "linkedid", "uniqueids", "direction", "caller_num", "caller_name", "callee_num",
    "did", "queue", "agent", "region", "accountcode", "started_at", "answered_at", "ended_at", "duration",
    "billsec", "disposition", "status", "rule", "record_decision", "consent_decision", "consent", "cdr",
)
#: the tags the call's recording rule set, recorded with the row (JSON list; '' = not recorded)
RULE_TAGS = "rule_tags"
#: sealed since schema 20, when the row records its rule's tags
SEALED_COLUMNS_V2 = (*SEALED_COLUMNS, RULE_TAGS)
_JSON_COLUMNS = ("uniqueids", "consent", "cdr", RULE_TAGS)
#: what ``verify`` (and four-eyes replay) says of a row whose seal does not verify
SEAL_MISMATCH = ("call metadata does not match its seal (numbers, agent, times, consent or its rule's "
                 "recorded tags changed)")
_DOMAIN = "pbx-recorder call seal v1"
_DOMAIN_V2 = "pbx-recorder call seal v2"


def _value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # REAL 12.0 and INTEGER 12 seal alike
    return value


def records_rule_tags(row: Mapping[str, Any]) -> bool:
    """The row records its rule's tags (sealed as v2); False for a row written before schema 20."""
    return row.get(RULE_TAGS) not in (None, "")


def sealed_bytes(row: Mapping[str, Any]) -> bytes:
    columns, domain = (SEALED_COLUMNS_V2, _DOMAIN_V2) if records_rule_tags(row) else (SEALED_COLUMNS, _DOMAIN)
    body = {c: _value(c, row.get(c)) for c in columns}
    return canonical_json({"domain": domain, "call": body})


def has_metadata(row: Mapping[str, Any]) -> bool:
    """False for a placeholder row (only the call id, as ``upsert_recording`` creates one)."""
    empty: tuple[Any, ...] = (None, "", "[]", "{}", [], {})
    return any(row.get(c) not in empty for c in SEALED_COLUMNS_V2 if c != "call_id")


#: a signature made ahead for given bytes, by the key that would sign them here, or None
#: (``recording.sign_ahead.Presigned``)
MadeAhead = Callable[[bytes], "str | None"]


def seal(row: Mapping[str, Any], key: Ed25519PrivateKey, made: MadeAhead | None = None) -> str:
    """The base64 seal of ``row``; ``made``: a signature made ahead for exactly these bytes, if
    one was (Ed25519 is deterministic: the same signature ``key`` makes here)."""
    data = sealed_bytes(row)
    ahead = made(data) if made is not None else None
    return ahead if ahead is not None else base64.b64encode(key.sign(data)).decode("ascii")


def seal_valid(row: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(str(row.get("seal") or ""), validate=True), sealed_bytes(row))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _row(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,))
    found = cur.fetchone()
    if found is None:
        return None
    return dict(zip([d[0] for d in cur.description], found, strict=True))


Reveal = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def reseal(conn: sqlite3.Connection, call_id: str, key: Ed25519PrivateKey,
           reveal: Reveal | None = None) -> None:
    """Seal the call row as it is now in the catalog (after the recorder wrote it)."""
    row = _row(conn, call_id)
    if row is not None:
        plain = reveal(row) if reveal is not None else row
        conn.execute("UPDATE calls SET seal = ? WHERE call_id = ?", (seal(plain, key), call_id))


#: ledger event written when a call row is sealed for the first time, and when the recorder
#: itself removes a sealed row (erasure, tombstones on restore): a sealed call whose row is gone
#: without the second is a row deleted by hand -- also a call without any recording (a refused
#: consent), which no recording's ledger entries would reveal
SEALED_EVENT, REMOVED_EVENT = "call_sealed", "call_removed"


def ledger_id(call_id: str) -> str:
    """The ledger's ``recording_id`` column for call events (never a recording id: ``call:`` prefix)."""
    return f"call:{call_id}"


class CallSealer:
    """``Catalog(sealer=...)``: called after every call row the recorder writes."""

    def __init__(self, key: Ed25519PrivateKey, clock: Any = None, reveal: Reveal | None = None) -> None:
        self.key = key
        self.clock = clock
        self.reveal = reveal  # NumberProtection.open_call: seal the plaintext canonical row

    #: what the seal covers: ``Catalog`` seals a row it writes from the values it binds when they
    #: are provably what is read back (``catalog.stored_form``), in the row's own INSERT/UPDATE
    #: (and ``numbers``, the token ``reveal`` opens)
    columns = (*SEALED_COLUMNS_V2, "numbers")

    def __call__(self, conn: sqlite3.Connection, call_id: str) -> None:
        row = _row(conn, call_id)  # the row as stored: what the seal covers (read once)
        if row is None:
            return
        conn.execute("UPDATE calls SET seal = ? WHERE call_id = ?", (self.seal_of(row), call_id))
        if not row.get("seal"):  # first seal of this row: its existence goes on record
            self.sealed(conn, call_id)

    def seal_of(self, stored: Mapping[str, Any], opened: Mapping[str, Any] | None = None,
                made: MadeAhead | None = None) -> str:
        """The seal of a row whose stored values (as read back) are ``stored``; ``opened``: its
        protected fields as ``reveal`` would open them (the writer just encrypted them);
        ``made``: signatures made ahead by this sealer's key (``recording.sign_ahead``)."""
        if opened is not None:
            return seal({**stored, **opened}, self.key, made)
        return seal(self.reveal(stored) if self.reveal is not None else stored, self.key, made)

    def sealed(self, conn: sqlite3.Connection, call_id: str) -> None:
        """The ``call_sealed`` ledger entry of a row sealed for the first time."""
        import time

        from pbx_recorder.recording import ledger

        now = (self.clock or time.time)()
        # (no payload: the entry's recording_id, call:<call id>, names the call)
        ledger.append(conn, SEALED_EVENT, ledger_id(call_id), None, now)


def record_removed(conn: sqlite3.Connection, call_id: str, why: str, now: float) -> None:
    """The recorder removes a call row on purpose (in the caller's transaction)."""
    from pbx_recorder.recording import ledger

    ledger.append(conn, REMOVED_EVENT, ledger_id(call_id), {"call_id": call_id, "why": why}, now)


def vanished_calls(conn: sqlite3.Connection, call_id: str | None = None,
                   after_seq: int = 0) -> list[str]:
    """Calls the ledger says were sealed whose row is gone without a removal entry (``after_seq``:
    sealed after that ledger position).  SQLite answers it: no Python set of every call id."""
    hint = engine.no_index_hint(conn)
    sql = (f"SELECT DISTINCT l.recording_id FROM ledger l {hint} WHERE l.event = ? AND l.seq > ? "
           f"AND l.recording_id NOT IN (SELECT recording_id FROM ledger {hint} WHERE event = ? "
           "AND seq > ?) AND "
           "NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = substr(l.recording_id, 6) AND c.seal != '') "
           "ORDER BY l.recording_id")
    # (a bare stand-in row -- no metadata, no seal -- must not hide a removed sealed call; a removal
    # entry always follows the call's sealing entry, so only those after ``after_seq`` are read)
    gone = [str(r[0])[len("call:"):]
            for r in conn.execute(sql, (SEALED_EVENT, after_seq, REMOVED_EVENT, after_seq))]
    return [c for c in gone if call_id is None or c == call_id]


RESURRECTED = ("sealed call row present after the ledger recorded its removal (an erased or removed call "
               "put back?)")


def resurrected_calls(conn: sqlite3.Connection) -> list[str]:
    """Calls with a sealed row whose last seal entry in the ledger is their removal: the recorder
    removed the row (erasure, a restore's tombstone) and it is back, sealed, without the
    ``call_sealed`` entry the recorder writes with every row it seals anew -- an erased call's old
    row put back from a backup by hand.  Reads every removal entry (erasures: few) and probes the
    ledger's recording index for each; a full pass only (``verify`` without ``--since-last``)."""
    sql = ("SELECT DISTINCT r.recording_id FROM ledger r WHERE r.event = ? AND NOT EXISTS (SELECT 1 FROM "
           "ledger s WHERE s.recording_id = r.recording_id AND s.event = ? AND s.seq > r.seq) AND EXISTS "
           "(SELECT 1 FROM calls c WHERE c.call_id = substr(r.recording_id, 6) AND c.seal != '') "
           "ORDER BY r.recording_id")
    return [str(r[0])[len("call:"):] for r in conn.execute(sql, (REMOVED_EVENT, SEALED_EVENT))]


def _opened(row: dict[str, Any], numbers: NumberProtection | None) -> tuple[Mapping[str, Any] | None, str]:
    """(the plaintext row, '') or (None, why it cannot be checked)."""
    if not is_token(row.get("numbers")):
        return row, ""
    if numbers is None:
        return None, "numbers encrypted: checking this seal needs the catalog keys"
    try:
        plain = numbers.open_call(row)
    except CryptoError as exc:
        return None, str(exc)
    caller, callee = str(plain.get("caller_num") or ""), str(plain.get("callee_num") or "")
    # while a blind-index key rotation runs a row may be under either key (``catalog.index_rotation``)
    index = numbers.index
    expect = dict(zip(INDEX_COLUMNS, (index.fulls(caller), index.last4s(caller),
                                      index.fulls(callee), index.last4s(callee)), strict=True))
    if any(str(row.get(c) or "") not in v for c, v in expect.items()):
        return None, "number index does not match the call's numbers (a search, hold or erasure by number " \
                     "would miss or mis-match this call)"
    return plain, ""


def check_calls(conn: sqlite3.Connection, public_key: Ed25519PublicKey,
                call_id: str | None = None, numbers: NumberProtection | None = None, *, where: str = "",
                params: tuple[Any, ...] = (), batch: int = 500) -> list[tuple[str, str]]:
    """(call id, what) for every call row whose seal is missing or does not verify; the whole
    table is read in keyset batches (``where``: only those rows, for an incremental pass).  Rows
    whose numbers are encrypted are opened with ``numbers``; their blind indexes are checked too,
    and that every number they name has an index row (``catalog.named_rows_check``)."""
    from pbx_recorder import scan

    names = scan.columns_of(conn, "calls")
    if "seal" not in names:
        return []
    if call_id is not None:
        where, params = "call_id = ?", (call_id,)
    out = []
    for chunk in scan.batches(conn, "calls", names, where=where, params=params, batch=batch):
        opened: list[named_rows_check.Checked] = []
        for _, stored in chunk:
            row, why = seal_problem(stored, public_key, numbers)
            opened.append((str(stored["call_id"]), stored, row))
            if why:
                out.append((str(stored["call_id"]), why))
        if numbers is not None and "caller_bi" in names:  # every number it names can be found by
            out += named_rows_check.missing(conn, numbers, opened)
    return out


def seal_problem(stored: Mapping[str, Any], public_key: Ed25519PublicKey, numbers: NumberProtection | None
                 ) -> tuple[Mapping[str, Any] | None, str]:
    """(the row opened, or None when it cannot be, and what is wrong with its seal: '' when
    nothing) for one stored call row: its numbers do not open or do not match their blind
    indexes, it has metadata but no seal, or the seal does not verify."""
    row, why = _opened(dict(stored), numbers)
    if row is None:
        return None, why
    if not row.get("seal"):
        return row, "call metadata not sealed" if has_metadata(row) else ""
    if not seal_valid(row, public_key):
        return row, SEAL_MISMATCH
    return row, ""


def call_seal_problem(conn: Any, call_id: str, public_key: Ed25519PublicKey,
                      numbers: NumberProtection | None) -> str:
    """:func:`stored_call_problem` of the call's stored row ('' also when there is no row)."""
    cur = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,))
    found = cur.fetchone()
    if found is None:
        return ""
    return stored_call_problem(conn, dict(zip([c[0] for c in cur.description], found, strict=True)),
                               public_key, numbers)


def stored_call_problem(conn: Any, stored: Mapping[str, Any], public_key: Ed25519PublicKey,
                        numbers: NumberProtection | None) -> str:
    """:func:`seal_problem` of a call row as stored ('' when nothing); for a row without a seal,
    whether the ledger says it was sealed (a sealed row replaced by a bare stand-in that names
    nothing: ``verify``'s :func:`vanished_calls`, for one call, by the ledger's index); for a sealed
    row, whether the ledger's last word on it is its removal (:data:`RESURRECTED`: an erased call's
    row put back).  A row with a cell no writer of ours makes (a BLOB) is a problem too."""
    try:
        row, why = seal_problem(stored, public_key, numbers)
    except (TypeError, ValueError) as exc:  # a cell no writer of ours makes (a BLOB, a NaN)
        return f"call row cannot be checked: {type(exc).__name__}"
    if why or row is None:
        return why
    last = conn.execute("SELECT event FROM ledger WHERE recording_id = ? AND event IN (?, ?) "
                        "ORDER BY seq DESC LIMIT 1",
                        (ledger_id(str(stored.get("call_id") or "")), SEALED_EVENT, REMOVED_EVENT)).fetchone()
    if row.get("seal"):  # a valid seal: unless the recorder removed this row (put back from a backup)
        return RESURRECTED if last is not None and last[0] == REMOVED_EVENT else ""
    if last is not None and last[0] == SEALED_EVENT:
        return "sealed call row replaced by an unsealed one (the ledger recorded its seal)"
    return ""


def seal_unsealed(conn: sqlite3.Connection, key: Ed25519PrivateKey, reveal: Reveal | None = None) -> int:
    """Seal every call row that has metadata and no seal (rows written before sealing existed),
    each with its ``call_sealed`` ledger entry, as the recorder seals a row; returns how many.
    Only for ``ledger checkpoint --init``: a deliberate act after checking.  One transaction: a
    crash leaves no row sealed without its entry (on PostgreSQL each statement would commit alone)."""
    import time

    from pbx_recorder.lifecycle.journal import Tx
    from pbx_recorder.recording import ledger

    cur = conn.execute("SELECT * FROM calls WHERE seal = ''")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
    todo = [r for r in rows if has_metadata(r)]
    if not todo:
        return 0
    if conn.in_transaction:  # (a legacy connection's implicit read transaction)
        conn.commit()
    with Tx(conn):
        for row in todo:
            done = conn.execute("UPDATE calls SET seal = ? WHERE call_id = ? AND seal = ''",
                                (seal(reveal(row) if reveal is not None else row, key), row["call_id"]))
            if done.rowcount == 1:
                ledger.append(conn, SEALED_EVENT, ledger_id(str(row["call_id"])), None, time.time())
    return len(todo)
