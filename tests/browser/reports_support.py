"""The reports browser test's console: the peers' seeded catalog (teams red and blue, every call in
ISO week 2027-W02) plus tags (one of them markup), QA reviews and a cold recording, so every chart
of the week has bars."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.driving import serve
from tests.peers.service_support import NOW, Service, make_service

WEEK = "2027-W02"
HOSTILE_TAG = "<b>x</b>"


def _enrich(svc: Service) -> None:
    from pbx_recorder.catalog import Catalog
    from pbx_recorder.lifecycle.journal import Tx, open_catalog
    from pbx_recorder.service import qa_store

    catalog = Catalog(svc.seeded.db, clock=lambda: NOW)
    for n, (call_id, agent, billsec, consent, tags) in enumerate((
            ("c-w-1", "alice", 200, "granted", ["complaint", HOSTILE_TAG]),
            ("c-w-2", "bob", 90, "refused", ["pricing"]),
            ("c-w-3", "carol", 0, "timeout", ["complaint"]))):
        catalog.upsert_call({"call_id": call_id, "agent": agent, "caller_num": "+8613800000001",
                             "status": "answered" if billsec else "no_answer", "billsec": billsec,
                             "started_at": NOW - 7200 * (n + 5), "consent_decision": consent,
                             "record_decision": "refused" if consent == "refused" else "record",
                             "tags": tags})
        catalog.upsert_recording({"recording_id": f"r-{call_id}", "call_id": call_id, "state": "migrated",
                                  "size": 40000 * (n + 1), "tier": "cold", "storage_key": f"k/{call_id}",
                                  "format": "wav", "duration_s": 60.0, "created_at": NOW - 40 * 86400})
    catalog.close()
    conn = open_catalog(svc.seeded.db)
    try:
        with Tx(conn):  # the seeded recordings (made at NOW) last 3 minutes: the forecast's input
            conn.execute("UPDATE recordings SET duration_s = 180 WHERE tier = 'hot'")
            for call_id, reviewer, agent, score in (("c-red-1", "qa1", "alice", 92.5),
                                                    ("c-red-2", "qa1", "bob", 71),
                                                    ("c-blue-1", "qa1", "carol", 64)):
                qa_store.add_review(conn, {"call_id": call_id, "reviewer": reviewer, "agent": agent,
                                           "scorecard_id": 1, "answers": {}, "score": score, "comments": []},
                                    NOW - 600, svc.ctx.access_seal)  # (sealed as the service writes them)
    finally:
        conn.close()


@pytest.fixture(name="reports_console", scope="module")
def reports_console_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    svc = make_service(tmp_path_factory.mktemp("reports"))
    _enrich(svc)
    with serve(build_app(svc.ctx)) as base:
        yield svc, base
    svc.ctx.catalog.close()  # type: ignore[attr-defined]
