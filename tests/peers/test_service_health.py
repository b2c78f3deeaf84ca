"""The health page and API (it, admin): every role; daemon up from its heartbeat; spool, tiers,
recordings shipped and failed, lifecycle jobs; and IT sees no call content and no number."""

from __future__ import annotations

import json

import pytest

from pbx_recorder import audit_trail, heartbeat
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import api_health
from tests.peers.service_support import CALLS, NOW, USERS

HEALTH_READERS = {"root-admin", "ops"}


def _conn(service):  # type: ignore[no-untyped-def]
    return open_catalog(service.seeded.db)


def _beat(service, node: str, at: float, **state) -> None:  # type: ignore[no-untyped-def]
    conn = _conn(service)
    try:
        heartbeat.write(conn, node, {"pbx": "asterisk", "pbx_connected": True, "live_calls": 3,
                                     "spool_pending": 2, "spool_oldest_at": at - 40, **state}, at)
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(USERS))
def test_every_role_on_the_health_endpoints(seeded_service, name) -> None:  # type: ignore[no-untyped-def]
    client, _ = seeded_service.login(name)
    for path in ("/api/health", "/health"):
        answer = client.get(path)
        if name in HEALTH_READERS:
            assert answer.status_code == 200, (path, answer.text)
        else:
            assert answer.status_code == 403, path
            last = seeded_service.audit_rows(name)[-1]
            assert last["action"] == "denied:health.read" and last["target"] == path


def test_daemon_up_down_and_stopped_from_the_heartbeat(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _beat(seeded_service, "pbx1", NOW - 5)
    _beat(seeded_service, "pbx2", NOW - 10 * heartbeat.INTERVAL_S)  # silent for 10 intervals
    _beat(seeded_service, "pbx3", NOW - 1, stopped=True)
    client, _ = seeded_service.login("ops")
    daemons = {d["node"]: d for d in client.get("/api/health").json()["daemons"]}
    assert (daemons["pbx1"]["up"], daemons["pbx2"]["up"], daemons["pbx3"]["up"]) == (True, False, False)
    assert daemons["pbx3"]["stopped"] is True
    one = daemons["pbx1"]
    assert (one["pbx_connected"], one["live_calls"], one["spool_pending"]) == (True, 3, 2)
    assert one["spool_oldest_age_s"] == 45.0 and one["last_beat_age_s"] == 5.0
    page = client.get("/health").text
    assert "pbx1" in page and "pbx2" in page


def test_recordings_shipped_and_failed_tiers_and_jobs(seeded_service) -> None:  # type: ignore[no-untyped-def]
    conn = _conn(seeded_service)
    try:
        conn.execute("UPDATE recordings SET state = 'ship_failed' WHERE recording_id = 'r-c-red-2'")
        conn.commit()
        detail = {"deleted": 3, "refused": 0, "calls": ["c-red-1"], "caller": "+8613812345678"}
        audit_trail.record(conn, actor="pbx-recorder", role="service", action="retention.apply",
                           target="c-red-1", detail=detail, now=NOW - 60)
    finally:
        conn.close()
    client, _ = seeded_service.login("ops")
    h = client.get("/api/health").json()
    assert h["recordings"]["shipped"] == len(CALLS) - 1 and h["recordings"]["failed"] == 1
    assert h["recordings"]["capped"] == [] and h["recordings"]["shipped_exact"] is True
    # each state counted inside its own index range, up to a cap: past it a lower bound, marked
    conn = _conn(seeded_service)
    try:
        capped = api_health.recordings(conn, cap=2)
    finally:
        conn.close()
    assert capped["failed"] == 1 and capped["failed_exact"] is True
    assert capped["capped"] == [s for s, n in h["recordings"]["by_state"].items() if n > 2] != []
    assert capped["shipped_exact"] is False and capped["shipped"] < h["recordings"]["shipped"]
    assert set(capped["by_state"]) == set(h["recordings"]["by_state"])
    jobs = {j["job"]: j for j in h["jobs"]}
    assert jobs["retention.apply"]["result"] == {"deleted": 3, "refused": 0}
    assert jobs["retention.apply"]["by"] == "pbx-recorder" and jobs["catalog.backup"]["last_at"] is None
    hot = {t["tier"]: t for t in h["tiers"]}["hot"]
    assert hot["total_bytes"] > 0 and hot["free_bytes"] == hot["total_bytes"] - hot["used_bytes"]


def test_it_sees_no_call_content_and_no_number(seeded_service) -> None:  # type: ignore[no-untyped-def]
    _beat(seeded_service, "pbx1", NOW - 5)
    conn = _conn(seeded_service)
    try:
        audit_trail.record(conn, actor="pbx-recorder", role="service", action="recordings.migrate",
                           target="r-c-blue-1", detail={"done": 1, "call_id": "c-blue-1", "key": "2027/01/x"},
                           now=NOW - 30)
    finally:
        conn.close()
    client, _ = seeded_service.login("ops")
    shown = json.dumps(client.get("/api/health").json()) + client.get("/health").text
    for call_id, agent, caller in CALLS:
        assert call_id not in shown and f"r-{call_id}" not in shown and agent not in shown
        assert caller[3:] not in shown and caller[-8:] not in shown  # the number, in any form
    assert "2027/01" not in shown and "alert(1)" not in shown and "sales" not in shown
    assert client.get("/api/calls").status_code == 403  # and the calls themselves stay closed
