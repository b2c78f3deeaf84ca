"""A leftover of an erased call deleted by node B's daemon while the catalog cannot take its receipt
line (the write fails after the file is gone) is still named in the erasure's receipt: the line
waits beside B's spool (``_erasure_receipts.json``, no number in it) and the next orphan scan
writes it, with the time of the deletion, once."""

from __future__ import annotations

import json
import sqlite3

from test_erasure_reaches_other_nodes_leftovers import ERASED, _quarantined, _receipt, nodes  # noqa: F401

from pbx_recorder.lifecycle.late_copies import LateCopyGuard
from pbx_recorder.lifecycle.receipt_backlog import FILE_NAME, ReceiptBacklog


async def test_a_receipt_line_the_catalog_refused_is_written_at_the_next_scan(
        nodes, capsys, monkeypatch) -> None:  # noqa: F811
    a, b, spool_b, recovery_b = nodes
    erased = _quarantined(b, spool_b, ERASED)
    code, out = a.cli(capsys, "erase", "--call-id", ERASED, "--request-id", "ER-7")
    assert code == 0, out
    real = LateCopyGuard.leftover_deleted

    def catalog_away(*_a, **_k):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(LateCopyGuard, "leftover_deleted", catalog_away)
    recovery_b.clock = lambda: 1_900_000_000.0  # when B deletes the file
    assert await recovery_b.recover_orphans() == 1
    assert not erased.exists()  # deleted first: the voice does not wait for the catalog
    assert "late_copies" not in _receipt(a, "ER-7")
    waiting = json.loads((b / "spool" / FILE_NAME).read_text())
    assert [(w["request_id"], w["call_id"], w["copy"], w["at"]) for w in waiting] == [
        ("ER-7", ERASED, "spool_quarantine", 1_900_000_000.0)]
    assert await recovery_b.recover_orphans() == 0  # still away: the line stays, once
    assert len(json.loads((b / "spool" / FILE_NAME).read_text())) == 1

    monkeypatch.setattr(LateCopyGuard, "leftover_deleted", real)
    recovery_b.clock = lambda: 1_900_000_600.0
    await recovery_b.recover_orphans()
    receipt = _receipt(a, "ER-7")
    assert [(c["call_id"], c["copy"], c["action"], c["at"]) for c in receipt["late_copies"]] == [
        (ERASED, "spool_quarantine", "destroyed", 1_900_000_000.0)]  # the deletion's time
    assert f"spool-quarantine:{ERASED}_call001" in receipt["copies"]["deleted"]
    assert not (b / "spool" / FILE_NAME).exists()
    await recovery_b.recover_orphans()
    assert len(_receipt(a, "ER-7")["late_copies"]) == 1  # not doubled


def test_an_unreadable_backlog_is_kept_aside_and_named(tmp_path, caplog) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"{not json")
    backlog = ReceiptBacklog(tmp_path)
    assert backlog.lines() == []
    assert (tmp_path / (FILE_NAME + ".unreadable")).read_bytes() == b"{not json"
    assert any("ALERT" in r.getMessage() and "by hand" in r.getMessage() for r in caplog.records)
    backlog.add("ER-1", "n1_1.1", "n1_1.1_call001", "orphan", 5.0)
    backlog.add("ER-1", "n1_1.1", "n1_1.1_call001", "orphan", 5.0)  # the same line once
    assert len(backlog.lines()) == 1
    written: list[str] = []
    assert backlog.flush(lambda line: written.append(line["recording_id"])) == 1
    assert written == ["n1_1.1_call001"] and backlog.lines() == []
