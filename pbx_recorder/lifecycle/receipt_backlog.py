"""Receipt lines of this node's erased leftovers that were deleted while the catalog could not take
them: kept beside the spool and written at the next sweep, so an erasure's receipt never misses a
file this node deleted.

Before the daemon deletes a leftover of an erased call it keeps the receipt line in
``<spool>/_erasure_receipts.json`` (atomic, in the owner-only spool; call, recording and request
ids and the time, never a number); after the deletion it names the leftover in the erasure
request's receipt (``LateCopyGuard.leftover_deleted``) and drops the line.  A crash between the
deletion and the receipt, or a receipt write that fails (the catalog down, a PostgreSQL
failover), leaves the line, and each orphan scan writes what waits; a deletion that fails drops
it (the file is still there: the next scan deletes it).  One daemon per spool (the spool is the
node's own).  ``_`` cannot begin a recording id: no spool pass
takes the file for an entry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage import atomic

log = logging.getLogger(__name__)
FILE_NAME = "_erasure_receipts.json"
#: what a line holds (each a string, ``at`` a number): the arguments of ``leftover_deleted``
FIELDS = ("request_id", "call_id", "recording_id", "copy")


class ReceiptBacklog:
    def __init__(self, spool_root: str | Path) -> None:
        self.path = Path(spool_root) / FILE_NAME

    def lines(self) -> list[dict[str, Any]]:
        """The lines waiting; an unreadable file is kept (moved aside, ALERT) and reads as none."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            found = json.loads(raw)
            if not isinstance(found, list):
                raise ValueError("not a list")
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{time.time_ns()}")
            self.path.replace(aside)
            log.error("ALERT %s unreadable (%s): moved to %s; the erasure receipts it named must be "
                      "completed by hand", self.path, exc, aside.name)
            return []
        good = [line for line in found if _valid(line)]
        if len(good) < len(found):
            log.error("ALERT %s: %d line(s) not understood, dropped (%s): the erasure receipts they "
                      "named must be completed by hand", self.path, len(found) - len(good),
                      json.dumps([line for line in found if not _valid(line)])[:500])
        return good

    def add(self, line: dict[str, Any]) -> None:
        """Keep ``line`` (its ids and ``at``); a line of the same leftover is kept once."""
        lines = self.lines()
        if not any(_key(old) == _key(line) for old in lines):
            self._write([*lines, line])

    def discard(self, line: dict[str, Any]) -> None:
        lines = self.lines()
        kept = [old for old in lines if _key(old) != _key(line)]
        if len(kept) < len(lines):
            self._write(kept)

    def flush(self, write: Callable[[dict[str, Any]], None]) -> int:
        """``write`` each line (the receipt update); those that fail stay.  Returns how many were written."""
        atomic.clean_temp_files(self.path.parent)  # a crash's half-written copy of this file (the
        lines = self.lines()                       # spool's root holds only entry folders besides)
        if not lines:
            return 0
        kept = []
        for line in lines:
            try:
                write(line)
            except Exception as exc:  # the catalog still away: the line waits for the next scan
                log.warning("erasure %s: receipt line of rec=%s still not written: %s", line["request_id"],
                            line["recording_id"] or "-", exc)
                kept.append(line)
        self._write(kept)
        return len(lines) - len(kept)

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if lines:
            atomic.write_bytes(self.path, json.dumps(lines, sort_keys=True).encode())
        else:
            self.path.unlink(missing_ok=True)
        atomic.fsync_dir(self.path.parent)


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(line.get(k) for k in FIELDS)


def _valid(line: Any) -> bool:
    return (isinstance(line, dict) and all(isinstance(line.get(k), str) for k in FIELDS)
            and bool(line["request_id"]) and isinstance(line.get("at"), int | float))
