"""A call whose linkedid the PBX reused (``<id>-r2``, core/call_faults.new_generation) is saved in
``live_calls`` under its own id: the daemon marks it dirty by the event's base id, which the book
resolves through its aliases.  Before, the newer call's snapshot was written under the base id and
its own row kept an old copy (``calls pause <id>-r2`` then read a snapshot without the
MixMonitors it had seen, and refused)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from pbx_recorder.core.call_model import Call, call_to_dict
from pbx_recorder.live_persistence import LiveCallPersistence
from tests.unit.calls_transcript import new_book


class Writer(LiveCallPersistence):
    def __init__(self, book: object) -> None:
        self.app = SimpleNamespace(callbook=book)  # type: ignore[assignment]
        self.summary = SimpleNamespace(restored_calls=0)
        self.metrics = None
        self._stop = asyncio.Event()
        self._dirty, self._live_pending, self._call_rows = {}, {}, []
        self._write_wakeup = asyncio.Event()
        self._writer_closing = False
        self._saved, self._start_failed = {}, set()


def test_a_reused_linkedids_call_is_saved_under_its_own_id() -> None:
    book = new_book()
    newer = Call(call_id="pbx1_L1-r2", node="pbx1", linkedid="L1", created_at=0, updated_at=0,
                 state="recording", mixmonitors={"PJSIP/a-1": ["pbx1_L1-r2_call001"]})
    book.restore(call_to_dict(newer))
    writer = Writer(book)
    writer._dirty = {"pbx1_L1": None}  # what an event of the linkedid "L1" marks
    writer._snapshot_dirty()
    assert list(writer._live_pending) == ["pbx1_L1-r2"]
    saved = writer._live_pending["pbx1_L1-r2"]
    assert saved is not None and json.loads(saved)["mixmonitors"] == {"PJSIP/a-1": ["pbx1_L1-r2_call001"]}
