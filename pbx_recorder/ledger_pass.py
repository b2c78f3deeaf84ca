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

from pbx_recorder import chain_head, ledger
from pbx_recorder.progress import Progress
from pbx_recorder.verify_bindings import vanished_stream
from pbx_recorder.verify_state import Marks, VerifyState


@dataclass
class LedgerPassResult:
    count: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_ledger_pass(conn: sqlite3.Connection, state: VerifyState | None, *, since_last: bool = False,
                    public_key: Any = None, checkpoints: chain_head.CheckpointStore | None = None,
                    progress: Progress | None = None) -> LedgerPassResult:
    out = LedgerPassResult()
    marks = state.last() if state is not None and since_last else None
    if since_last and marks is None:
        out.notes.append("no earlier complete pass recorded: recomputing the whole chain")
    started = time.time()
    after = marks.ledger_seq if marks else 0
    seen = [0]
    bar = progress or Progress("ledger verify", enabled=False)
    if after:
        bar.done = after

    def tick(_seq: int) -> None:
        seen[0] += 1
        if seen[0] % 1000 == 0:
            bar.advance(1000)

    try:
        problems, seq, head = ledger.verify_chain_from(
            conn, after, marks.ledger_hash if marks else ledger.GENESIS, on_row=tick)
    finally:
        bar.advance(seen[0] % 1000)
        bar.close()
    out.checked = seen[0]
    out.problems += [str(p) for p in problems]
    if public_key is not None and checkpoints is not None:
        found, notes = chain_head.check(conn, "ledger", checkpoints, public_key)
        out.problems += [str(p) for p in found]
        out.notes += notes
    out.problems += [f"recording {rid}: stored per the ledger, but its catalog row is gone without a "
                     f"deletion or erasure entry"
                     for rid in vanished_stream(conn, marks.changes_seq if marks else 0)]
    out.count = int(conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
    if state is not None and not out.problems:
        state.finish(Marks(started_at=started, ledger_seq=seq, ledger_hash=head, changes_seq=seq))
    return out
