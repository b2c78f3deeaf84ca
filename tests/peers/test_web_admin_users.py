"""``/admin/users``: admins only (403 audited for the others), the page's CSRF token works for
its forms' API calls, no hash or secret in the page, both languages, the page CSP."""

from __future__ import annotations

import re

import pytest

from pbx_recorder.web.messages_admin import MESSAGES
from tests.peers.service_support import USERS


@pytest.fixture
def svc(seeded_service):  # type: ignore[no-untyped-def]
    return seeded_service


@pytest.mark.parametrize("name", sorted(USERS))
def test_only_admins_see_the_page(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login(name)
    answer = client.get("/admin/users")
    if USERS[name][0] == "admin":
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert all(f'data-user="{u}"' in answer.text for u in USERS)
        assert "argon2" not in answer.text and "<script>" not in answer.text.replace(
            '<script src="/static/', "")
    else:
        assert answer.status_code == 403
        assert svc.audit_rows(name)[-1]["action"] == "denied:users.manage"


def test_the_pages_csrf_token_drives_its_forms(svc) -> None:  # type: ignore[no-untyped-def]
    client, _ = svc.login("root-admin")
    page = client.get("/admin/users").text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/api/users/ops/disable", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.post("/api/users/qa1/disable", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.get("/static/admin_users.js").status_code == 200


def test_the_page_speaks_the_users_language(svc) -> None:  # type: ignore[no-untyped-def]
    assert set(MESSAGES["en"]) == set(MESSAGES["zh"])
    svc.set_lang("root-admin", "zh")
    client, _ = svc.login("root-admin")
    page = client.get("/admin/users").text
    assert MESSAGES["zh"]["admin.users.add"] in page and MESSAGES["en"]["admin.users.add"] not in page


def test_without_a_session_the_page_is_refused(svc) -> None:  # type: ignore[no-untyped-def]
    assert svc.client().get("/admin/users", follow_redirects=False).status_code in (302, 303, 401)
