"""Every route of the service, walked from the application itself (a route added later is covered
without editing this test):

* without a session, only the login page, the login call and the static files answer; every other
  route answers 401 (``/api/...``) or a redirect to the login page (a console page);
* a state-changing request with a session but without the CSRF token is refused (403), for every
  role, and the refusal is audited;
* every role, on every route, with ids inside and outside its scope, gets an answer from the
  expected set and never a server error, and never a 200 from a route whose verb it lacks.

The per-endpoint matrices (allowed / 403 / 404 out of scope) are in the ``test_service_*`` files
of each area; this test is the net under them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Route

from tests.peers.disposal_support import attach_config
from tests.peers.service_support import USERS

PUBLIC = {"/login", "/api/login", "/api/login/totp"}  # /api/login/totp needs the pending session
SAFE = {"GET", "HEAD"}
#: what a path parameter is filled with: an id in the seeded catalog and one that does not exist
VALUES = {"call_id": ("c-red-1", "c-blue-1", "no-such-call"),
          "recording_id": ("r-c-red-1", "r-c-blue-1", "nope"),
          "mark_id": ("1", "999"), "name": ("alice", "nobody"), "token_id": ("1", "999"),
          "team": ("red",), "grant_id": ("1", "999"), "report_id": ("1", "999"),
          "schedule_id": ("1", "999"), "job_id": ("0123abcd", "nope"),
          "deletion_id": ("DR-none",), "hold_id": ("H-none",), "erasure_id": ("ER-none",),
          "reviewer": ("qa1", "nobody"), "tag": ("vip", "nope"), "scorecard_id": ("1", "999"),
          "review_id": ("1", "999")}
ANSWERS = {200, 201, 204, 302, 303, 400, 401, 403, 404, 405, 409, 413, 415, 416, 422, 429}


def _routes(app) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path


def _paths(template: str) -> list[str]:
    names = re.findall(r"{(\w+)}", template)
    paths = [template]
    for name in names:
        paths = [p.replace("{" + name + "}", v) for p in paths for v in VALUES[name]]
    return paths


def test_without_a_session_nothing_but_the_login_answers(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client = seeded_service.client()
    routes = list(_routes(client.app))
    assert len(routes) > 40  # the walk sees the whole application
    for method, template in routes:
        for path in _paths(template):
            answer = client.request(method, path, follow_redirects=False, json={})
            if template in PUBLIC:
                assert answer.status_code < 500, (method, path)
                continue
            if path.startswith("/api/"):
                assert answer.status_code == 401, (method, path, answer.status_code)
            else:
                assert answer.status_code in (302, 303, 307), (method, path, answer.status_code)
                assert answer.headers["location"].startswith("/login"), (method, path)


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_role_on_every_route_gets_a_clean_answer(seeded_service, user: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    attach_config(seeded_service, tmp_path)  # the recorder's config: the disposal routes run the lifecycle
    client, csrf = seeded_service.login(user)
    for method, template in _routes(client.app):
        if template in ("/api/logout",) or template in PUBLIC:
            continue  # logging out ends the session the walk uses; login is tested on its own
        for path in _paths(template):
            if method not in SAFE:
                bare = client.request(method, path, json={}, follow_redirects=False)
                assert bare.status_code in (403, 404, 405), (user, method, path, bare.status_code)
            answer = client.request(method, path, json={}, headers={"X-CSRF-Token": csrf},
                                    follow_redirects=False)
            assert answer.status_code in ANSWERS, (user, method, path, answer.status_code, answer.text[:200])
    denied_csrf = [r for r in seeded_service.audit_rows(user) if r["action"] == "denied:csrf"]
    assert denied_csrf  # the refusals without the token were audited
