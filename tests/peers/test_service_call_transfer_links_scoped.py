"""A call's consent evidence names the calls a transfer joined it with (``consent.transfer``):
``/api/calls/{id}`` lists only the linked calls the viewer may see, so it reveals no call id of
another agent's or team's call."""

from __future__ import annotations

import pytest

from tests.peers.service_support import NOW

LINKS = [{"kind": "replaces", "call_id": "c-blue-2", "at": NOW - 10},
         {"kind": "replaces", "call_id": "c-red-2", "at": NOW - 5}]
#: user -> the linked calls they may see (alice: her own calls only; the lead: team red)
SEEN = {"alice": [], "lead-red": ["c-red-2"], "root-admin": ["c-blue-2", "c-red-2"],
        "comp": ["c-blue-2", "c-red-2"]}


@pytest.fixture
def linked(seeded_service):  # type: ignore[no-untyped-def]
    seeded_service.ctx.catalog.upsert_call({"call_id": "c-red-1", "consent": {
        "decision": "granted", "asked_at": None, "decided_at": None, "transfer": LINKS}})
    return seeded_service


@pytest.mark.parametrize("user", sorted(SEEN))
def test_transfer_links_follow_the_row_scope(linked, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = linked.login(user)
    answer = client.get("/api/calls/c-red-1")
    assert answer.status_code == 200, answer.text
    consent = answer.json()["consent"]
    assert sorted(link["call_id"] for link in consent["transfer"]) == SEEN[user]
    assert consent["decision"] == "granted"
    if "c-blue-2" not in SEEN[user]:
        assert "c-blue-2" not in answer.text
        assert "c-blue-2" not in client.get("/calls/c-red-1").text
