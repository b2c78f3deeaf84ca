"""The console's erasure withholds recordings of a protected retention class (a legal obligation to
keep them outweighs erasure); ``include_protected`` opens a two-person deletion request for them
(lifecycle/protected_override.py), named in the answer and the audit rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import Service

NUMBER = "+8613812345678"  # the caller of c-red-1 and c-blue-2


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = disposal_service(tmp_path)
    conn = open_catalog(service.seeded.db)
    conn.execute("UPDATE recordings SET retention_class='complaints' WHERE recording_id='r-c-red-1'")
    conn.close()
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _execute(svc: Service, body: dict) -> dict:
    counsel, csrf = svc.login("counsel")
    headers = {"X-CSRF-Token": csrf}
    opened = counsel.post("/api/erasure", json={"number": NUMBER}, headers=headers)
    assert opened.status_code == 201, opened.text
    done = counsel.post(f"/api/erasure/{opened.json()['request_id']}/execute",
                        json={"number": NUMBER, **body}, headers=headers)
    assert done.status_code == 200, done.text
    return dict(done.json())


def test_a_protected_recording_is_withheld_by_default(svc: Service) -> None:
    receipt = _execute(svc, {})
    assert receipt["status"] == "refused_partial" and receipt["recordings_erased"] == 1  # r-c-blue-2
    assert [(w["recording_id"], w["hold_id"]) for w in receipt["withheld"]] == [
        ("r-c-red-1", "retention:complaints")]
    assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is not None


def test_the_override_is_a_deletion_request_a_second_person_decides(svc: Service) -> None:
    """Before, ``include_protected`` erased the protected recording on one person's word.  Now the
    erasure withholds it and opens a deletion request, which its requester cannot approve; the
    compliance role's approval destroys it, and the erasure run again removes the call."""
    receipt = _execute(svc, {"include_protected": True})
    assert receipt["status"] == "refused_partial" and receipt["recordings_erased"] == 1
    assert receipt["protected_included"] is False
    (asked,) = receipt["protected_deletion_requests"]
    assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is not None
    erased = [json.loads(r["detail"]) for r in svc.audit_rows("counsel") if r["action"] == "erase"]
    assert erased[-1]["include_protected"] is True and erased[-1]["protected_deletion_requests"] == [asked]
    requested = [r for r in svc.audit_rows("counsel") if r["action"] == "deletion.request"]
    assert [r["target"] for r in requested] == [asked]
    assert json.loads(requested[0]["detail"])["erasure"] == receipt["request_id"]

    counsel, csrf = svc.login("counsel")  # legal: may erase, holds no approval; and it is theirs
    assert counsel.post(f"/api/deletions/{asked}/approve", json={},
                        headers={"X-CSRF-Token": csrf}).status_code == 403
    comp, ccsrf = svc.login("comp")
    shown = comp.get(f"/api/deletions/{asked}").json()
    assert shown["requested_by"] == "counsel" and receipt["request_id"] in shown["reason"]
    assert [r["recording_id"] for r in shown["recordings"]] == ["r-c-red-1"]
    done = comp.post(f"/api/deletions/{asked}/approve", json={}, headers={"X-CSRF-Token": ccsrf})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "executed" and done.json()["result"]["deleted"] == ["r-c-red-1"]
    assert svc.seeded.tier.stat("2027/01/c-red-1/r-c-red-1.wav") is None

    again = _execute(svc, {})  # the erasure run again: nothing protected is left to keep
    assert again["status"] == "done" and again["withheld"] == []
    assert not _sql_one(svc, "SELECT count(*) FROM calls WHERE call_id IN ('c-red-1', 'c-blue-2')")


def test_without_the_override_no_deletion_request_is_opened(svc: Service) -> None:
    receipt = _execute(svc, {})
    assert receipt["status"] == "refused_partial" and receipt["protected_deletion_requests"] == []
    assert not _sql_one(svc, "SELECT count(*) FROM deletion_requests")


def _sql_one(svc: Service, sql: str) -> object:
    conn = open_catalog(svc.seeded.db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_an_override_that_is_not_a_boolean_is_refused(svc: Service) -> None:
    counsel, csrf = svc.login("counsel")
    opened = counsel.post("/api/erasure", json={"number": NUMBER}, headers={"X-CSRF-Token": csrf})
    answer = counsel.post(f"/api/erasure/{opened.json()['request_id']}/execute",
                          json={"number": NUMBER, "include_protected": "yes"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 400


def test_the_preview_shows_the_protected_recording_as_kept(svc: Service) -> None:
    counsel, csrf = svc.login("counsel")
    preview = counsel.post("/api/erasure/preview", json={"number": NUMBER}, headers={"X-CSRF-Token": csrf})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["held"] == 1  # before: 0, then the execution answered refused_partial
    kept = [r for c in body["calls"] for r in c["recordings"] if r["hold_id"]]
    assert [(r["recording_id"], r["hold_id"]) for r in kept] == [("r-c-red-1", "retention:complaints")]
