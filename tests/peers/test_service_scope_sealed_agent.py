"""An agent's and a team lead's view of calls is decided by the call row's ``agent`` column; with
the signing key's public half the service trusts that column only under the row's seal.  An
insider who can write the catalog (no signing key) and writes ``alice`` into a call of team blue
does not put it in front of alice or her lead: not in a search, not as a call, not as audio, not in
the QA assignment list.  The admin (scope ``all``) still sees the call; ``verify`` names it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbx_recorder.catalog import Catalog, call_search
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording import call_seal
from pbx_recorder.recording.call_seal import CallSealer, check_calls
from tests.peers.service_support import NOW, make_service
from tests.unit.test_call_seal_rule_tags import recorded_call

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(90, 122)))
OWN, OTHER = "c-red-1", "c-blue-1"  # alice's call; carol's call (team blue, assigned to qa1)

#: what the insider writes into the other team's call row (SQL, no signing key)
FORGERIES = {
    "agent rewritten": "UPDATE calls SET agent = 'alice' WHERE call_id = ?",
    "agent rewritten, seal removed": "UPDATE calls SET agent = 'alice', seal = '' WHERE call_id = ?",
}


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = make_service(tmp_path)
    recorder = Catalog(service.seeded.db, clock=lambda: NOW, sealer=CallSealer(KEY))
    try:  # the recorder writes both rows, sealed (and the ledger's call_sealed entries)
        recorder.upsert_call(recorded_call(OWN, NOW - 3600, agent="alice"))
        recorder.upsert_call(recorded_call(OTHER, NOW - 3 * 3600, agent="carol"))
        conn = recorder._conn()  # (the seeded calls of the other tests stay unsealed: never sealed)
        assert check_calls(conn, KEY.public_key(), OWN) == [] == check_calls(conn, KEY.public_key(), OTHER)
    finally:
        recorder.close()
    service.ctx.seal_key = KEY.public_key()  # type: ignore[attr-defined]
    call_search._ALERTED.clear()  # (the ALERT of a row is logged once per call in ALERT_EVERY_S)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _forge(svc, sql: str) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(svc.seeded.db)
    try:
        conn.execute(sql, (OTHER,))
        conn.commit()
    finally:
        conn.close()


def _listed(client) -> list[str]:  # type: ignore[no-untyped-def]
    """Every call id of a search, one call a page (the cursor walks past a row kept out)."""
    ids: list[str] = []
    after = ""
    for _ in range(10):
        answer = client.get("/api/calls", params={"limit": "1", **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        ids += [c["call_id"] for c in answer.json()["calls"]]
        after = answer.json()["next"] or ""
        if not after:
            return ids
    raise AssertionError("the pages did not end")


def _sees(svc, user: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    client, _ = svc.login(user)
    return {
        "listed": OTHER in _listed(client),
        "call": client.get(f"/api/calls/{OTHER}").status_code,
        "audio": client.get(f"/api/recordings/r-{OTHER}/audio").status_code,
        "assignments": [a["call_id"] for a in
                        client.get("/api/qa/assignments").json().get("assignments", [])],
    }


def test_before_any_forgery_the_team_sees_its_own_calls_only(svc) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login("alice")
    assert OWN in _listed(client) and OTHER not in _listed(client)
    assert client.get(f"/api/calls/{OWN}").status_code == 200


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_an_agent_written_into_a_call_by_hand_does_not_move_it_into_a_scope(svc, forgery: str) -> None:  # type: ignore[no-untyped-def]
    _forge(svc, FORGERIES[forgery])
    assert _sees(svc, "alice") == {"listed": False, "call": 404, "audio": 404, "assignments": []}
    lead = _sees(svc, "lead-red")
    assert (lead["listed"], lead["call"], lead["audio"]) == (False, 404, 404)
    assert OTHER not in lead["assignments"]  # (SQL lists it: its row names alice, of team red)
    client, _ = svc.login("alice")
    assert OWN in _listed(client) and client.get(f"/api/calls/{OWN}").status_code == 200  # sealed: kept
    admin, _ = svc.login("root-admin")
    assert admin.get(f"/api/calls/{OTHER}").status_code == 200  # the whole catalog: still there
    conn = open_catalog(svc.seeded.db)
    try:  # verify names the forged row
        assert [cid for cid, _ in check_calls(conn, KEY.public_key(), OTHER)] == [OTHER]
    finally:
        conn.close()


def test_the_forged_row_is_named_once_not_at_every_read(svc, caplog) -> None:  # type: ignore[no-untyped-def]
    _forge(svc, FORGERIES["agent rewritten"])
    client, _ = svc.login("alice")
    for _ in range(3):
        assert OTHER not in _listed(client)
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage() and OTHER in r.getMessage()]
    assert len(alerts) == 1 and "verify" in alerts[0].getMessage()


def test_a_sealed_row_put_back_after_the_recorder_removed_it_is_out_of_the_scope(svc) -> None:  # type: ignore[no-untyped-def]
    """An erased call's row (sealed, the ledger's last word on it ``call_removed``) restored from a
    backup by hand: its seal still verifies, but the agent does not get it back."""
    conn = open_catalog(svc.seeded.db)
    try:
        call_seal.record_removed(conn, OWN, "erasure ER-1", NOW)
        conn.commit()
    finally:
        conn.close()
    client, _ = svc.login("alice")
    assert OWN not in _listed(client) and client.get(f"/api/calls/{OWN}").status_code == 404


def test_without_the_signing_key_the_agent_column_decides_alone(svc) -> None:  # type: ignore[no-untyped-def]
    """The residual the README names: a service without ``signing.key_file``'s public half cannot
    tell a rewritten agent column (what the test above relies on is the key)."""
    _forge(svc, FORGERIES["agent rewritten"])
    svc.ctx.seal_key = None
    assert _sees(svc, "alice")["call"] == 200
