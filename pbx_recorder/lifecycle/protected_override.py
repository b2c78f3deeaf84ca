"""The console's erasure override of protected retention classes, decided by two people.

A protected class states a legal obligation to keep its recordings (complaints, MiFID II or
finance records); an erasure withholds them (``Eraser.protected_reason``).  Before, the
console's "also erase protected recordings" erased them on one person's word.  Now the erasure
runs as usual (they are withheld, the request ``refused_partial``) and this opens a two-person
deletion request (:class:`~pbx_recorder.lifecycle.deletion_requests.DeletionRequests`) for the
calls holding them, asked by the person who ran the erasure: someone else holding
``calls.delete_approve`` approves or refuses it; once it is executed, the erasure run again for
the number finds those recordings destroyed (``expired``: nothing left to keep) and removes the
calls.  A recording held by a legal hold stays withheld by both.

``erase --include-protected`` on the host keeps the root's one-person override (audited): a
process run as root holds every key, so a second person cannot be enforced against it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.lifecycle.deletion_requests import MAX_CALLS, DeletionRequests

PROTECTED_HOLD = "retention:"  #: the hold id prefix ``Eraser.protected_reason`` withholds with


def protected_calls(withheld: Sequence[Mapping[str, Any]]) -> list[str]:
    """The calls whose recordings the erasure withheld for a protected class alone."""
    return sorted({str(w["call_id"]) for w in withheld
                   if str(w.get("hold_id", "")).startswith(PROTECTED_HOLD)})


def ask_deletion(conn: sqlite3.Connection, receipt: Mapping[str, Any], *, requester: str,
                 now: float) -> list[str]:
    """Open the deletion request(s) for the recordings ``receipt`` (an erasure's) withheld for
    a protected class (``MAX_CALLS`` calls a request); their ids.  None when nothing is left
    to ask for (a protected recording still in the spool has no stored row to name yet: the
    erasure run again later finds it stored)."""
    calls = protected_calls(receipt.get("withheld") or ())
    reason = (f"GDPR erasure {receipt['request_id']}: the subject's recordings of protected retention "
              f"classes, destroyed only if a second person approves; then run the erasure again")
    asked: list[str] = []
    for at in range(0, len(calls), MAX_CALLS):
        try:
            made = DeletionRequests(conn).ask(requester=requester, reason=reason,
                                              call_ids=calls[at:at + MAX_CALLS], now=now)
        except PolicyRefusal:  # these calls have no stored recording (yet)
            continue
        asked.append(str(made["id"]))
    return asked
