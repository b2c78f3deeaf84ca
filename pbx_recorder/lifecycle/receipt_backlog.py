"""Receipt lines of this node's erased leftovers that were deleted while the catalog could not take
them: kept beside the spool and written at the next sweep, so an erasure's receipt never misses a
file this node deleted.

The daemon deletes a leftover of an erased call first (the erased caller's voice must not wait for
the catalog), then names it in the erasure request's receipt (``LateCopyGuard.leftover_deleted``).
When that write fails (the catalog down, a PostgreSQL failover), the line goes into
``<spool>/_erasure_receipts.json`` (atomic, in the owner-only spool; it names call, recording and
request ids, never a number) with the time of the deletion; each orphan scan writes the lines it
holds first and keeps those that fail again.  ``_`` cannot begin a recording id: no spool pass
takes the file for an entry.
"""

from __future__ import annotations

import json
import logging
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
        """The lines waiting; an unreadable file is kept (renamed aside, ALERT) and reads as none."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            found = json.loads(raw)
            if not isinstance(found, list):
                raise ValueError("not a list")
            return [line for line in found if _valid(line)]
        except ValueError as exc:
            aside = self.path.with_name(self.path.name + ".unreadable")
            self.path.replace(aside)
            log.error("ALERT %s unreadable (%s): moved to %s; the erasure receipts it named must be "
                      "completed by hand", self.path, exc, aside.name)
            return []

    def add(self, request_id: str, call_id: str, recording_id: str, copy: str, at: float) -> None:
        line = {"request_id": request_id, "call_id": call_id, "recording_id": recording_id, "copy": copy,
                "at": at}
        lines = self.lines()
        if line not in lines:
            self._write([*lines, line])

    def flush(self, write: Callable[[dict[str, Any]], None]) -> int:
        """``write`` each line (the receipt update); those that fail stay.  Returns how many were written."""
        lines = self.lines()
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


def _valid(line: Any) -> bool:
    return (isinstance(line, dict) and all(isinstance(line.get(k), str) for k in FIELDS)
            and bool(line["request_id"]) and isinstance(line.get("at"), int | float))
