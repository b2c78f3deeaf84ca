"""``/admin/tokens``: roles with ``tokens.manage`` only (403 audited for the others), every
account's tokens listed without a token or its full hash, one ``tokens.list`` row a view, the
page's CSRF token drives its create and revoke calls, a token-made request gets no create form,
both languages, the page CSP."""

from __future__ import annotations

import json
import re

import pytest

from pbx_recorder.service import user_admin
from pbx_recorder.service.roles import may
from pbx_recorder.web.messages_admin import MESSAGES
from tests.peers.authx_support import bearer
from tests.peers.service_support import USERS


@pytest.fixture
def svc(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


def _make(svc, owner: str, role: str, label: str):  # type: ignore[no-untyped-def]
    return user_admin.create_token(svc.ctx.accounts(), owner, role, 30, label, max_days=365, actor="root",
                                   actor_role="host-admin", now=svc.clock.now)


def _csrf(page: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(USERS))
def test_only_token_managers_see_the_page(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    token, record = _make(svc, "alice", "agent", "crm-sync")
    client, _ = svc.login(name)
    answer = client.get("/admin/tokens")
    if may(USERS[name][0], "tokens.manage"):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert f'data-token="{record.id_hash[:16]}"' in answer.text and "crm-sync" in answer.text
        assert token not in answer.text and record.id_hash not in answer.text  # only the listed id
        assert 'href="/admin/tokens"' in answer.text  # the menu links it
        last = svc.audit_rows(name)[-1]
        assert last["action"] == "tokens.list" and json.loads(last["detail"])["page"] == "/admin/tokens"
    else:
        assert answer.status_code == 403
        assert svc.audit_rows(name)[-1]["action"] == "denied:tokens.manage"
        assert 'href="/admin/tokens"' not in client.get("/calls").text


def test_the_pages_csrf_token_creates_and_revokes(svc) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login("root-admin")
    csrf = _csrf(client.get("/admin/tokens").text)
    forged = client.post("/api/tokens", json={"user": "alice", "role": "agent", "days": 7, "label": "x"},
                         headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    asked = {"user": "alice", "role": "agent", "days": 7, "label": "wallboard"}
    made = client.post("/api/tokens", json=asked, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    page = client.get("/admin/tokens").text
    row = re.search(rf'<tr data-token="{token_id}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "wallboard" in row and 'class="js-revoke"' in row and token not in page
    assert client.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf}).status_code == 200
    page = client.get("/admin/tokens").text
    row = re.search(rf'<tr data-token="{token_id}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert MESSAGES["en"]["admin.tokens.revoked"] in row and "js-revoke" not in row
    assert svc.client().get("/api/calls", headers=bearer(token)).status_code == 401
    assert client.get("/static/admin_tokens.js").status_code == 200


def test_a_request_made_with_a_token_sees_the_list_but_no_create_form(svc) -> None:  # type: ignore[no-untyped-def]
    token, record = _make(svc, "root-admin", "admin", "automation")
    answer = svc.client().get("/admin/tokens", headers=bearer(token))
    assert answer.status_code == 200 and f'data-token="{record.id_hash[:16]}"' in answer.text
    assert "js-token-new" not in answer.text
    assert MESSAGES["en"]["admin.tokens.not_with_a_token"] in answer.text
    client, _ = svc.login("root-admin")
    assert "js-token-new" in client.get("/admin/tokens").text


def test_the_page_speaks_the_users_language(svc) -> None:  # type: ignore[no-untyped-def]
    svc.set_lang("root-admin", "zh")
    client, _ = svc.login("root-admin")
    page = client.get("/admin/tokens").text
    assert MESSAGES["zh"]["admin.tokens.title"] in page and MESSAGES["en"]["admin.tokens.title"] not in page
    assert MESSAGES["zh"]["admin.tokens.none"] in page  # no token yet


def test_without_a_session_the_page_is_refused(svc) -> None:  # type: ignore[no-untyped-def]
    assert svc.client().get("/admin/tokens", follow_redirects=False).status_code in (302, 303, 401)
