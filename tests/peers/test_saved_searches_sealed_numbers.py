"""A saved search kept a number in clear: only a full ``caller`` was dropped, so a number typed
into ``keyword`` or a remote agent's dial string in ``agent`` stayed readable in
``saved_searches.query`` (a copied database file, a catalog backup).  A saved search is run again,
so it is not masked: it is stored encrypted under the catalog key and opened for its owner; a
catalog without number keys refuses to save such a query."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from disposal_support import disposal_service
from service_support import Service, make_service

from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher, is_token
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.lifecycle.journal import open_catalog

NUMBER = "4915112345678"
QUERY = f"keyword={NUMBER}&agent=Local%2F{NUMBER}%40from-internal&queue=sales"


def _protect(svc: Service) -> None:
    key = os.urandom(32)
    svc.ctx.catalog.numbers = NumberProtection(NumberCipher(lambda kid: key, "k1"),  # type: ignore[attr-defined]
                                               BlindIndex(os.urandom(32)))


@pytest.fixture()
def svc(tmp_path: Path) -> Iterator[Service]:
    service = make_service(tmp_path)
    _protect(service)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _stored(svc: Service) -> dict[tuple[str, str], str]:
    conn = open_catalog(svc.seeded.db)
    try:
        return {(str(r[0]), str(r[1])): str(r[2])
                for r in conn.execute("SELECT user_name, name, query FROM saved_searches").fetchall()}
    finally:
        conn.close()


def test_keyword_and_agent_are_kept_encrypted_and_the_owner_runs_the_search_again(svc: Service) -> None:
    client, csrf = svc.login("lead-red")
    saved = client.post("/api/searches", json={"name": "cb", "query": QUERY}, headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200, saved.text
    stored = _stored(svc)[("lead-red", "cb")]
    assert is_token(stored) and NUMBER not in stored and "sales" not in stored
    listed = client.get("/api/searches").json()["searches"]
    assert listed == [{"name": "cb", "query": QUERY, "created_at": listed[0]["created_at"]}]
    page = client.get("/calls")
    assert page.status_code == 200 and f'href="/calls?{QUERY.replace("&", "&amp;")}"' in page.text


def test_a_token_copied_onto_another_users_row_does_not_open(svc: Service) -> None:
    client, csrf = svc.login("lead-red")
    client.post("/api/searches", json={"name": "cb", "query": QUERY}, headers={"X-CSRF-Token": csrf})
    other, other_csrf = svc.login("alice")
    other.post("/api/searches", json={"name": "cb", "query": "queue=sales"},
               headers={"X-CSRF-Token": other_csrf})
    conn = open_catalog(svc.seeded.db)
    try:
        conn.execute("BEGIN")
        conn.execute("UPDATE saved_searches SET query = (SELECT query FROM saved_searches WHERE "
                     "user_name = 'lead-red') WHERE user_name = 'alice'")
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert other.get("/api/searches").json()["searches"][0]["query"] == ""


def test_without_number_keys_a_query_naming_a_number_is_refused(tmp_path: Path) -> None:
    svc = make_service(tmp_path)  # a catalog without number protection
    try:
        client, csrf = svc.login("lead-red")
        h = {"X-CSRF-Token": csrf}
        refused = client.post("/api/searches", json={"name": "cb", "query": QUERY}, headers=h)
        assert refused.status_code == 400 and "phone number" in refused.json()["error"]
        assert client.post("/api/searches", json={"name": "r", "query": "keyword=refund"}, headers=h
                           ).status_code == 200
        assert _stored(svc) == {("lead-red", "r"): "keyword=refund"}
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_a_hold_from_an_encrypted_saved_search_reads_its_filters(tmp_path: Path) -> None:
    svc = disposal_service(tmp_path)
    _protect(svc)
    try:
        admin, csrf = svc.login("root-admin")
        h = {"X-CSRF-Token": csrf}
        assert admin.post("/api/searches", json={"name": "bob", "query": "agent=bob&queue=sales"},
                          headers=h).status_code == 200
        assert is_token(_stored(svc)[("root-admin", "bob")])
        held = admin.post("/api/holds", json={"scope": "saved_search", "value": "bob", "reason": "audit"},
                          headers=h)
        assert held.status_code == 201 and held.json()["recordings"] == ["r-c-red-2"]
        hold = [x for x in admin.get("/api/holds").json()["holds"] if x["scope"] == "query"][0]
        assert json.loads(hold["value"])["agent"] == "bob"
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
