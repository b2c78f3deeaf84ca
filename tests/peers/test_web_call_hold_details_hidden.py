"""A hold's reason and creator are shown on the call page only to roles holding ``holds.read``
(the hold pages and API refuse the others); an agent or a QA reviewer sees only that the call is
held, and the call's JSON carries neither."""

from __future__ import annotations

import pytest

from pbx_recorder.lifecycle.journal import open_catalog
from tests.peers.service_support import NOW

REASON = "internal fraud investigation of agent alice"
#: user -> a call of their scope
VIEWERS = {"alice": "c-red-1", "qa1": "c-blue-1", "root-admin": "c-red-1", "comp": "c-blue-1",
           "counsel": "c-red-1"}
HOLDS_READ = {"root-admin", "comp", "counsel"}


@pytest.fixture
def held(seeded_service):  # type: ignore[no-untyped-def]
    conn = open_catalog(seeded_service.seeded.db)
    try:
        for n, call_id in enumerate(("c-red-1", "c-blue-1")):
            conn.execute("INSERT INTO holds (hold_id, scope, value, reason, created_by, created_at) "
                         "VALUES (?, 'call', ?, ?, 'counsel', ?)", (f"h-{n}", call_id, REASON, NOW))
        conn.commit()
    finally:
        conn.close()
    return seeded_service


@pytest.mark.parametrize("user", sorted(VIEWERS))
def test_hold_details_only_for_holds_read(held, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = held.login(user)
    page = client.get(f"/calls/{VIEWERS[user]}")
    assert page.status_code == 200
    assert 'id="held"' in page.text  # everyone sees that the call is held
    shows = user in HOLDS_READ
    assert (REASON in page.text) is shows and ("(counsel," in page.text) is shows
    api = client.get(f"/api/calls/{VIEWERS[user]}")
    assert api.status_code == 200 and REASON not in api.text and "counsel" not in api.text
    if not shows:
        assert client.get("/api/holds").status_code == 403


def test_a_released_hold_shows_no_badge_to_an_agent(held) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(held.seeded.db)
    try:
        conn.execute("UPDATE holds SET released_at = ?, released_by = 'counsel' WHERE hold_id = 'h-0'",
                     (NOW,))
        conn.commit()
    finally:
        conn.close()
    alice, _ = held.login("alice")
    page = alice.get("/calls/c-red-1").text
    assert 'id="held"' not in page and REASON not in page and "h-0" not in page
