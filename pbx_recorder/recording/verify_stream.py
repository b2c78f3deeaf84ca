"""``verify`` over the whole catalog: streamed, parallel, resumable, incremental.

* **Streamed**: recordings are read in keyset batches (``pbx_recorder.scan``) with the ledger
  entries of a whole batch in one statement; removed and vanished recordings, the chains and
  the call seals are streamed from SQLite too.  Memory is O(batch), not O(catalog).
* **Parallel**: the storage checks of a batch (stat, re-read and hash, signature) run on a
  bounded thread pool (``jobs``): they wait on disks and object stores.  The catalog checks
  stay on this thread, which owns the connection; each worker fills its own report, merged
  in row order, so the output does not depend on scheduling.
* **Resumable**: after each batch (at most every few seconds) the last rowid done and the
  findings so far go to the state file (``verify_state``); ``resume`` continues from there.
* **Incremental** (``since_last``): only recordings created after the last good pass or named
  by a ledger entry appended since (every lifecycle change -- store, migrate, hold, rekey,
  delete, erase -- appends one), the chains from where that pass's recomputation ended (its
  last row must still carry the hash it computed), call rows added or updated since, and the
  signed chain heads.  What that proves and what only a full pass proves: README "Whole-catalog
  operations at scale".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from pbx_recorder import audit_trail, scan
from pbx_recorder.catalog import named_rows_check
from pbx_recorder.progress import Progress
from pbx_recorder.recording import call_seal, chain_head, ledger
from pbx_recorder.recording.verify import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    Mismatch,
    ObjectCheck,
    Verifier,
    VerifyReport,
    _gone_locations,
    _refused,
    vanished_mismatch,
)
from pbx_recorder.recording.verify_bindings import (
    holds_mismatches,
    ledger_entries,
    removed_ids,
    vanished_stream,
)
from pbx_recorder.recording.verify_state import Marks, VerifyState

SAVE_EVERY_S = 5.0


@dataclass(frozen=True)
class PassOptions:
    batch: int = 500
    jobs: int = 4
    state: VerifyState | None = None
    resume: bool = False
    since_last: bool = False
    progress: Progress | None = None


def _restore(saved: Any) -> VerifyReport:
    report = VerifyReport()
    if isinstance(saved, dict):
        report.checked = int(saved.get("checked", 0))
        report.mismatches = [Mismatch(**m) for m in saved.get("mismatches", []) if isinstance(m, dict)]
        report.notes = [str(n) for n in saved.get("notes", [])]
        report.pending = [str(n) for n in saved.get("pending", [])]
    return report


def _saved(report: VerifyReport) -> dict[str, Any]:
    return {"checked": report.checked, "mismatches": [asdict(m) for m in report.mismatches],
            "notes": report.notes, "pending": report.pending}


def _merge(into: VerifyReport, part: VerifyReport) -> None:
    into.mismatches += part.mismatches
    into.notes += part.notes
    into.pending += part.pending


class _Pass:
    def __init__(self, verifier: Verifier, opts: PassOptions) -> None:
        self.v, self.opts, self.conn = verifier, opts, verifier.conn
        self.pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs), thread_name_prefix="verify")
        self.progress = opts.progress or Progress("verify", enabled=False)

    def submit(self, jobs: list[ObjectCheck]) -> list[Future[VerifyReport]]:
        """The batch's storage checks in ``jobs`` contiguous slices, one per worker (a task per
        slice, not per recording: the pool's own cost stays negligible on a fast tier)."""
        def some(part: list[ObjectCheck]) -> VerifyReport:
            out = VerifyReport()
            for job in part:
                job(out)
            return out

        size = max(1, -(-len(jobs) // max(1, self.opts.jobs)))
        return [self.pool.submit(some, jobs[i:i + size]) for i in range(0, len(jobs), size)]

    @staticmethod
    def collect(futures: list[Future[VerifyReport]], report: VerifyReport) -> None:
        for future in futures:  # in submission order: the output does not depend on scheduling
            _merge(report, future.result())

    def run_jobs(self, jobs: list[ObjectCheck], report: VerifyReport) -> None:
        self.collect(self.submit(jobs), report)

    def chunks(self, marks: Marks | None,
               position: dict[str, int]) -> Iterator[tuple[list[dict[str, Any]], dict[str, int]]]:
        """Batches of recordings rows to check, each with the position to resume after it.

        A full pass: the table in rowid order.  An incremental pass: first the older rows a ledger
        entry after the marks names (the entries in seq order, each recording at its last such
        entry, so it is checked once), then the rows created since (rowid order).  Both are keyset
        walks, so the cost is that of the changes, not of the catalog."""
        present = set(scan.columns_of(self.conn, "recordings"))
        columns = list(COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in present))
        batch = self.opts.batch
        if marks is not None and position.get("phase", 1) == 1:
            seq = max(int(position.get("seq", 0)), marks.changes_seq)
            named = ("SELECT l.seq, l.recording_id FROM ledger l WHERE l.seq > ? AND NOT EXISTS (SELECT 1 "
                     "FROM ledger n WHERE n.recording_id = l.recording_id AND n.seq > l.seq) ORDER BY l.seq "
                     "LIMIT ?")
            while True:
                got = self.conn.execute(named, (seq, batch)).fetchall()
                if not got:
                    break
                seq = int(got[-1][0])
                ids = [str(r[1]) for r in got]
                found = self.conn.execute(
                    f"SELECT {', '.join(columns)} FROM recordings WHERE rowid <= ? AND recording_id IN "
                    f"({','.join('?' * len(ids))}) ORDER BY rowid", (marks.recordings_rowid, *ids)).fetchall()
                yield [dict(zip(columns, r, strict=True)) for r in found], {"phase": 1, "seq": seq}
                if len(got) < batch:
                    break
            position = {"phase": 2, "after": 0}
        after = int(position.get("after", 0))
        if marks is not None:
            after = max(after, marks.recordings_rowid)
        for chunk in scan.batches(self.conn, "recordings", columns, batch=batch, after=after):
            yield [row for _, row in chunk], {"phase": 2, "after": chunk[-1][0]}

    def recordings(self, report: VerifyReport, marks: Marks | None, position: dict[str, int],
                   save: Callable[[dict[str, int]], None]) -> None:
        """Pipelined: while the workers check batch k's objects, this thread reads and checks
        batch k+1 in the catalog; at most two batches are in memory."""
        in_flight: tuple[list[Future[VerifyReport]], VerifyReport, int, dict[str, int]] | None = None
        for rows, where in self.chunks(marks, position):
            entries = ledger_entries(self.conn, [r["recording_id"] for r in rows])
            found = VerifyReport()  # this batch's catalog findings, merged before its storage ones
            jobs = [job for row in rows if (job := self.v.prepare(row, found, entries)) is not None]
            futures = self.submit(jobs)
            if in_flight is not None:
                self.finish(report, *in_flight, save)
            in_flight = (futures, found, len(rows), where)
        if in_flight is not None:
            self.finish(report, *in_flight, save)

    def finish(self, report: VerifyReport, futures: list[Future[VerifyReport]], found: VerifyReport,
               rows: int, where: dict[str, int], save: Callable[[dict[str, int]], None]) -> None:
        _merge(report, found)
        self.collect(futures, report)
        report.checked += rows
        self.progress.advance(rows, f"{len(report.mismatches)} mismatches")
        save(where)

    def removed(self, report: VerifyReport, after_seq: int) -> None:
        """Erasure removes the row; the ledger still says where the audio was: nothing may be left."""
        jobs: list[ObjectCheck] = []
        for rid in removed_ids(self.conn, after_seq):
            places = _gone_locations(self.conn, rid)
            jobs.append(lambda out, rid=rid, places=places:  # type: ignore[misc]
                        self.v._check_gone(rid, "erased (catalog row removed)", places, out))
            report.checked += 1
            if len(jobs) >= self.opts.batch:
                self.run_jobs(jobs, report)
                jobs = []
        self.run_jobs(jobs, report)
        for rid in vanished_stream(self.conn, after_seq):
            report.checked += 1
            report.mismatches.append(vanished_mismatch(rid))

    def chains(self, report: VerifyReport, marks: Marks | None) -> tuple[int, str, int, str]:
        add = report.mismatches.append
        problems, seq, head = ledger.verify_chain_from(self.conn, marks.ledger_seq if marks else 0,
                                                       marks.ledger_hash if marks else ledger.GENESIS)
        for p in problems:
            add(Mismatch(p.recording_id, f"ledger seq {p.seq}: {p.what}", p.expected, p.found))
        stats: dict[str, int] = {}
        audit_problems, legacy, audit_id, audit_hash = audit_trail.verify_chain_from(
            self.conn, marks.audit_id if marks else 0, marks.audit_hash if marks else "", stats=stats)
        for a in audit_problems:
            add(Mismatch("", str(a), a.expected, a.found))
        if legacy:
            report.notes.append(f"{legacy} audit row(s) predate the audit chain (not covered)")
        report.notes += [n for n in [audit_trail.key_note(stats)] if n]
        held, notes = holds_mismatches(self.conn, self.v.numbers)  # the holds table against its ledger
        report.mismatches += [Mismatch(f"hold {hid}", what, want, found) for hid, what, want, found in held]
        report.notes += notes
        if self.v.public_key is None:
            return seq, head, audit_id, audit_hash
        if self.v.checkpoints is not None:
            for chain in chain_head.CHAINS:
                found, notes = chain_head.check(self.conn, chain, self.v.checkpoints, self.v.public_key)
                report.mismatches += [Mismatch("", f"{p.chain} chain head: {p.what}", p.expected, p.found)
                                      for p in found]
                report.notes += notes
        where, params = ("", ()) if marks is None else ("rowid > ? OR updated_at >= ?",
                                                         (marks.calls_rowid, marks.started_at))
        for cid, what in call_seal.check_calls(self.conn, self.v.public_key, None, self.v.numbers,
                                               where=where, params=params, batch=self.opts.batch):
            add(Mismatch(f"call {cid}", what))
        for cid in call_seal.vanished_calls(self.conn, after_seq=marks.changes_seq if marks else 0):
            add(Mismatch(f"call {cid}", "sealed call row removed (or replaced by an unsealed one) without an "
                                        "erasure ledger entry", "calls row", "absent"))
        if marks is None:  # a full pass (call_numbers holds only the numbers calls name besides their own)
            report.notes += named_rows_check.orphan_notes(self.conn)
            for cid in call_seal.resurrected_calls(self.conn):
                add(Mismatch(f"call {cid}", call_seal.RESURRECTED, "absent", "calls row"))
        return seq, head, audit_id, audit_hash


def _max(conn: Any, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0] or 0)


def run_pass(verifier: Verifier, opts: PassOptions) -> VerifyReport:
    """Check the whole catalog (or, ``since_last``, what changed since the last good pass)."""
    conn, state = verifier.conn, opts.state
    marks = state.last() if state is not None and opts.since_last else None
    running = state.running() if state is not None and opts.resume else None
    if running is not None and running.get("since") != (marks is not None):
        running = None  # a different kind of pass was interrupted: start this one afresh
    report = _restore(running.get("report")) if running else VerifyReport()
    started = float(running["started_at"]) if running else time.time()
    bounds = running.get("bounds") if running else None
    if not isinstance(bounds, dict):
        bounds = {"changes_seq": _max(conn, "SELECT MAX(seq) FROM ledger"),
                  "recordings_rowid": _max(conn, "SELECT MAX(rowid) FROM recordings"),
                  "calls_rowid": _max(conn, "SELECT MAX(rowid) FROM calls")}
    if opts.since_last and marks is None:
        report.notes.append("no earlier complete pass recorded: checking everything")
    elif running is not None:
        report.notes.append(f"resumed an interrupted pass at {running.get('position')}")
    run = _Pass(verifier, opts)
    last_save = [time.monotonic()]

    def save(position: dict[str, int]) -> None:
        if state is None or time.monotonic() - last_save[0] < SAVE_EVERY_S:
            return
        state.save_running({"position": position, "since": marks is not None, "started_at": started,
                            "bounds": bounds, "report": _saved(report)})
        last_save[0] = time.monotonic()

    try:
        position = running.get("position") if running else None
        run.recordings(report, marks, position if isinstance(position, dict) else {}, save)
        run.removed(report, marks.changes_seq if marks else 0)
        waiting = [rid for rid in verifier.spooled if conn.execute(
            "SELECT 1 FROM recordings WHERE recording_id = ?", (rid,)).fetchone() is None]
        report.pending += [f"{rid}: waiting in the spool (not stored yet)" for rid in waiting]
        seq, head, audit_id, audit_hash = run.chains(report, marks)
    finally:
        run.pool.shutdown(wait=True)
        run.progress.close()
    report.unreachable += [f"tier {name}: {why}" for name, why in sorted(verifier._down.items())]
    report.refused = _refused(conn, None)
    if state is not None:
        good = not report.mismatches and not report.unreachable
        state.finish(Marks(started, seq, head, audit_id, audit_hash, int(bounds["changes_seq"]),
                           int(bounds["recordings_rowid"]), int(bounds["calls_rowid"])) if good else None)
    return report
