"""The audit log's check, one implementation for ``pbx-recorder audit verify`` and the console's
audit page: recompute the chain (:func:`pbx_recorder.audit_trail.verify_chain`) and hold it to
its signed head (:mod:`pbx_recorder.chain_head`) when a signing key (or its public half) is
configured.  ``ok`` is True only with no problem at all."""

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

    @property
    def ok(self) -> bool:
        return not self.problems


def check(conn: Any, config: Any) -> ChainStatus:
    from pbx_recorder import chain_head  # the signing code only when a check runs (cli/lazy_group.py)
    from pbx_recorder.signing import load_public_key, public_key_path

    problems, legacy = audit_trail.verify_chain(conn)
    lines = [str(p) for p in problems]
    notes = [f"{legacy} audit row(s) predate the audit chain (not covered)"] if legacy else []
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
    return ChainStatus(tuple(lines), tuple(notes), count, checked)
