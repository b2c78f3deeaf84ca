"""The per-client-address login limit: failures of any account from one address, counted from the
audit log (so across restarts and service instances), 429 with Retry-After, audited."""

from __future__ import annotations

from pbx_recorder.catalog import Catalog
from pbx_recorder.config.model import WebConfig
from pbx_recorder.service.app import build_app
from pbx_recorder.service.context import ServiceContext
from tests.peers.authx_support import code, enrol, password_step, service_with_totp
from tests.peers.service_support import CHEAP, PASSWORD, USERS, make_service


def _fail(client, name: str = "alice") -> int:  # type: ignore[no-untyped-def]
    return client.post("/api/login", json={"name": name, "password": "wrong password!!"}).status_code


def test_spraying_from_one_address_is_stopped_and_audited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    svc = make_service(tmp_path, login_failures_per_ip=6, login_ip_window_s=600)
    try:
        client = svc.client()
        names = sorted(USERS)  # one guess per account: no account reaches its lockout
        assert [_fail(client, names[n % len(names)]) for n in range(6)] == [401] * 6
        refused = client.post("/api/login", json={"name": "alice", "password": PASSWORD})
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 600
        last = svc.audit_rows("client:192.0.2.7")[-1]
        assert last["action"] == "throttled:login" and last["target"] == "alice"
        # another address is not affected
        from starlette.testclient import TestClient

        other = TestClient(build_app(svc.ctx), client=("198.51.100.9", 4000))  # type: ignore[arg-type]
        assert other.post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 200
        # the window passes
        svc.clock.now += 601
        assert client.post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 200
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_the_count_survives_a_restart_of_the_service(tmp_path) -> None:  # type: ignore[no-untyped-def]
    svc = make_service(tmp_path, login_failures_per_ip=3)
    try:
        for _ in range(3):
            _fail(svc.client())
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
    from starlette.testclient import TestClient

    ctx = ServiceContext(Catalog(svc.seeded.db, clock=svc.clock), {"hot": svc.seeded.tier},
                         web=WebConfig(login_failures_per_ip=3), hasher=CHEAP, clock=svc.clock)
    try:
        fresh = TestClient(build_app(ctx), client=("192.0.2.7", 50001))
        assert fresh.post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 429
    finally:
        ctx.catalog.close()


def test_wrong_totp_codes_count_toward_the_address_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    svc = service_with_totp(tmp_path, login_failures_per_ip=3)
    try:
        _, _, secret = enrol(svc, "alice")
        svc.clock.now += 60
        client, answer = password_step(svc, "alice")
        hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
        for guess in ("000000", "111111", "222222"):
            client.post("/api/login/totp", json={"code": guess}, headers=hdr)
        right = client.post("/api/login/totp", json={"code": code(secret, svc.clock.now)}, headers=hdr)
        assert right.status_code == 429
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_an_ipv6_host_changing_its_address_within_its_64_is_counted_as_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    svc = make_service(tmp_path, login_failures_per_ip=4)
    try:
        app = build_app(svc.ctx)
        names = sorted(USERS)
        for n in range(4):  # a new address of the same /64 for every try
            client = TestClient(app, client=(f"2001:db8:1:2::{n + 1:x}", 4000))  # type: ignore[arg-type]
            assert _fail(client, names[n % len(names)]) == 401
        again = TestClient(app, client=("2001:db8:1:2:ffff::9", 4000))  # type: ignore[arg-type]
        assert again.post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 429
        assert svc.audit_rows("client:2001:db8:1:2::/64")[-1]["action"] == "throttled:login"
        other_net = TestClient(app, client=("2001:db8:1:3::1", 4000))  # type: ignore[arg-type]
        assert other_net.post("/api/login", json={"name": "alice", "password": PASSWORD}).status_code == 200
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]


def test_addresses_are_counted_by_host_for_ipv4_and_by_64_for_ipv6() -> None:
    from pbx_recorder.service.login_limit import actor_of_client

    assert actor_of_client("192.0.2.7") == "client:192.0.2.7"
    assert actor_of_client("2001:db8::1") == actor_of_client("2001:db8::ffff:1") == "client:2001:db8::/64"
    assert actor_of_client("::ffff:192.0.2.7") == "client:192.0.2.7"  # an IPv4 client on a v6 socket
    assert actor_of_client("testclient") == "client:testclient"


def test_logins_sent_at_once_get_no_more_tries_than_the_limit(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each attempt is counted before its password is checked: eight wrong logins sent at once
    from one address with the limit at 3 get three 401s and five 429s (before, every one of them
    passed the test made before any had failed, and all eight were checked)."""
    import threading
    import time

    from pbx_recorder.service.accounts import Accounts

    slow = Accounts.authenticate

    def authenticate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # a real password hash takes this long; the others arrive meanwhile
        return slow(self, *args, **kwargs)

    monkeypatch.setattr(Accounts, "authenticate", authenticate)
    svc = make_service(tmp_path, login_failures_per_ip=3)
    try:
        answers: list[int] = []
        start = threading.Barrier(8)

        def one(n: int) -> None:
            client = svc.client()
            start.wait()
            answers.append(_fail(client, sorted(USERS)[n % len(USERS)]))

        threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(answers) == [401] * 3 + [429] * 5
        actions = [r["action"] for r in svc.audit_rows("client:192.0.2.7")]
        assert actions.count("login.attempt.client") == 3 and actions.count("throttled:login") == 5
        # a right password from the address now waits too; after the window it passes and is noted
        right = {"name": "alice", "password": PASSWORD}
        assert svc.client().post("/api/login", json=right).status_code == 429
        svc.clock.now += 601
        assert svc.client().post("/api/login", json=right).status_code == 200
        assert [r["action"] for r in svc.audit_rows("client:192.0.2.7")][-2:] == ["login.attempt.client",
                                                                                   "login.passed.client"]
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
