"""Blind-index key rotation: a new privacy HMAC key, every keyed number hash of the catalog re-made.

The blind indexes (``calls.caller_bi``/``caller_bi4``/``callee_bi``/``callee_bi4``, ``call_numbers``)
and the caller holds are keyed hashes of numbers under the privacy HMAC key
(``privacy.hash_key_file``).  ``keys rotate-index`` replaces that key:

1. **start**: a new key is made; the current one is kept beside it as ``<key file>.previous`` and the
   new one takes the key file's place (``<key file>.next`` first, then an atomic rename).  From then
   on every writer indexes under the new key (the daemon's index follows the file:
   ``number_keys.KeyFileIndex``) and every lookup -- ``calls search`` by full number or last 4,
   ``hold add --caller``, ``erase --caller``, the late-copy guard, ``verify`` -- matches either key
   (``number_protection.lookup_keys``): a row not re-indexed yet is found, and, one value per
   column, never twice.
2. **holds**: each active caller hold becomes ``new|old`` (its number found through a call that has
   it); open or partial erasure requests get their subject under the new key the same way
   (:mod:`pbx_recorder.catalog.index_rotation_subjects`).
3. **calls**, then **sweep**: every call in ``call_id`` batches, one transaction each: its numbers
   are opened with the catalog key, its four indexes and its ``call_numbers`` rows (the CDR's, the
   manifest copies' of rows written before schema 11, and the sealed numbers its row does not hold:
   ``catalog.extra_numbers``) recomputed under the new key where they differ.  The sweep is the same
   pass again (rows a writer indexed under the old key while the first pass ran); it rewrites
   nothing else.
4. **finish**: holds back to the new hash alone, the previous key retired (deleted, or moved to
   ``retired-index-keys/<key id>.key`` with ``--keep-old``), the rotation marked done.

Progress is kept in ``catalog_settings`` (``index_key_rotation``), written in the batch's own
transaction: a crash loses at most the batch under way, and the next run resumes where it stopped
(the key files are settled first: a crash between making the new key and renaming it is finished).
Memory: one batch.  Nothing here prints or stores a number or a key.

Not re-keyed: erasure tombstones and the subjects of finished erasure requests.  The erased number
exists nowhere to be hashed again (that is the point of erasure); a restored backup from before the
rotation still matches them through its own (old-key) indexes.  See README, "Blind-index key
rotation".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import extra_numbers, manifest_numbers, named_rows, step_state
from pbx_recorder.catalog.index_rotation_subjects import SubjectRekey
from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher, is_token, register_previous
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CatalogError, CryptoError, PolicyRefusal
from pbx_recorder.hash_key import previous_path, read_hash_key
from pbx_recorder.lifecycle.number_lookup import all_protected
from storage import atomic, file_modes

STATE = "index_key_rotation"
NEXT_SUFFIX = ".next"
RETIRED_DIR = "retired-index-keys"
PHASES = ("holds", "calls", "sweep", "finish", "done")
DEFAULT_BATCH = 500


COLUMNS = ("call_id", "numbers", "caller_bi", "caller_bi4", "callee_bi", "callee_bi4")


def key_id(key: bytes) -> str:
    """A name for an index key that reveals nothing of it (audit rows, state, retired file)."""
    return "ik-" + hmac.new(key, b"pbx-recorder index key id", hashlib.sha256).hexdigest()[:12]


def next_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + NEXT_SUFFIX)


def load_state(conn: Any) -> dict[str, Any] | None:
    return step_state.load(conn, STATE)


def _save_state(conn: Any, state: dict[str, Any]) -> None:
    step_state.save(conn, STATE, state)


def in_progress(conn: Any) -> bool:
    state = load_state(conn)
    return state is not None and state.get("phase") != "done"


def _write_key(path: Path, key: bytes) -> None:
    atomic.write_bytes(path, key + b"\n")
    file_modes.make_private(path)


@dataclass
class Report:
    old: str = ""
    new: str = ""
    resumed: bool = False
    calls_read: int = 0
    calls_reindexed: int = 0
    holds_rekeyed: int = 0
    requests_rekeyed: int = 0
    untranslated_holds: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retired: str = ""  # '' | 'deleted' | the path it was moved to
    finished: bool = False


Progress = Callable[[str, int], None]


class IndexRotation:
    """One rotation of the index key in ``key_file`` over the catalog behind ``conn``."""

    def __init__(self, conn: Any, key_file: str | Path, cipher: NumberCipher, *,
                 batch: int = DEFAULT_BATCH, progress: Progress | None = None,
                 after_batch: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.key_file = Path(key_file)
        self.cipher = cipher
        self.batch = batch
        self.progress = progress
        self.after_batch = after_batch  # tests: a crash between two batches
        self.clock = clock
        self.report = Report()
        self.subjects: SubjectRekey | None = None  # holds and erasure requests (once the keys are read)

    # -- the key files -----------------------------------------------------------------
    def begin(self) -> dict[str, Any]:
        """Start a rotation, or settle the key files of one that was interrupted; its state."""
        state = load_state(self.conn)
        if state is not None and state.get("phase") != "done":
            self.report.resumed = True
            self._settle(state)
            return state
        if not all_protected(self.conn):
            raise CatalogError("the catalog still has numbers in clear: run `pbx-recorder catalog migrate` "
                               "before rotating the index key")
        _refuse_pending_manifests(self.conn)
        previous, nxt = previous_path(self.key_file), next_path(self.key_file)
        if previous.exists() and nxt.exists() and _raw(previous) == _raw(self.key_file):
            previous.unlink()  # a start interrupted before its state was saved: nothing was done yet
            nxt.unlink()
        if previous.exists():
            raise CryptoError(f"{previous} exists but no rotation is recorded in this catalog: another "
                              "catalog's rotation, or a kept key; move it away before a new rotation")
        current = read_hash_key(self.key_file)
        new = secrets.token_hex(32).encode()
        _write_key(nxt, new)
        _write_key(previous, current)
        state = {"old": key_id(current), "new": key_id(new), "phase": "holds", "cursor": "", "done": 0,
                 "started_at": self.clock()}
        self.conn.execute("BEGIN IMMEDIATE")
        _save_state(self.conn, state)
        self.conn.execute("COMMIT")
        self._settle(state)
        return state

    def _settle(self, state: dict[str, Any]) -> None:
        """The key file holds the new key and ``.previous`` the old one (an interrupted start is
        finished); anything else is refused, naming the file."""
        previous, nxt = previous_path(self.key_file), next_path(self.key_file)
        if key_id(_raw(self.key_file)) == state["old"] and nxt.exists() and key_id(_raw(nxt)) == state["new"]:
            os.replace(nxt, self.key_file)
            atomic.fsync_dir(self.key_file.parent)
        if key_id(_raw(self.key_file)) != state["new"]:
            raise CryptoError(f"{self.key_file} is not the index key the rotation in progress made "
                              f"({state['new']}): restore it, or copy it from the node that started it")
        if not previous.exists() or key_id(_raw(previous)) != state["old"]:
            raise CryptoError(f"{previous} is missing or is not the index key being replaced "
                              f"({state['old']})")
        self.report.old, self.report.new = state["old"], state["new"]
        self.new_key, self.old_key = read_hash_key(self.key_file), _raw(previous)
        self.new = BlindIndex(self.new_key, alone=True)
        self.old = BlindIndex(self.old_key, alone=True)
        self.numbers = NumberProtection(self.cipher, self.new)
        self.subjects = SubjectRekey(self.conn, self.numbers, self.report, new=self.new, new_key=self.new_key,
                                     old=self.old, old_key=self.old_key, clock=self.clock)

    # -- the run -----------------------------------------------------------------------
    def run(self, *, keep_old: bool = False) -> Report:
        done = load_state(self.conn)
        previous = previous_path(self.key_file)
        if done is not None and done.get("phase") == "done" and previous.exists() and \
                key_id(_raw(previous)) == done["old"]:  # a crash after the last commit: retire now
            self.report.old, self.report.new, self.report.resumed = done["old"], done["new"], True
            self.new_key = read_hash_key(self.key_file)
            self._retire(done, keep_old=keep_old)
            return self.report
        state = self.begin()
        if state["phase"] == "holds":
            self._subjects().rekey_holds()
            state = self._rekey_requests(state)
            state = self._next_phase(state, "calls")
        while state["phase"] in ("calls", "sweep"):
            state = self._pass(state)
        if state["phase"] == "finish":
            self._finish(state, keep_old=keep_old)
        return self.report

    def reindex(self) -> Report:
        """Every call's indexes under the current key, from its decrypted numbers alone (the key
        they were made with is not needed): a catalog restored from a backup taken before a
        rotation.  Resumable like the rotation (phase ``reindex``); caller holds and erasure
        requests are left as they are (their numbers are not known without the old key)."""
        state = load_state(self.conn)
        if state is None or state.get("phase") != "reindex":
            if state is not None and state.get("phase") not in ("done", None):
                raise CatalogError(f"an index key rotation is in progress (phase {state['phase']}): finish "
                                   "it with `keys rotate-index`")
            _refuse_pending_manifests(self.conn)
            self.new_key = read_hash_key(self.key_file)
            state = {"old": "", "new": key_id(self.new_key), "phase": "reindex", "cursor": "", "done": 0,
                     "started_at": self.clock()}
        else:
            self.report.resumed = True
            self.new_key = read_hash_key(self.key_file)
            if key_id(self.new_key) != state["new"]:
                raise CryptoError(f"{self.key_file} is not the index key this re-index started with "
                                  f"({state['new']})")
        self.report.new = state["new"]
        self.new = BlindIndex(self.new_key, alone=True)
        self.numbers = NumberProtection(self.cipher, self.new)
        self.subjects = SubjectRekey(self.conn, self.numbers, self.report, new=self.new, new_key=self.new_key,
                                     clock=self.clock)
        while state["phase"] == "reindex":
            state = self._pass(state)
        self.report.finished = True
        return self.report

    def _next_phase(self, state: dict[str, Any], phase: str) -> dict[str, Any]:
        state = {**state, "phase": phase, "cursor": "", "done": 0}
        self.conn.execute("BEGIN IMMEDIATE")
        _save_state(self.conn, state)
        self.conn.execute("COMMIT")
        return state

    def _subjects(self) -> SubjectRekey:
        assert self.subjects is not None, "the keys are read first (begin, reindex)"
        return self.subjects

    def _rekey_requests(self, state: dict[str, Any]) -> dict[str, Any]:
        """Erasure requests still to be completed: their subject under the new key, as far as a
        call they withheld or an index lookup finds them (the rest during the calls pass)."""
        pairs = self._subjects().request_pairs(state)
        self.conn.execute("BEGIN IMMEDIATE")
        self._subjects().apply(pairs)
        state = {**state, "requests": self._subjects().requests_done}
        _save_state(self.conn, state)
        self.conn.execute("COMMIT")
        return state

    def _pass(self, state: dict[str, Any]) -> dict[str, Any]:
        """One batch of the calls pass (or the sweep), read and written in one transaction (a
        writer changing a call meanwhile waits: no index is computed from a stale row); the state
        after it."""
        if self._subjects().pending is None:
            self._subjects().load_pending(state)
        failed = 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            rows = self.conn.execute(
                "SELECT call_id, numbers, caller_bi, caller_bi4, callee_bi, callee_bi4 FROM calls "
                "WHERE call_id > ? ORDER BY call_id LIMIT ?", (state["cursor"], self.batch)).fetchall()
            if rows:
                state = self._batch(state, rows)
            else:  # the end of this pass
                failed = int(state.get("errors", 0)) if state["phase"] in ("sweep", "reindex") else 0
                after = {"calls": "sweep", "sweep": "finish", "reindex": "done"}[state["phase"]]
                after = state["phase"] if failed else after
                state = {**state, "phase": after, "cursor": "", "done": 0, "errors": 0}
            _save_state(self.conn, state)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        if not rows:
            return self._failed(int(failed), state)
        self.report.calls_read += len(rows)
        if self.progress is not None:
            self.progress(state["phase"], len(rows))
        if self.after_batch is not None:
            self.after_batch(state)
        return state

    def _batch(self, state: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
        """Re-index ``rows`` (in the caller's transaction); the state after them."""
        ids = [str(r[0]) for r in rows]
        marks = ",".join("?" * len(ids))
        manifests: dict[str, list[tuple[str, Any]]] = {}
        sql = f"SELECT recording_id, call_id, manifest FROM recordings WHERE call_id IN ({marks})"
        for rid, call_id, manifest in self.conn.execute(sql, ids):
            manifests.setdefault(str(call_id), []).append((str(rid), manifest))
        named_now: dict[str, set[str]] = {}
        sql = f"SELECT call_id, bi FROM call_numbers WHERE call_id IN ({marks})"
        for call_id, bi in self.conn.execute(sql, ids):
            named_now.setdefault(str(call_id), set()).add(str(bi))
        extras = extra_numbers.tokens_of(self.conn, ids)
        errors_before = len(self.report.errors)
        for row in rows:
            self._reindex(dict(zip(COLUMNS, row, strict=True)), manifests.get(str(row[0]), []),
                          named_now.get(str(row[0]), set()), extras.get(str(row[0])))
        return {**state, "cursor": ids[-1], "done": int(state["done"]) + len(rows),
                "requests": self._subjects().requests_done,
                "errors": int(state.get("errors", 0)) + len(self.report.errors) - errors_before}

    def _failed(self, failed: int, state: dict[str, Any]) -> dict[str, Any]:
        """After a sweep with rows that could not be opened: refuse to go on (the sweep starts over
        at the next run; the previous key stays in use)."""
        if failed:
            first = self.report.errors[0] if self.report.errors else "see the earlier run"
            raise CryptoError(f"{failed} call rows could not be re-indexed ({first}); the previous "
                              "index key is kept: fix them and run `keys rotate-index` again")
        return state

    def _reindex(self, row: dict[str, Any], manifests: list[tuple[str, Any]], named_now: set[str],
                 extras: str | None = None) -> None:
        call_id = str(row["call_id"])
        if not is_token(row["numbers"]) and extras is None:
            return  # a row that names no number (nothing was ever indexed for it)
        try:
            plain = self.numbers.open_call(row)
            named = self.numbers.named_numbers(plain.get("caller_num"), plain.get("callee_num"),
                                               plain.get("cdr"))
            for rid, manifest in manifests:  # rows written before schema 11 keep their manifest's numbers
                opened = self.numbers.open_manifest(rid, manifest)
                if isinstance(opened, dict):
                    named |= self.numbers.named_numbers(opened.get("cdr"), opened.get("callee_num"))
            if extras is not None:  # what the call's own row does not hold (schema 12)
                named |= {self.new.full_of_digits(d)
                          for d in extra_numbers.open_token(self.numbers, call_id, extras)}
        except CryptoError as exc:  # one altered row must not stop the others; the key is not retired
            self.report.errors.append(f"call {call_id}: {exc}")
            return
        caller, callee = str(plain.get("caller_num") or ""), str(plain.get("callee_num") or "")
        subjects = self._subjects()
        subjects.apply(subjects.translate([n for n in (caller, callee) if n], [call_id]))
        want = {"caller_bi": self.new.full(caller), "caller_bi4": self.new.last4(caller),
                "callee_bi": self.new.full(callee), "callee_bi4": self.new.last4(callee)}
        if any(str(row[c] or "") != v for c, v in want.items()):
            self.conn.execute(f"UPDATE calls SET {', '.join(c + ' = ?' for c in want)} WHERE call_id = ?",
                              [*want.values(), call_id])
            self.report.calls_reindexed += 1
        named -= {want["caller_bi"], want["callee_bi"]}  # the row's own: found by the row (named_rows)
        if named != named_now:
            self.conn.execute("DELETE FROM call_numbers WHERE call_id = ?", (call_id,))
            named_rows.insert(self.conn, call_id, named, ())

    # -- the end ---------------------------------------------------------------------------
    def _finish(self, state: dict[str, Any], *, keep_old: bool) -> None:
        if self.report.errors:
            raise CryptoError(f"{len(self.report.errors)} rows could not be re-indexed "
                              f"({self.report.errors[0]}); the previous index key is kept: fix them "
                              "and run `keys rotate-index` again")
        self._subjects().rekey_holds()  # a hold added by an older process during the rotation
        if self.report.untranslated_holds:
            raise PolicyRefusal(
                f"caller hold(s) {', '.join(self.report.untranslated_holds)} name a number no call has: "
                "they cannot be re-keyed; add each again by number (`hold add --caller NUMBER`), release "
                "the old one, then run `keys rotate-index` again (the previous key stays in use until then)")
        self.conn.execute("BEGIN IMMEDIATE")
        self._subjects().collapse_holds()
        _save_state(self.conn, {**state, "phase": "done", "finished_at": self.clock(), "cursor": ""})
        self.conn.execute("COMMIT")
        self._retire(state, keep_old=keep_old)

    def _retire(self, state: dict[str, Any], *, keep_old: bool) -> None:
        """The previous key out of use: deleted, or (``keep_old``) moved to ``retired-index-keys/``."""
        previous = previous_path(self.key_file)
        if keep_old:
            kept = self.key_file.parent / RETIRED_DIR / f"{state['old']}.key"
            file_modes.private_dir(kept.parent, tighten=False)
            os.replace(previous, kept)
            self.report.retired = str(kept)
        else:
            previous.unlink()
            self.report.retired = "deleted"
        atomic.fsync_dir(self.key_file.parent)
        register_previous(self.new_key, None)
        self.report.finished = True


def _refuse_pending_manifests(conn: Any) -> None:
    """A catalog with manifests stored under schema 11 whose numbers are not sealed yet: a rotation
    would drop the index of a number only such a manifest names."""
    waiting = manifest_numbers.pending(conn)
    if waiting:
        raise CatalogError(f"{waiting}: run `pbx-recorder catalog migrate` (it reads those signed "
                           "manifests back from storage) before rotating or re-making the index")


def _raw(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise CryptoError(f"cannot read index key {path}: {exc.strerror}") from exc
