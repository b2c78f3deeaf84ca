"""The catalog's live-call snapshots (what the daemon restores after a restart, sealed when the
numbers are protected) and its audit log (through the one writer, ``audit_trail``).  A mixin of
:class:`~pbx_recorder.catalog.repository.Catalog`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pbx_recorder import audit_trail
from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError

if TYPE_CHECKING:
    from pbx_recorder.catalog.protected_rows import NumberProtection


class LiveCalls:
    """Catalog methods for the ``live_calls`` table and the audit log."""

    if TYPE_CHECKING:  # what they use of the Catalog
        clock: Callable[[], float]
        numbers: NumberProtection | None

        def _conn(self) -> sqlite3.Connection: ...
        def _exec(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor: ...

    def save_live_call(self, call_id: str, snapshot: Mapping[str, Any] | str) -> None:
        text = snapshot if isinstance(snapshot, str) else json.dumps(snapshot, sort_keys=True)
        text = self._seal_live(call_id, text)
        self._exec("INSERT INTO live_calls (call_id, state, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(call_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                   (call_id, text, self.clock()))

    def load_live_calls(self) -> dict[str, Any]:
        rows = self._exec("SELECT call_id, state FROM live_calls ORDER BY call_id")
        return {row["call_id"]: self._live_snapshot(row["call_id"], row["state"]) for row in rows}

    def load_live_call(self, call_id: str) -> dict[str, Any] | None:
        """One call's snapshot (None when it is not live, or not a snapshot)."""
        for row in self._exec("SELECT call_id, state FROM live_calls WHERE call_id = ?", (call_id,)):
            found = self._live_snapshot(row["call_id"], row["state"])
            return found if isinstance(found, dict) else None
        return None

    def _live_snapshot(self, call_id: str, text: str) -> Any:
        """A stored snapshot opened and parsed (its text when it is not JSON)."""
        if self.numbers is not None:
            text = self.numbers.open_text("live_calls", call_id, text)
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _seal_live(self, call_id: str, text: str) -> str:
        return self.numbers.seal_text("live_calls", call_id, text) if self.numbers is not None else text

    def delete_live_call(self, call_id: str) -> None:
        self._exec("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

    def write_live_calls(self, changes: Mapping[str, str | None]) -> None:
        """Many live-call snapshots (None = the call is over) in ONE transaction (one commit)."""
        conn, now = self._conn(), self.clock()
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for call_id, text in changes.items():
                    if text is None:
                        conn.execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))
                    else:
                        conn.execute(
                            "INSERT INTO live_calls (call_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT"
                            "(call_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                            (call_id, self._seal_live(call_id, text), now),
                        )
        except engine.db_errors() as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    # -- audit -------------------------------------------------------------------
    def audit(self, actor: str, role: str, action: str, target: str = "",
              detail: Mapping[str, Any] | None = None) -> None:
        """One audit row through the one writer (``pbx_recorder.audit_trail``: chained, numbers masked)."""
        audit_trail.record(self._conn(), actor=actor, role=role, action=action, target=target,
                           detail=detail, now=self.clock())

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        return audit_trail.entries(self._conn(), limit=limit)
