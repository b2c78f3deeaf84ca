"""Bulk writes with their signatures made ahead by a helper process (``recording.sign_ahead``):
the same rows, seals and signed manifests as the writer signing alone (Ed25519 is
deterministic), every signature taken from the helper for new calls, and the writer signing
itself whenever the helper's bytes are not its own: a call already stored, a payload that does
not pickle, a helper with the wrong key, a helper killed in the middle of a batch."""

from __future__ import annotations

import base64
import logging
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.catalog.seal_ahead import new_call_sealed_bytes
from pbx_recorder.errors import CallIdCollision
from pbx_recorder.recording import ledger, sign_ahead
from pbx_recorder.recording.call_seal import check_calls
from pbx_recorder.recording.signing import verify_manifest
from tests.unit.test_catalog_bulk import KEY, NOW
from tests.unit.test_catalog_bulk_once import _catalog, _hooks, _numbers, _opened, _with_numbers

N = 150  # > sign_ahead.MIN_BATCH, several chunks


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Hits and misses of every batch, added up as each batch finishes."""
    seen = {"hits": 0, "misses": 0, "batches": 0}
    finish = sign_ahead.Presigned.finish

    def counting(self: sign_ahead.Presigned) -> None:
        seen["hits"] += self.hits
        seen["misses"] += self.misses
        seen["batches"] += 1
        finish(self)

    monkeypatch.setattr(sign_ahead.Presigned, "finish", counting)
    return seen


def _batch(first: int, n: int = N) -> list[tuple[dict[str, Any], list[Any]]]:
    return [_with_numbers(i) for i in range(first, first + n)]


def _check(catalog: Catalog, n: int) -> None:
    conn = catalog._conn()
    assert check_calls(conn, KEY.public_key(), numbers=_numbers()) == []
    assert ledger.verify_chain(conn) == []
    rows = conn.execute("SELECT recording_id, signature FROM recordings").fetchall()
    assert len(rows) == n
    signed = {str(r.row["recording_id"]): r.manifest for _, [r] in _batch(0, n)}
    for rid, signature in rows:
        assert verify_manifest(signed[rid].to_dict(), signature, KEY.public_key())


def test_helper_signs_every_new_call_and_the_rows_are_the_writers_own(tmp_path: Path,
                                                                      counted: dict[str, int]) -> None:
    alone, ahead = _catalog(tmp_path / "alone.db"), _catalog(tmp_path / "ahead.db")
    ahead.enable_sign_ahead()
    try:
        for first in (0, N):
            assert alone.write_calls(_batch(first), after_store=_hooks()) == N
            assert ahead.write_calls(_batch(first), after_store=_hooks()) == N
        assert counted == {"hits": 4 * N, "misses": 0, "batches": 2}  # a seal and a manifest a call
        assert _opened(alone) == _opened(ahead)  # seals and signatures included
        seals = {r[0]: r[1] for r in ahead._conn().execute("SELECT call_id, seal FROM calls")}
        assert seals == {r[0]: r[1] for r in alone._conn().execute("SELECT call_id, seal FROM calls")}
        _check(ahead, 2 * N)
        helper = ahead._sign_ahead
        assert helper is not None and not helper.broken and helper._proc is not None
        # the key went over the socket: the helper's command line names only the socket's number
        assert helper._proc.args[1:3] == ["-m", "pbx_recorder.recording.sign_ahead"]
        assert len(helper._proc.args) == 4 and helper._proc.args[3].isdigit()
        proc = helper._proc
    finally:
        ahead.close()
        alone.close()
    assert proc.poll() is not None  # close stops the helper


def test_the_writer_signs_what_it_did_not_predict(tmp_path: Path, counted: dict[str, int]) -> None:
    """A batch that updates stored calls (their answer time only): their seals cover the merged
    rows, not the new-call bytes the helper made of the update, so the writer signs them.  (A
    retry that repeats a whole row seals the same bytes: the helper's signature is taken.)"""
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        catalog.write_calls(_batch(0), after_store=_hooks())
        again = [({"call_id": c["call_id"], "started_at": c["started_at"], "answered_at": NOW + 5.0}, recs)
                 for c, recs in _batch(0)]
        catalog.write_calls(again, after_store=_hooks())
        assert counted["hits"] == 2 * N + N  # the manifests are the same bytes: taken again
        # every merged call's seal (PostgreSQL reads a stored row back to seal it: never asked)
        assert counted["misses"] == (0 if engine.is_postgres(catalog._conn()) else N)
        _check(catalog, N)
        assert catalog.get_call(str(again[0][0]["call_id"]))["answered_at"] == NOW + 5.0
    finally:
        catalog.close()


def test_prediction_is_the_bytes_the_writer_seals(tmp_path: Path) -> None:
    """``new_call_sealed_bytes`` for varied rows: the seal the writer stored verifies over them."""
    catalog = _catalog(tmp_path / "cat.db")
    try:
        form = catalog.seal_form()
        assert form is not None and form.protected
        rows: list[dict[str, Any]] = []
        for i in range(12):
            call, _ = _with_numbers(i)
            if i % 3 == 0:
                call = {k: v for k, v in call.items() if k not in ("cdr", "consent", "callee_num")}
            if i % 4 == 1:
                call["cdr"] = '{"src": "13900000001", "billsec": 12.0}'  # given as text
                call["duration"], call["ended_at"] = 30, NOW + i + 30  # an INTEGER and a REAL column
            if i % 5 == 2:
                call = {"call_id": call["call_id"], "started_at": NOW + i, "agent": "a9"}  # no numbers
            rows.append(call)
        for call in rows:
            catalog.upsert_call(call)
            stored = catalog._conn().execute("SELECT seal FROM calls WHERE call_id = ?",
                                             (call["call_id"],)).fetchone()[0]
            predicted = new_call_sealed_bytes(form, call)
            assert predicted is not None
            KEY.public_key().verify(base64.b64decode(stored), predicted)
        # where the writer reads the row back to seal it, nothing is predicted: a float for an
        # INTEGER column (what SQLite keeps is not certain), a seal given, an unknown column
        assert new_call_sealed_bytes(form, {**rows[0], "duration": 30.0}) is None
        assert new_call_sealed_bytes(form, {**rows[0], "seal": "x"}) is None
        assert new_call_sealed_bytes(form, {**rows[0], "no_such_column": 1}) is None
    finally:
        catalog.close()


def test_a_batch_that_fails_midway_leaves_the_helper_in_step(tmp_path: Path,
                                                             counted: dict[str, int]) -> None:
    """A call refused in the middle of a batch (another call's id): the batch is rolled back,
    what the helper still had to send is read off, and the next batch's answers are its own."""
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        catalog.write_calls(_batch(0), after_store=_hooks())
        clash = _batch(N)
        call, recs = _with_numbers(0)
        clash[N // 2] = ({**call, "started_at": NOW - 99.0}, recs)  # call 0's id, another call
        with pytest.raises(CallIdCollision):
            catalog.write_calls(clash, after_store=_hooks())
        counted.update(hits=0, misses=0)
        assert catalog.write_calls(_batch(N), after_store=_hooks()) == N
        assert counted["hits"] == 2 * N and counted["misses"] == 0
        _check(catalog, 2 * N)
    finally:
        catalog.close()


def test_a_chunk_that_does_not_pickle_keeps_answers_and_calls_paired(tmp_path: Path,
                                                                     counted: dict[str, int]) -> None:
    """A manifest the helper cannot be sent (here: one whose pickling fails): its chunk goes
    without payloads, the writer signs those calls itself, the rest come from the helper."""
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    batch = _batch(0)

    class Unsendable(type(batch[0][1][0].manifest)):  # type: ignore[misc]
        __slots__ = ()

        def __reduce__(self) -> Any:
            raise TypeError("not for the helper")

    call, [rec] = batch[0]
    batch[0] = (call, [type(rec)(rec.row, Unsendable(**{f: getattr(rec.manifest, f)
                                                         for f in rec.manifest.__dataclass_fields__}),
                                 rec.record)])
    try:
        assert catalog.write_calls(batch, after_store=_hooks()) == N
        chunk = sign_ahead.CHUNK // 2  # the first chunk's calls (a seal and a manifest each)
        assert counted["misses"] == 2 * chunk and counted["hits"] == 2 * (N - chunk)
        _check(catalog, N)
    finally:
        catalog.close()


def test_a_helper_with_another_key_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    other = Ed25519PrivateKey.generate()
    raw = sign_ahead._raw
    monkeypatch.setattr(sign_ahead, "_raw", lambda key: raw(other))  # what reaches the helper
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        with caplog.at_level(logging.WARNING, logger="pbx_recorder.recording.sign_ahead"):
            assert catalog.write_calls(_batch(0), after_store=_hooks()) == N
        assert "does not verify" in caplog.text
        assert catalog._sign_ahead is not None and catalog._sign_ahead.broken
        _check(catalog, N)
    finally:
        catalog.close()


def test_a_helper_killed_in_a_batch_leaves_the_writer_signing(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        catalog.write_calls(_batch(0), after_store=_hooks())  # the helper is up
        helper = catalog._sign_ahead
        assert helper is not None and helper._proc is not None
        answer = sign_ahead.Presigned._answer
        killed: list[int] = []

        def kill_then_answer(self: sign_ahead.Presigned, key: tuple[str, str], **kw: Any) -> Any:
            # (every result the writer takes comes through here: a signature, a prepared call or
            # manifest)
            if not killed and helper._proc is not None:
                helper._proc.kill()
                helper._proc.wait()
                killed.append(1)
            return answer(self, key, **kw)

        monkeypatch.setattr(sign_ahead.Presigned, "_answer", kill_then_answer)
        with caplog.at_level(logging.WARNING, logger="pbx_recorder.recording.sign_ahead"):
            assert catalog.write_calls(_batch(N), after_store=_hooks()) == N
        assert helper.broken and "the writer signs itself" in caplog.text
        assert catalog.write_calls(_batch(2 * N), after_store=_hooks()) == N  # no new helper
        assert catalog._sign_ahead is helper
        _check(catalog, 3 * N)
    finally:
        catalog.close()


def test_an_interrupt_inside_a_message_ends_the_batch_without_waiting(tmp_path: Path) -> None:
    """A signal's SystemExit (the bench's SIGTERM) or a KeyboardInterrupt raised while the writer
    reads a helper's answer: the batch ends (rolled back) at once instead of reading the rest of the
    interrupted message as the next one's length and waiting forever; the helper is not used again."""
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    try:
        catalog.write_calls(_batch(0), after_store=_hooks())  # the helper is up
        helper = catalog._sign_ahead
        assert helper is not None and helper._conn is not None
        real = helper._conn

        class InterruptedOnce:
            """The signal lands inside a message (its length and half of it read), once."""

            landed = False

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def recv(self) -> Any:
                if not InterruptedOnce.landed:
                    InterruptedOnce.landed = True
                    (size,) = struct.unpack("!i", real._recv(4).getvalue())  # multiprocessing's header
                    real._recv(size // 2)
                    raise KeyboardInterrupt
                return real.recv()

        helper._conn = InterruptedOnce()  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            catalog.write_calls(_batch(N), after_store=_hooks())
        assert InterruptedOnce.landed and helper.broken and helper._conn is None
        assert catalog.write_calls(_batch(N), after_store=_hooks()) == N  # the writer signs
        _check(catalog, 2 * N)
    finally:
        catalog.close()


def test_two_threads_share_one_helper_by_turns(tmp_path: Path, counted: dict[str, int]) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    errors: list[BaseException] = []

    def write(first: int) -> None:
        try:
            catalog.write_calls(_batch(first), after_store=_hooks())
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(k * N,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert counted["hits"] + counted["misses"] <= 6 * N and counted["misses"] == 0
        _check(catalog, 3 * N)
    finally:
        catalog.close()


def test_writers_in_several_threads_never_make_a_helper_each(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper was chosen before the catalog's lock was taken: threads arriving together each
    made one, and those the catalog did not keep ran on, never waited for (a ResourceWarning in
    CI, a helper process left behind).  Now it is chosen under the lock: one helper."""
    made: list[Any] = []
    real_init = sign_ahead.SignAhead.__init__

    def slow_init(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)
        threading.Event().wait(0.2)  # the window the other writers arrived in

    monkeypatch.setattr(sign_ahead.SignAhead, "__init__", slow_init)
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    start = threading.Barrier(3)

    def write(first: int) -> None:
        start.wait()
        catalog.write_calls(_batch(first), after_store=_hooks())

    try:
        threads = [threading.Thread(target=write, args=(k * N,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(made) == 1  # before: 3
        _check(catalog, 3 * N)
    finally:
        catalog.close()


def test_small_batches_and_a_catalog_without_it_start_no_helper(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "cat.db")
    try:
        catalog.write_calls(_batch(0), after_store=_hooks())
        assert catalog._sign_ahead is None  # off unless enabled
        catalog.enable_sign_ahead()
        catalog.write_calls(_batch(N, sign_ahead.MIN_BATCH // 2 - 1), after_store=_hooks())
        helper = catalog._sign_ahead
        assert helper is not None and helper._proc is None  # nothing to gain: not started
        catalog.enable_sign_ahead(False)
        assert catalog._sign_ahead is None
    finally:
        catalog.close()


def test_the_helper_ends_with_its_writer(tmp_path: Path) -> None:
    """The helper reads until its socket closes: a writer that exits without ``close`` (killed)
    leaves no helper behind."""
    helper = sign_ahead.SignAhead(KEY, KEY, None)
    assert helper.batch([(sign_ahead.MANIFEST, f"r{i}", _with_numbers(i)[1][0].manifest)
                         for i in range(40)]) is not None
    proc = helper._proc
    assert proc is not None
    assert helper._conn is not None
    helper._conn.close()  # as the kernel does for a killed writer (no "end" sent)
    helper._conn = None
    assert proc.wait(timeout=10) is not None


def test_the_same_call_twice_in_a_batch_is_signed_by_the_writer_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]) -> None:
    """A call that comes twice in one batch (its row again, now answered): its second seal
    covers the merged row; the writer signs it at once rather than read the rest of the batch's
    answers looking for a job it has taken already."""
    catalog = _catalog(tmp_path / "cat.db")
    catalog.enable_sign_ahead()
    batch = _batch(0)
    call, recs = batch[1]
    batch[3] = ({**call, "answered_at": NOW + 9.0}, [])  # (call 3's place: its row, no recording)
    unread: list[int] = []
    take = sign_ahead.Presigned.take

    def watching(self: sign_ahead.Presigned, kind: str, ident: str, data: bytes) -> str | None:
        got = take(self, kind, ident, data)
        if kind == sign_ahead.SEAL and ident == call["call_id"]:
            unread.append(len(self.chunks))
        return got

    monkeypatch.setattr(sign_ahead.Presigned, "take", watching)
    try:
        assert catalog.write_calls(batch, after_store=_hooks()) == N
        if engine.is_postgres(catalog._conn()):  # it reads a stored row back to seal it: not asked
            assert len(unread) == 1
        else:
            assert len(unread) == 2 and unread[1] > 0  # the batch's later chunks were not read for it
        assert counted["misses"] <= 2 and counted["hits"] >= 2 * N - 3
        assert check_calls(catalog._conn(), KEY.public_key(), numbers=_numbers()) == []
        assert catalog.get_call(str(call["call_id"]))["answered_at"] == NOW + 9.0
    finally:
        catalog.close()
