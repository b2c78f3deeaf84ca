"""Review finding: an export job kept its filter's keyword and agent as typed (``keyword=13800138000``
in ``export_jobs.filter``, a column that outlives an erasure).  Every field is masked now; the job
still runs on the filter as asked (parsed from the request, held in memory by its thread)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from pbx_recorder.lifecycle.journal import Tx
from tests.peers.exports_support import csv_rows, export_service, finished, start, unzip
from tests.peers.service_support import NOW, Service

KEYWORD = "13800138000"
AGENT = "Local/4915112345678@x"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = export_service(tmp_path)
    catalog = service.ctx.catalog  # type: ignore[attr-defined]
    for call_id, agent in (("c-remote-1", AGENT), ("c-remote-2", AGENT)):
        catalog.upsert_call({"call_id": call_id, "agent": agent, "caller_num": "+8613900000001",
                             "callee_num": "8001", "status": "answered", "started_at": NOW - 600,
                             "queue": "sales", "tags": []})
    conn = catalog.connection()
    with Tx(conn):
        conn.execute("INSERT INTO marks (call_id, recording_id, position_s, label, note, author, created_at)"
                     " VALUES ('c-remote-1', '', 0, 'callback', ?, 'root-admin', ?)",
                     (f"asked to call back on {KEYWORD}", NOW - 500))
    yield service
    catalog.close()


def test_the_stored_filter_holds_no_number_and_the_export_finds_the_right_calls(svc: Service) -> None:
    client, csrf = svc.login("root-admin")
    query = urlencode({"keyword": KEYWORD, "agent": AGENT})
    answer = start(client, csrf, "csv", query, fields=["call_id"])
    assert answer.status_code == 202, answer.text
    job = finished(client, answer.json()["id"])
    assert job["state"] == "done", job
    files = unzip(client.get(f"/api/exports/{job['id']}/file").content)
    assert [r[0] for r in csv_rows(files["calls.csv"])[1:]] == ["c-remote-1"]  # keyword AND agent
    conn = svc.ctx.catalog.connection()  # type: ignore[attr-defined]
    (stored,) = conn.execute("SELECT filter FROM export_jobs WHERE id = ?", (job["id"],)).fetchone()
    for digits in (KEYWORD, "4915112345678", "00138", "51123"):
        assert digits not in stored, stored
        assert digits not in json.dumps(job["filter"])
    assert json.loads(stored) == {"keyword": "138****8000", "agent": "Local/491******5678@x"}
    audited = [json.loads(r["detail"]) for r in svc.audit_rows("root-admin") if r["action"] == "calls.export"]
    assert audited and KEYWORD not in json.dumps(audited) and "4915112345678" not in json.dumps(audited)
