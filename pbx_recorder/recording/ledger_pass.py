"""``ledger verify`` over millions of entries: streamed, with progress, optionally incremental.

The chain is recomputed row by row from one SQLite cursor (one row in memory), the signed
head is checked (``chain_head``), and recordings the ledger says were stored whose catalog
row is gone without a deletion entry are found by SQLite (``verify_bindings.vanished_stream``),
not by a Python set of every recording id.

``since_last`` starts from the last entry a previous pass that found nothing wrong recomputed
(``verify_state``): that entry must still carry the hash the pass computed (else the chain was
rewritten or truncated at or before it), and every later entry must link to it and recompute.
Together with the signed head this proves the chain as a whole was not rewritten since; an
in-place edit of an older entry's content that leaves its ``hash`` column alone is found only by
a full pass (README "Whole-catalog operations at scale").
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from pbx_recorder.progress import Progress
from pbx_recorder.recording import chain_head, ledger
from pbx_recorder.recording.verify_bindings import vanished_stream
from pbx_recorder.recording.verify_state import Marks, VerifyState


@dataclass
class LedgerPassResult:
    count: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


SAVE_EVERY_S = 5.0


def run_ledger_pass(conn: sqlite3.Connection, state: VerifyState | None, *, since_last: bool = False,
                    resume: bool = False, public_key: Any = None,
                    checkpoints: chain_head.CheckpointStore | None = None,
                    progress: Progress | None = None) -> LedgerPassResult:
    """Recompute the chain (all of it, or after the marks), hold it to its signed head, find
    vanished recordings.  ``resume`` continues an interrupted pass from the last position it
    saved (every few seconds: the entry's seq and hash, and the problems found so far)."""
    out = LedgerPassResult()
    marks = state.last() if state is not None and since_last else None
    running = state.running() if state is not None and resume else None
    if running is not None and running.get("since") != (marks is not None):
        running = None  # a different kind of pass was interrupted: start this one afresh
    if since_last and marks is None:
        out.notes.append("no earlier complete pass recorded: recomputing the whole chain")
    started = float(running["started_at"]) if running else time.time()
    after, after_hash = (marks.ledger_seq, marks.ledger_hash) if marks else (0, ledger.GENESIS)
    earlier: list[str] = []
    if running is not None:
        after, after_hash = int(running["seq"]), str(running["hash"])
        earlier = [str(p) for p in running.get("problems", [])]
        out.notes.append(f"resumed an interrupted pass after ledger seq {after}")
    seen, last_save = [0], [time.monotonic()]
    bar = progress or Progress("ledger verify", enabled=False)
    bar.done = after

    def tick(seq: int, digest: str, problems: list[ledger.Problem]) -> None:
        seen[0] += 1
        if seen[0] % 1000:
            return
        bar.advance(1000)
        if state is not None and time.monotonic() - last_save[0] >= SAVE_EVERY_S:
            state.save_running({"seq": seq, "hash": digest, "since": marks is not None, "started_at": started,
                                "problems": earlier + [str(p) for p in problems]})
            last_save[0] = time.monotonic()

    try:
        problems, seq, head = ledger.verify_chain_from(conn, after, after_hash, on_row=tick)
    finally:
        bar.advance(seen[0] % 1000)
        bar.close()
    out.checked = seen[0]
    out.problems += earlier + [str(p) for p in problems]
    if public_key is not None and checkpoints is not None:
        found, notes = chain_head.check(conn, "ledger", checkpoints, public_key)
        out.problems += [str(p) for p in found]
        out.notes += notes
    out.problems += [f"recording {rid}: stored per the ledger, but its catalog row is gone without a "
                     f"deletion or erasure entry"
                     for rid in vanished_stream(conn, marks.changes_seq if marks else 0)]
    out.count = int(conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
    if state is not None:
        state.finish(None if out.problems else Marks(started_at=started, ledger_seq=seq, ledger_hash=head,
                                                     changes_seq=seq))
    return out
