"""The service's holds listing (``GET /api/holds``, the console's ``/holds`` page): a query hold's
free fields were shown opened and in clear (a remote agent's dial string names their mobile), and a
hold whose stored query does not open looked like any other while it held every recording.  Now
the query is masked for every role (one holding ``calls.unmask`` too: holds are never unmasked),
and an unreadable hold is ``"unreadable": true`` with the value ``UNREADABLE: holds everything``.
SQLite and, with ``PBXR_TEST_CATALOG=postgresql``, PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.holds import note_rekeyed
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.service.roles import may
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import NOW, Service

MOBILE = "4915112345678"
DIAL = f"Local/{MOBILE}@from-internal"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = disposal_service(tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _hold(svc: Service, client, csrf: str, query: dict) -> str:  # type: ignore[no-untyped-def]
    added = client.post("/api/holds", json={"scope": "query", "value": json.dumps(query), "reason": "case 4"},
                        headers={"X-CSRF-Token": csrf})
    assert added.status_code == 201, added.text
    return str(added.json()["hold_id"])


def test_a_query_holds_agent_is_masked_in_the_api_the_console_and_the_audit(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    assert may("admin", "calls.unmask")  # a role that may unmask calls: holds stay masked all the same
    hold_id = _hold(svc, admin, csrf, {"agent": DIAL, "queue": "sales"})
    listed = admin.get("/api/holds")
    assert listed.status_code == 200 and MOBILE not in listed.text
    (hold,) = [h for h in listed.json()["holds"] if h["hold_id"] == hold_id]
    assert json.loads(hold["value"]) == {"agent": "Local/491******5678@from-internal", "queue": "sales"}
    assert hold["unreadable"] is False
    page = admin.get("/holds")
    assert page.status_code == 200 and hold_id in page.text and MOBILE not in page.text
    assert "491******5678" in page.text
    assert all(MOBILE not in str(r["detail"]) for r in svc.audit_rows("root-admin"))


def test_a_hold_that_does_not_open_is_listed_unreadable(svc: Service) -> None:
    admin, csrf = svc.login("root-admin")
    hold_id = _hold(svc, admin, csrf, {"agent": DIAL})
    lost = NumberProtection(NumberCipher(lambda kid: b"\x05" * 32, "klost"), BlindIndex(os.urandom(32)))
    token = query_hold_rows.seal_text(lost, hold_id, json.dumps({"agent": DIAL}))
    conn = open_catalog(svc.seeded.db)
    try:  # sealed again under a key this service does not have, the ledger following the row
        with Tx(conn):
            conn.execute("UPDATE holds SET value = ? WHERE hold_id = ?", (token, hold_id))
            note_rekeyed(conn, hold_id, token, "", NOW)
    finally:
        conn.close()
    (hold,) = [h for h in admin.get("/api/holds").json()["holds"] if h["hold_id"] == hold_id]
    assert hold["unreadable"] is True and hold["value"] == "UNREADABLE: holds everything"
    page = admin.get("/holds")
    assert page.status_code == 200 and "UNREADABLE: holds everything" in page.text and token not in page.text
