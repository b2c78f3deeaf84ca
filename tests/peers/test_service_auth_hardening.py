"""The login and account routes against attacks found in the session-42 review: guesses sent at
once (each is counted before it is checked, so no more than the lockout allows are checked), a
second ``X-Forwarded-For`` line written by the client, an API token making accounts or taking
over an admin, deeply nested JSON, and an unexpected error's 500 (the security headers too)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from pbx_recorder.service import accounts as accounts_module
from pbx_recorder.service import totp as totp_module
from tests.peers.authx_support import bearer, code, enrol, password_step, service_with_totp
from tests.peers.service_support import PASSWORD, make_service

pytestmark = pytest.mark.xdist_group("service")


def _reasons(svc: Any, name: str) -> list[str]:
    return [json.loads(r["detail"]).get("reason", "") for r in svc.audit_rows(name)
            if r["action"] == "login.failed"]


def _clients(svc: Any, name: str) -> set[str]:
    return {json.loads(r["detail"]).get("client") for r in svc.audit_rows(name)
            if r["action"] == "login.failed"}


def _all_at_once(jobs: list[Any]) -> None:
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_passwords_sent_at_once_are_checked_no_more_often_than_the_lockout(tmp_path, monkeypatch) -> None:
    svc = make_service(tmp_path)
    real = accounts_module.Accounts._verify

    def slow(self: Any, digest: str, password: str) -> bool:  # argon2's real cost: guesses in flight
        # (a sleep, not a barrier: on PostgreSQL a request waits for a pooled catalog connection,
        # so not every guess can be inside the check at once)
        time.sleep(0.3)
        return bool(real(self, digest, password))

    monkeypatch.setattr(accounts_module.Accounts, "_verify", slow)
    statuses: list[int] = []

    def guess(i: int) -> Any:
        return lambda: statuses.append(svc.client().post(
            "/api/login", json={"name": "alice", "password": f"wrong password {i:03d}"}).status_code)

    _all_at_once([guess(i) for i in range(12)])
    reasons = _reasons(svc, "alice")
    assert sorted(statuses) == [401] * 12
    # before: the lock was tested before any failure was counted, so all 12 were checked
    assert reasons.count("password") == accounts_module.MAX_FAILURES
    assert reasons.count("locked") == 12 - accounts_module.MAX_FAILURES
    # and the right password now meets the lock
    assert svc.client().post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 401
    assert _reasons(svc, "alice")[-1] == "locked"


def test_a_right_password_beside_guesses_that_lock_the_account_is_refused(tmp_path, monkeypatch) -> None:
    svc = make_service(tmp_path)
    real = accounts_module.Accounts._verify
    go = threading.Event()

    def held(self: Any, digest: str, password: str) -> bool:
        if password == PASSWORD:
            go.wait(10)  # the right password is checked while the wrong ones lock the account
        return bool(real(self, digest, password))

    monkeypatch.setattr(accounts_module.Accounts, "_verify", held)
    got: dict[str, int] = {}
    right = threading.Thread(target=lambda: got.update(right=svc.client().post(
        "/api/login", json={"name": "alice", "password": PASSWORD}).status_code))
    right.start()
    time.sleep(0.3)
    for i in range(accounts_module.MAX_FAILURES):
        wrong = svc.client().post("/api/login", json={"name": "alice", "password": f"wrong {i}"})
        assert wrong.status_code == 401
    go.set()
    right.join(30)
    assert got["right"] == 401  # before: the success cleared the lock the guesses set
    assert "login" not in [r["action"] for r in svc.audit_rows("alice")]


def test_totp_codes_sent_at_once_are_checked_no_more_often_than_the_lockout(tmp_path, monkeypatch) -> None:
    svc = service_with_totp(tmp_path, login_failures_per_ip=10_000)
    _, _, secret = enrol(svc, "alice")
    svc.clock.now += 60
    client, answer = password_step(svc, "alice")
    cookie, csrf = client.cookies["pbxr_session"], answer.json()["csrf_token"]
    real = totp_module.TotpStore.check

    def slow(self: Any, *args: Any, **kwargs: Any) -> bool:
        time.sleep(0.3)  # every guess in flight while the first are checked
        return bool(real(self, *args, **kwargs))

    monkeypatch.setattr(totp_module.TotpStore, "check", slow)
    right = code(secret, svc.clock.now)
    start = threading.Barrier(30, timeout=10)
    statuses: list[int] = []

    def guess(value: str) -> Any:
        def run() -> None:
            c = svc.client()
            c.cookies.set("pbxr_session", cookie)
            start.wait()
            statuses.append(c.post("/api/login/totp", json={"code": value},
                                   headers={"X-CSRF-Token": csrf}).status_code)
        return run

    _all_at_once([guess(f"{(int(right) + 1 + i) % 1_000_000:06d}") for i in range(30)])
    assert sorted(statuses) == [401] * 30
    assert _reasons(svc, "alice").count("totp") <= accounts_module.MAX_FAILURES  # before: all 30
    assert "login.locked" in [r["action"] for r in svc.audit_rows("alice")]


def test_a_client_written_forwarded_for_line_is_not_its_address(tmp_path) -> None:
    svc = make_service(tmp_path, trusted_proxies=("192.0.2.7",))
    statuses = []
    for i in range(30):  # the proxy adds its own line after the client's (HAProxy's option forwardfor)
        statuses.append(svc.client().post(
            "/api/login", json={"name": "alice", "password": "wrong password!!"},
            headers=[("X-Forwarded-For", f"10.66.{i}.1"), ("X-Forwarded-For", "203.0.113.9")]).status_code)
    assert 429 in statuses  # one address (the proxy's hop), so its login limit holds
    assert _clients(svc, "alice") == {"203.0.113.9"}


def test_a_forwarded_for_hop_that_is_no_address_falls_back_to_the_peer(tmp_path) -> None:
    svc = make_service(tmp_path, trusted_proxies=("192.0.2.7",))
    svc.client().post("/api/login", json={"name": "alice", "password": "wrong password!!"},
                      headers={"X-Forwarded-For": "<script>, not-an-address"})
    assert _clients(svc, "alice") == {"192.0.2.7"}


@pytest.mark.parametrize(("path", "body"), [
    ("/api/users", {"name": "persist", "role": "admin", "password": "long enough password", "teams": []}),
    ("/api/users/root-admin/password", {"password": "attacker chosen pw"}),
    ("/api/users/alice/role", {"role": "supervisor"}),
    ("/api/users/root-admin/reset-totp", {}),
])
def test_an_api_token_cannot_make_accounts_or_take_one_over(tmp_path, path, body) -> None:
    svc = make_service(tmp_path)
    admin, csrf = svc.login("root-admin")
    made = admin.post("/api/tokens", json={"user": "root-admin", "role": "admin", "days": 1, "label": "ci"},
                      headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    answer = svc.client().post(path, json=body, headers=bearer(made.json()["token"]))
    assert answer.status_code == 403, answer.text
    assert svc.client().post("/api/login", json={"name": "persist", "password": "long enough password"}
                             ).status_code == 401
    owner = svc.client().post("/api/login", json={"name": "root-admin", "password": PASSWORD})
    assert owner.status_code == 200
    denied = [r for r in svc.audit_rows("root-admin") if r["action"].startswith("denied:users.")]
    assert denied and json.loads(denied[-1]["detail"])["reason"] == "bearer"
    # the same change by the admin logged in is allowed (the refusal is about the token)
    if path == "/api/users/alice/role":
        assert admin.post(path, json=body, headers={"X-CSRF-Token": csrf}).status_code == 200


def test_deeply_nested_json_is_a_400_with_the_security_headers(tmp_path) -> None:
    from starlette.testclient import TestClient

    svc = make_service(tmp_path)
    anonymous = TestClient(svc.client().app, raise_server_exceptions=False, client=("192.0.2.7", 1))
    answer = anonymous.post("/api/login", content=b"[" * 3000, headers={"content-type": "application/json"})
    assert answer.status_code == 400  # before: 500 (RecursionError), without the headers
    assert answer.headers["x-frame-options"] == "DENY"
    client, csrf = svc.login("root-admin")
    nested = client.post("/api/qa-assignments", content=b"[" * 10_000,
                         headers={"content-type": "application/json", "X-CSRF-Token": csrf})
    assert nested.status_code == 400, nested.text


def test_an_unexpected_error_answers_500_with_the_security_headers(tmp_path) -> None:
    from starlette.routing import Route
    from starlette.testclient import TestClient

    svc = make_service(tmp_path)
    app = svc.client().app

    def boom(request: Any) -> Any:
        raise RuntimeError("a bug")

    app.router.routes.append(Route("/api/boom", boom))
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set("pbxr_session", "x")  # past the credential gate (which wants one presented)
    answer = client.get("/api/boom")
    assert answer.status_code == 500
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["cache-control"] == "no-store"
    assert "a bug" not in answer.text


@pytest.mark.parametrize(("hop", "seen"), [("203.0.113.9:51234", "203.0.113.9"),
                                           ("[2001:db8::1]:443", "2001:db8::1"),
                                           ("2001:db8::2", "2001:db8::2")])
def test_a_forwarded_for_hop_with_a_port_is_its_address(tmp_path, hop, seen) -> None:
    """Some proxies append the client's port: the address is still the client's, not the proxy's."""
    svc = make_service(tmp_path, trusted_proxies=("192.0.2.7",))
    svc.client().post("/api/login", json={"name": "alice", "password": "wrong password!!"},
                      headers={"X-Forwarded-For": hop})
    assert _clients(svc, "alice") == {seen}


def test_a_disabled_accounts_attempts_do_not_count_against_it(tmp_path) -> None:
    from pbx_recorder.lifecycle.journal import open_catalog

    svc = make_service(tmp_path)
    conn = open_catalog(svc.seeded.db)
    svc.accounts(conn).disable("alice", actor="root-admin", actor_role="admin", now=svc.clock.now)
    conn.close()
    for _ in range(3):
        svc.client().post("/api/login", json={"name": "alice", "password": PASSWORD})
    conn = open_catalog(svc.seeded.db)
    failed = conn.execute("SELECT failed_logins FROM users WHERE name = 'alice'").fetchone()[0]
    conn.close()
    assert _reasons(svc, "alice")[-3:] == ["disabled"] * 3 and failed == 0
