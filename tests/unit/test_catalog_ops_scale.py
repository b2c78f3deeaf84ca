"""Whole-catalog operations stream: their Python memory does not grow with the catalog.

Each operation runs over a catalog of 1,000 calls and again after it grew to 4,000 (batch
size 100); tracemalloc's peak must stay flat.  The code before the fix read whole tables
(``fetchall`` / ``list(...)`` of every recordings or calls row): its peak grew fourfold (verify
1.7 -> 6.9 MB, retention report 2.7 -> 10.9 MB, erase --caller 1.9 -> 7.6 MB), here it stays
within a few per cent."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from catalog_fill import HELD, SUBJECT, StatTier, fill  # noqa: E402
from lifecycle_support import CLASSES, KEY  # noqa: E402

from pbx_recorder.lifecycle.erasure import Eraser  # noqa: E402
from pbx_recorder.lifecycle.holds import HoldManager  # noqa: E402
from pbx_recorder.lifecycle.journal import open_catalog  # noqa: E402
from pbx_recorder.lifecycle.migration import Migrator, Target  # noqa: E402
from pbx_recorder.lifecycle.retention_jobs import RetentionJob  # noqa: E402
from pbx_recorder.recording.ledger_pass import run_ledger_pass  # noqa: E402
from pbx_recorder.recording.verify import Verifier  # noqa: E402
from pbx_recorder.recording.verify_stream import PassOptions  # noqa: E402

NOW = 1_800_000_000.0
SMALL, BIG, BATCH = 1000, 4000, 100


def peak(fn: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def grown(tmp_path: Path, op: Callable[[Any, int], Any]) -> tuple[int, int]:
    conn = open_catalog(tmp_path / "cat.db")
    fill(conn, SMALL, now=NOW)
    small, _ = peak(lambda: op(conn, SMALL))
    fill(conn, BIG - SMALL, now=NOW, start=SMALL)
    big, _ = peak(lambda: op(conn, BIG))
    return small, big


def flat(small: int, big: int) -> bool:
    """4x the rows, not 4x the memory: at most 25% more (plus 64 KiB for allocator noise)."""
    return big <= small * 1.25 + 65536


def test_verify_streams_in_bounded_memory(tmp_path: Path) -> None:
    def op(conn: Any, n: int) -> None:
        report = Verifier(conn, {"hot": StatTier()}).run(options=PassOptions(batch=BATCH, jobs=2))
        assert report.ok and report.checked == n, report.mismatches[:3]

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)


def test_ledger_verify_streams_in_bounded_memory(tmp_path: Path) -> None:
    def op(conn: Any, n: int) -> None:
        result = run_ledger_pass(conn, None)
        assert result.problems == [] and result.checked == n

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)


def test_retention_report_streams_in_bounded_memory(tmp_path: Path) -> None:
    def op(conn: Any, n: int) -> None:
        job = RetentionJob(conn, {"hot": StatTier()}, CLASSES, HoldManager(conn, {}, hash_key=KEY))
        due = sum(1 for d in job.iter_report(NOW, batch=BATCH) if d.action == "dispose")
        assert n // 3 < due < n  # about half are past their 180 days

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)


def test_migrate_dry_run_streams_in_bounded_memory(tmp_path: Path) -> None:
    def op(conn: Any, n: int) -> None:
        m = Migrator(conn, {"hot": StatTier(), "cold": StatTier("cold")}, default=Target("hot", "cold"),
                     classes=CLASSES, batch_size=BATCH)
        assert n // 3 < m.run(NOW, dry_run=True).total < n  # the expired half is left to disposal

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)


def test_hold_by_caller_streams_in_bounded_memory(tmp_path: Path) -> None:
    def op(conn: Any, n: int) -> None:
        held = HoldManager(conn, {"hot": StatTier()}, hash_key=KEY).add("caller", HELD, "case 7", "legal",
                                                                          now=NOW)
        assert len(held["recordings"]) == len(range(1, n, 997))

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)


def test_erase_by_caller_streams_in_bounded_memory(tmp_path: Path) -> None:
    tier = StatTier()

    def op(conn: Any, n: int) -> None:
        holds = HoldManager(conn, {"hot": tier}, hash_key=KEY)
        receipt = Eraser(conn, {"hot": tier}, hash_key=KEY, holds=holds).erase(caller=SUBJECT, actor="dpo",
                                                                               now=NOW)
        assert receipt["status"] == "done" and receipt["recordings_erased"] == (1 if n == SMALL else 3)

    small, big = grown(tmp_path, op)
    assert flat(small, big), (small, big)
