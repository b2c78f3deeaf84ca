"""The audit log's check, one implementation for ``pbx-recorder audit verify`` and the console's
audit page: recompute the chain (:func:`pbx_recorder.audit_trail.verify_chain`) and hold it to
its signed head (:mod:`pbx_recorder.recording.chain_head`) when a signing key (or its public half) is
configured.  ``ok`` is True only with no problem at all.

``after_id`` / ``after_hash`` (the ``last_id`` / ``last_hash`` of a clean earlier pass) recompute
only the rows written since, for a console that checks on every page load
(``service/audit_chain_watch.py``); ``audit verify`` always recomputes every row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbx_recorder import audit_trail


@dataclass(frozen=True)
class ChainStatus:
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    rows: int
    head_checked: bool
    last_id: int = 0  #: the last chained row recomputed: where an incremental pass starts
    last_hash: str = ""
    full: bool = True  #: every row recomputed (not only those after ``after_id``)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(conn: Any, config: Any, after_id: int = 0, after_hash: str = "") -> ChainStatus:
    from pbx_recorder.recording import (
        chain_head,  # the signing code only when a check runs (cli/lazy_group.py)
    )
    from pbx_recorder.recording.signing import load_public_key, public_key_path

    stats: dict[str, int] = {}
    problems, legacy, last_id, last_hash = audit_trail.verify_chain_from(conn, after_id, after_hash,
                                                                         stats=stats)
    lines = [str(p) for p in problems]
    notes = [f"{legacy} audit row(s) predate the audit chain (not covered)"] if legacy else []
    notes += [n for n in [audit_trail.key_note(stats)] if n]
    key_file = config.signing.key_file if config is not None else None
    checked = False
    if key_file is not None and (public_key_path(key_file).is_file() or key_file.is_file()):
        head_problems, head_notes = chain_head.check(conn, "audit", chain_head.store_for(config),
                                                     load_public_key(key_file))
        lines += [str(p) for p in head_problems]
        notes += head_notes
        checked = True
    else:
        notes.append("no signing key found: the signed chain head is not checked")
    count = int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
    return ChainStatus(tuple(lines), tuple(notes), count, checked, last_id, last_hash, not after_id)
