"""Where a whole-catalog check stands: resume point and the marks of the last good pass.

One small JSON file beside the catalog (``<catalog>.verify-state.json`` for ``verify``,
``<catalog>.ledger-verify-state.json`` for ``ledger verify``), written atomically (temp file,
fsync, rename: ``storage.atomic``) with mode 0600:

* ``running``: a pass under way -- the last recordings ``rowid`` it finished and what it found
  so far, so ``--resume`` continues an interrupted pass without losing or repeating findings;
* ``last``: the marks of the last pass that found nothing wrong -- the ledger and audit
  positions (and hashes) its chain recomputation reached, the recordings and calls rowids and
  the ledger position at its start -- from which ``--since-last`` checks only what changed.

The file only ever makes a check do *less*: whoever can edit it can make ``--since-last``
skip work, never make a full pass (the default) accept anything.  See README "Whole-catalog
operations at scale" for what an incremental pass does and does not prove.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pbx_recorder.errors import StorageError
from storage import atomic

log = logging.getLogger(__name__)
VERSION = 1


@dataclass(frozen=True, slots=True)
class Marks:
    """Where the last good pass ended: the next incremental pass starts here."""

    started_at: float = 0.0
    ledger_seq: int = 0  # last ledger row whose hash the pass recomputed ...
    ledger_hash: str = ""  # ... and that hash
    audit_id: int = 0
    audit_hash: str = ""
    changes_seq: int = 0  # ledger head when the pass started: later entries name changed recordings
    recordings_rowid: int = 0  # highest recordings rowid when the pass started
    calls_rowid: int = 0

    @classmethod
    def from_json(cls, data: Any) -> Marks | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: type(getattr(cls(), k))(v) for k, v in data.items() if k in cls.__slots__})
        except (TypeError, ValueError):
            return None


class VerifyState:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.problem = ""

    @classmethod
    def beside(cls, catalog_path: str | Path, name: str = "verify") -> VerifyState:
        p = Path(catalog_path)
        return cls(p.with_name(f"{p.name}.{name}-state.json"))

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # unreadable: start over (a full pass is always sound)
            log.warning("verify state %s unreadable (%s): starting from scratch", self.path, exc)
            return {}
        return data if isinstance(data, dict) and data.get("version") == VERSION else {}

    def _write(self, data: dict[str, Any]) -> None:
        """Best effort: an account that may read the catalog but not write beside it (an
        auditor) still verifies; it only cannot resume or go incremental (``problem`` says why)."""
        if self.problem:
            return
        data["version"] = VERSION
        body = json.dumps(data, sort_keys=True).encode("utf-8")
        try:
            atomic.write_stream(self.path, [body], mode=0o600)
        except StorageError as exc:
            self.problem = f"verify state {self.path} not written ({exc}): no resume point, no marks"
            log.warning("%s", self.problem)

    def last(self) -> Marks | None:
        return Marks.from_json(self._read().get("last"))

    def running(self) -> dict[str, Any] | None:
        run = self._read().get("running")
        return run if isinstance(run, dict) else None

    def save_running(self, running: dict[str, Any]) -> None:
        data = self._read()
        data["running"] = running
        self._write(data)

    def finish(self, marks: Marks | None) -> None:
        """The pass ended: drop the resume point; ``marks`` (a pass that found nothing wrong)
        become where the next ``--since-last`` starts (None keeps the previous marks)."""
        data = self._read()
        data.pop("running", None)
        if marks is not None:
            data["last"] = asdict(marks)
        self._write(data)
