"""The console's pages over HTTP (in process): the CSRF token a page carries, the login redirect
and its local-only ``next``, error pages that say nothing, the language preference, saved
searches, and the search page going through the API's audit and throttle of number searches."""

from __future__ import annotations

import re

import pytest

from pbx_recorder.service import sessions
from pbx_recorder.web import i18n
from pbx_recorder.web.errors import safe_next
from pbx_recorder.web.render import PAGE_CSP


def _meta_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found
    return found.group(1)


def test_csrf_token_derives_from_the_session_token_and_only_hashes_are_kept(seeded_service) -> None:
    client, csrf = seeded_service.login("alice")
    token = client.cookies.get("pbxr_session")
    assert csrf == sessions.csrf_for(token) and csrf != sessions.csrf_for(token + "x")
    assert _meta_csrf(client.get("/calls").text) == csrf  # the page carries the login answer's token
    conn = seeded_service.ctx.catalog.connection()
    stored = conn.execute("SELECT id_hash, csrf_hash FROM sessions").fetchall()
    assert (sessions.digest(token), sessions.digest(csrf)) in [tuple(r) for r in stored]
    assert not any(token in str(r) or csrf in str(r) for r in stored)
    assert client.post("/api/me/lang", json={"lang": "zh"}).status_code == 403  # no header: refused
    assert client.post("/api/me/lang", json={"lang": "zh"}, headers={"X-CSRF-Token": csrf}).status_code == 200


def test_a_page_without_a_session_redirects_to_login_and_the_api_answers_401(seeded_service) -> None:
    client = seeded_service.client()
    answer = client.get("/calls/c-red-1?unmask=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fcalls%2Fc-red-1%3Funmask%3D1"
    assert client.get("/api/calls", follow_redirects=False).status_code == 401
    login = client.get("/login?next=/calls")
    assert login.headers["content-security-policy"] == PAGE_CSP and 'data-next="/calls"' in login.text
    assert "'unsafe-inline'" not in PAGE_CSP
    api_csp = client.get("/api/session").headers["content-security-policy"]
    assert api_csp == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "",
                                    "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1", "evil"])
def test_next_is_a_local_path_only(target) -> None:  # type: ignore[no-untyped-def]
    assert safe_next(target) == "/"


def test_next_keeps_a_local_path() -> None:
    assert safe_next("/calls?queue=sales&preset=today") == "/calls?queue=sales&preset=today"


def test_out_of_scope_and_absent_are_the_same_404_page_and_audited(seeded_service) -> None:
    client, _ = seeded_service.login("alice")
    other, absent = client.get("/calls/c-blue-2"), client.get("/calls/c-nope")
    assert other.status_code == absent.status_code == 404
    assert other.text.replace("c-blue-2", "X") == absent.text.replace("c-nope", "X") == absent.text
    actions = [(r["action"], r["target"]) for r in seeded_service.audit_rows("alice")]
    assert ("denied:calls.view", "c-blue-2") in actions and ("calls.view.absent", "c-nope") in actions


def test_language_is_kept_per_user(seeded_service) -> None:
    client, csrf = seeded_service.login("qa1")
    assert client.post("/api/me/lang", json={"lang": "xx"}, headers={"X-CSRF-Token": csrf}).status_code == 400
    client.post("/api/me/lang", json={"lang": "zh"}, headers={"X-CSRF-Token": csrf})
    assert "查找通话" in client.get("/calls").text
    other, _ = seeded_service.login("alice")
    assert "Find calls" in other.get("/calls").text


def test_every_message_has_both_languages() -> None:
    table = i18n.catalog()
    assert set(table["en"]) == set(table["zh"]) and len(table["en"]) > 100


def test_saved_searches_belong_to_their_owner_and_keep_no_full_number(seeded_service) -> None:
    client, csrf = seeded_service.login("lead-red")
    h = {"X-CSRF-Token": csrf}
    saved = client.post("/api/searches", json={"name": "n", "query": "caller=%2B8613812345678&queue=sales&"
                                               "after=abc&unmask=1"}, headers=h)
    assert saved.json()["query"] == "queue=sales"
    client.post("/api/searches", json={"name": "last4", "query": "caller=5678"}, headers=h)
    assert [s["name"] for s in client.get("/api/searches").json()["searches"]] == ["last4", "n"]
    other, other_csrf = seeded_service.login("alice")
    assert other.get("/api/searches").json()["searches"] == []
    assert other.delete("/api/searches/n", headers={"X-CSRF-Token": other_csrf}).status_code == 404
    assert client.delete("/api/searches/n", headers=h).status_code == 200
    assert [s["name"] for s in client.get("/api/searches").json()["searches"]] == ["last4"]


def test_the_search_page_audits_and_throttles_number_searches_like_the_api(tmp_path) -> None:
    from tests.peers.service_support import make_service

    svc = make_service(tmp_path, number_searches=2)
    try:
        client, _ = svc.login("alice")
        assert client.get("/calls?caller=%2B8613812345678").status_code == 200
        assert client.get("/api/calls?caller=%2B8613900001111").status_code == 200
        throttled = client.get("/calls?caller=%2B8613700002222")
        assert throttled.status_code == 429 and "retry-after" in throttled.headers
        assert "8613700002222" not in throttled.text
        actions = [r["action"] for r in svc.audit_rows("alice")]
        assert actions.count("calls.search.number") == 2 and "throttled:calls.search.number" in actions
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_sort_oldest_first_in_the_api_and_the_page(seeded_service) -> None:
    client, _ = seeded_service.login("root-admin")
    newest = [c["call_id"] for c in client.get("/api/calls").json()["calls"]]
    oldest = [c["call_id"] for c in client.get("/api/calls?sort=oldest").json()["calls"]]
    assert oldest == newest[::-1] and len(newest) == 4
    assert client.get("/api/calls?sort=random").status_code == 400
    page = client.get("/calls?sort=oldest").text
    assert [page.index(f'data-call-id="{c}"') for c in oldest] == sorted(page.index(f'data-call-id="{c}"')
                                                                        for c in oldest)


def test_unknown_paths_answer_the_same_404_page_or_json(seeded_service) -> None:
    client, _ = seeded_service.login("alice")
    page = client.get("/no/such/page")
    assert page.status_code == 404 and 'id="error-404"' in page.text
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert client.get("/static/../../etc/passwd").status_code == 404
    api = client.get("/api/no-such")
    assert api.status_code == 404 and api.json() == {"error": "not found"}
    assert client.put("/api/calls").status_code == 405


def test_custom_range_to_the_hour_and_presets_filter_the_page(seeded_service) -> None:
    from datetime import datetime

    client, _ = seeded_service.login("root-admin")
    hour = datetime.fromtimestamp(seeded_service.clock.now - 2 * 3600).strftime("%Y-%m-%dT%H:%M")
    page = client.get(f"/calls?from={hour}&to=").text
    assert 'data-call-id="c-red-1"' in page and 'data-call-id="c-red-2"' in page
    assert 'data-call-id="c-blue-1"' not in page
    assert f'value="{hour}"' in page  # the form keeps the filter it ran
    assert 'data-call-id="c-red-1"' in client.get("/calls?preset=today").text
    assert client.get("/calls?preset=tomorrow").status_code == 400
