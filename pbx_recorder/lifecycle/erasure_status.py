"""What ``erase status`` lists: the erasure requests not fully done, with their receipts' details.

Read-only over ``erasure_requests`` and the backup-shredding state (``lifecycle.backup_shred``);
the requests themselves are carried out by :class:`pbx_recorder.lifecycle.erasure.Eraser`.
"""

from __future__ import annotations

import json
from typing import Any

from pbx_recorder.lifecycle import backup_shred, policy
from pbx_recorder.lifecycle.journal import rows


def requests_status(conn: Any, now: float) -> list[dict[str, Any]]:
    """Requests not fully done: open ones (flagged overdue past their 15-day deadline) and
    partial ones (``refused_partial``), each partial one with the recordings it withheld and why;
    done ones still within their deadline that destroyed copies arriving after the erasure
    (``late_copies``: a call that was live when it ran); and done ones whose older catalog
    backups wait for the next catalog backup (``backup_shred_since``; overdue past the deadline)."""
    out = [
        r for r in rows(
            conn,
            "SELECT request_id, subject, received_at, deadline, status, receipt FROM erasure_requests"
            " WHERE status IN ('open','refused_partial') OR (status='done' AND deadline > ?"
            " AND receipt LIKE ?) ORDER BY deadline", (now, '%"late_copies"%'))
    ]
    waiting = backup_shred.pending(conn)
    nodes_left = backup_shred.waiting_nodes(conn)
    listed = {r["request_id"] for r in out}
    for request_id in sorted(set(waiting) - listed):  # done, its backups not shredded yet
        out += rows(conn, "SELECT request_id, subject, received_at, deadline, status, receipt"
                    " FROM erasure_requests WHERE request_id=?", (request_id,))
    for r in out:
        receipt = json.loads(r.pop("receipt") or "{}")
        r["withheld"] = list(receipt.get("withheld", []))
        r["late_copies"] = list(receipt.get("late_copies", []))
        r["saved_searches_unreadable"] = int(receipt.get("saved_searches_unreadable", 0))
        r["held_by_query_holds"] = list(receipt.get("held_by_query_holds", []))
        r["query_holds_unreadable"] = list(receipt.get("query_holds_unreadable", []))
        r["backup_shred_since"] = waiting.get(r["request_id"])
        # the fresh backup taken: the nodes whose backup keys are still to destroy
        r["backup_shred_nodes"] = nodes_left.get(r["request_id"])
        # open past its deadline, or done with the older backups still readable past it
        waits = r["status"] == "open" or r["backup_shred_since"] is not None
        r["overdue"] = waits and now > r["deadline"]
        r["days_left"] = round((r["deadline"] - now) / policy.DAY, 1)
    return out
