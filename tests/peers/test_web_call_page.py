"""The call page over HTTP: consent evidence with digits, the consent answer's recording, storage
state, PCI pauses in the timeline, holds, the same customer's other calls within the viewer's
scope only, and the access list for audit.read roles only."""

from __future__ import annotations

import html

from pbx_recorder.lifecycle.journal import Tx
from tests.peers.service_support import NOW

CONSENT = {"policy": "explicit", "prompt_id": "cq", "prompt_version": "2026-01", "language": "zh",
           "asked_at": NOW - 3600, "decided_at": NOW - 3590, "decision": "granted",
           "digit_log": [{"digit": "1", "attempt": 1, "at": NOW - 3592, "counted": True, "why": ""}]}


def _enrich(svc) -> None:  # type: ignore[no-untyped-def]
    catalog = svc.ctx.catalog
    catalog.upsert_call({"call_id": "c-red-1", "consent": CONSENT, "consent_decision": "granted",
                         "uniqueids": ["1700000000.1", "1700000000.2"], "flags": ["transferred"]})
    catalog.upsert_recording({"recording_id": "r-c-red-1", "call_id": "c-red-1",
                              "manifest": {"recording_id": "r-c-red-1", "call_id": "c-red-1",
                                           "pauses": [[NOW - 3500, NOW - 3470]]},
                              "storage_class": "DEEP_ARCHIVE", "signature": "c2ln",
                              "flags": ["pause_auto_resumed"]})
    catalog.upsert_recording({"recording_id": "r-consent-1", "call_id": "c-red-1", "kind": "consent",
                              "state": "stored", "tier": "hot", "restore_state": "in_progress",
                              "created_at": NOW})
    conn = catalog.connection()
    with Tx(conn):
        conn.execute("INSERT INTO holds (hold_id, scope, value, reason, created_by, created_at) "
                     "VALUES ('h-1', 'call', 'c-red-1', '<b>case 42</b>', 'counsel', ?)", (NOW,))


def test_the_call_page_shows_evidence_recordings_timeline_and_holds(seeded_service) -> None:
    _enrich(seeded_service)
    client, _ = seeded_service.login("lead-red")
    text = client.get("/calls/c-red-1").text
    assert "cq v2026-01 (zh, explicit)" in text and 'id="consent-decision">granted<' in text
    assert "<td>1</td>" in text  # the digit pressed, with its time
    assert 'data-recording-id="r-consent-1"' in text and "consent answer" in text
    assert 'href="/recordings/r-consent-1/play"' in text  # the archived answer is playable
    assert "cold (archive)" in text and "restoring" in text and "signed (Ed25519)" in text
    assert "recording paused (PCI)" in text and "r-c-red-1 (30 s)" in text
    # the recording's flags: here the recorder ended a pause (pbx.pause_max_s), QA must know
    assert '<span class="rec-flags">(pause_auto_resumed)</span>' in text
    assert "1700000000.1, 1700000000.2" in text and "transferred" in text
    assert 'id="held"' in text and "case 42" not in text  # a supervisor: held, not why (holds.read)
    assert "+8613812345678" not in text  # a supervisor's page stays masked until asked
    counsel, _ = seeded_service.login("counsel")
    text = counsel.get("/calls/c-red-1").text
    assert html.escape("<b>case 42</b>") in text and "<b>case 42</b>" not in text


def test_other_calls_stay_in_scope_and_the_access_list_is_for_audit_roles(seeded_service) -> None:
    lead, _ = seeded_service.login("lead-red")
    page = lead.get("/calls/c-red-1").text
    assert 'href="/calls/c-blue-2"' not in page  # same caller, another team's call
    assert 'id="access"' not in page  # a supervisor does not read the audit log
    admin, _ = seeded_service.login("root-admin")
    page = admin.get("/calls/c-red-1").text
    assert 'href="/calls/c-blue-2"' in page
    auditor, _ = seeded_service.login("comp")
    page = auditor.get("/calls/c-red-1").text
    assert 'id="access"' in page and "lead-red (supervisor)" in page and "root-admin (admin)" in page


def test_consent_evidence_without_its_times_renders(seeded_service) -> None:
    # evidence written without asked_at / decided_at keys (a consent never asked, an older row):
    # the page shows empty times instead of failing
    seeded_service.ctx.catalog.upsert_call({"call_id": "c-red-1", "consent": {"decision": "none"},
                                            "consent_decision": "none"})
    client, _ = seeded_service.login("lead-red")
    answer = client.get("/calls/c-red-1")
    assert answer.status_code == 200 and 'id="consent-decision">none<' in answer.text
