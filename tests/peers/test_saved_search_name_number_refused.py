"""A saved search's name is the row's key and is kept in clear: a number typed into it
(``complaint 4915112345678``) would stay readable in ``saved_searches.name`` and outlive the
erasure, which only looked into the (sealed) query.  The console refuses such a name with a 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import Service, make_service

from pbx_recorder.lifecycle.journal import open_catalog

NUMBER = "4915112345678"


@pytest.fixture()
def svc(tmp_path: Path) -> Iterator[Service]:
    service = make_service(tmp_path)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _names(svc: Service) -> list[tuple[str, str]]:
    conn = open_catalog(svc.seeded.db)
    try:
        return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT user_name, name FROM saved_searches")]
    finally:
        conn.close()


@pytest.mark.parametrize("name", [f"complaint {NUMBER}", "cb +49 151 1234 5678", "0151-1234-5678", "x 12345"])
def test_a_name_holding_a_number_is_refused_and_nothing_is_stored(svc: Service, name: str) -> None:
    client, csrf = svc.login("lead-red")
    refused = client.post("/api/searches", json={"name": name, "query": "queue=sales"},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 400, refused.text
    assert "name" in refused.json()["error"] and "5 or more digits" in refused.json()["error"]
    assert _names(svc) == []


def test_a_name_without_a_number_run_is_saved(svc: Service) -> None:
    client, csrf = svc.login("lead-red")
    saved = client.post("/api/searches", json={"name": "complaints 2026 ext 1001", "query": "queue=sales"},
                        headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200, saved.text
    assert _names(svc) == [("lead-red", "complaints 2026 ext 1001")]
