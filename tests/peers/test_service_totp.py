"""TOTP second factor: enrolment, the two-step login, a code accepted once within +/-1 step,
wrong codes counted toward the lockout, required roles, the secret sealed in the catalog."""

from __future__ import annotations

import pytest

from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service import user_admin
from pbx_recorder.service.accounts import MAX_FAILURES
from pbx_recorder.service.secret_box import SecretBox
from tests.peers.authx_support import bearer, code, enrol, password_step, service_with_totp
from tests.peers.service_support import USERS


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    service = service_with_totp(tmp_path)
    yield service
    service.ctx.catalog.close()


def _stored(svc, name: str) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    conn = open_catalog(svc.seeded.db)
    try:
        row = conn.execute("SELECT totp_secret, totp_last_step FROM users WHERE name = ?", (name,)).fetchone()
        return str(row[0]), int(row[1])
    finally:
        conn.close()


def test_two_step_login_and_the_pending_session_can_do_nothing_else(svc) -> None:  # type: ignore[no-untyped-def]
    _, _, secret = enrol(svc, "alice")
    svc.clock.now += 60
    client, answer = password_step(svc, "alice")
    assert answer.status_code == 200 and answer.json()["stage"] == "totp"
    csrf = answer.json()["csrf_token"]
    assert "login.password" in [r["action"] for r in svc.audit_rows("alice")][-1:]
    for path in ("/api/calls", "/api/session", "/api/calls/c-red-1", "/api/recordings/r-c-red-1/audio"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/me/totp/enrol", headers={"X-CSRF-Token": csrf}).status_code == 401
    pending_cookie = dict(client.cookies)
    done = client.post("/api/login/totp", json={"code": code(secret, svc.clock.now)},
                       headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["stage"] == "ok"
    assert client.get("/api/calls").status_code == 200
    last_login = [r for r in svc.audit_rows("alice") if r["action"] == "login"][-1]
    assert '"factor":"totp"' in last_login["detail"]
    stale = svc.client()
    stale.cookies.update(pending_cookie)  # the pending session ended with the second step
    assert stale.get("/api/calls").status_code == 401


def test_a_code_is_accepted_once_and_within_one_step(svc) -> None:  # type: ignore[no-untyped-def]
    _, _, secret = enrol(svc, "alice")
    svc.clock.now += 90
    used = code(secret, svc.clock.now - 30)  # the previous step: accepted
    client, answer = password_step(svc, "alice")
    hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
    assert client.post("/api/login/totp", json={"code": used}, headers=hdr).status_code == 200
    client, answer = password_step(svc, "alice")  # the same code again: refused (replay)
    hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
    assert client.post("/api/login/totp", json={"code": used}, headers=hdr).status_code == 401
    too_old = code(secret, svc.clock.now - 60)
    assert client.post("/api/login/totp", json={"code": too_old}, headers=hdr).status_code == 401
    too_new = code(secret, svc.clock.now + 60)
    assert client.post("/api/login/totp", json={"code": too_new}, headers=hdr).status_code == 401
    assert client.post("/api/login/totp", json={"code": code(secret, svc.clock.now + 30)},
                       headers=hdr).status_code == 200
    failed = [r for r in svc.audit_rows("alice") if r["action"] == "login.failed"]
    assert len(failed) == 3 and all('"totp"' in r["detail"] and "192.0.2.7" in r["detail"] for r in failed)


def test_guessing_codes_locks_the_account_and_a_right_password_does_not_reset_the_count(svc) -> None:  # type: ignore[no-untyped-def]
    _, _, secret = enrol(svc, "alice")
    svc.clock.now += 60
    client, answer = password_step(svc, "alice")
    hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
    for n in range(MAX_FAILURES - 1):
        assert client.post("/api/login/totp", json={"code": f"{n:06d}"}, headers=hdr).status_code == 401
    client, answer = password_step(svc, "alice")  # the password again: the count stays
    hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
    assert client.post("/api/login/totp", json={"code": "999999"}, headers=hdr).status_code == 401
    assert "login.locked" in [r["action"] for r in svc.audit_rows("alice")]
    # locked: the pending session is gone and even the right password and code are refused
    right = {"code": code(secret, svc.clock.now)}
    assert client.post("/api/login/totp", json=right, headers=hdr).status_code == 401
    _, again = password_step(svc, "alice")
    assert again.status_code == 401


def test_required_roles_must_enrol_before_anything_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    svc = service_with_totp(tmp_path, totp_required_roles=("admin", "auditor"))
    try:
        client, answer = password_step(svc, "root-admin")
        assert answer.json()["stage"] == "enrol"
        hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
        assert client.get("/api/calls").status_code == 401
        secret = client.post("/api/me/totp/enrol", headers=hdr).json()["secret"]
        first = {"code": code(secret, svc.clock.now)}
        confirmed = client.post("/api/me/totp/confirm", json=first, headers=hdr)
        assert confirmed.status_code == 200 and confirmed.json()["stage"] == "ok"
        assert client.get("/api/calls").status_code == 200
        _, agent = password_step(svc, "alice")  # optional for the other roles
        assert agent.json()["stage"] == "ok"
    finally:
        svc.ctx.catalog.close()


def test_the_secret_is_sealed_in_the_catalog_and_bound_to_its_user(svc) -> None:  # type: ignore[no-untyped-def]
    _, _, secret = enrol(svc, "alice")
    stored, step = _stored(svc, "alice")
    assert stored.startswith("v1.") and secret not in stored and step > 0
    assert svc.ctx.secret_box.open(stored, "alice") == secret
    with pytest.raises(CryptoError):
        svc.ctx.secret_box.open(stored, "lead-red")  # moved onto another account: does not open


def test_an_enrolled_factor_is_not_replaced_by_the_user_and_reset_by_an_admin(svc, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, csrf, _ = enrol(svc, "alice")
    again = client.post("/api/me/totp/enrol", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409 and svc.audit_rows("alice")[-1]["action"] == "denied:totp.enrol"
    user_admin.reset_totp(svc.ctx.accounts(), "alice", actor="root-admin", actor_role="admin",
                          now=svc.clock.now)
    assert _stored(svc, "alice")[0] == ""
    assert client.get("/api/calls").status_code == 401  # the reset ended alice's sessions
    _, answer = password_step(svc, "alice")
    assert answer.json()["stage"] == "ok"


def test_wrong_confirmation_code_is_refused_and_counted(svc) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login("alice")
    client.post("/api/me/totp/enrol", headers={"X-CSRF-Token": csrf})
    answer = client.post("/api/me/totp/confirm", json={"code": "000000"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 400
    assert _stored(svc, "alice")[0].startswith("pending:")
    assert "totp.confirm.failed" in [r["action"] for r in svc.audit_rows("alice")]
    assert client.post("/api/me/totp/confirm", json={"code": "000000"}).status_code == 403  # CSRF


def test_without_a_sealing_key_enrolment_answers_409(seeded_service) -> None:  # type: ignore[no-untyped-def]
    client, csrf = seeded_service.login("alice")
    assert client.post("/api/me/totp/enrol", headers={"X-CSRF-Token": csrf}).status_code == 409


def test_key_file_is_created_owner_only_and_never_overwritten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.service.secret_box import create_key_file

    path = create_key_file(tmp_path / "keys" / "web-secret.key")
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == 32
    with pytest.raises(CryptoError):
        create_key_file(path)
    box = SecretBox.from_file(path)
    assert box.open(box.seal("s", "u"), "u") == "s"
    path.chmod(0o644)
    with pytest.raises(CryptoError):
        SecretBox.from_file(path)


def test_config_names_the_key_of_an_unknown_required_role(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pbx_recorder.config import load_config
    from pbx_recorder.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("web:\n  totp_required_roles: [admin, wizard]\n")
    with pytest.raises(ConfigError, match=r"web\.totp_required_roles\[1\]"):
        load_config(str(cfg))
    cfg.write_text("web:\n  totp_required_roles: [admin, auditor]\n")
    with pytest.raises(ConfigError, match=r"web\.secret_key_file: is required"):
        load_config(str(cfg))
    cfg.write_text(f"web:\n  totp_required_roles: [admin, auditor]\n  secret_key_file: {tmp_path}/k\n")
    assert load_config(str(cfg)).web.totp_required_roles == ("admin", "auditor")


@pytest.mark.parametrize("name", sorted(USERS))
def test_every_role_may_enrol_but_not_with_a_token(svc, name: str) -> None:  # type: ignore[no-untyped-def]
    _, _, secret = enrol(svc, name)
    assert _stored(svc, name)[0].startswith("v1.") and svc.audit_rows(name)[-1]["action"] == "totp.enrol"
    token, _ = user_admin.create_token(svc.ctx.accounts(), name, USERS[name][0], 1, "bot", max_days=365,
                                       actor="root", actor_role="host-admin", now=svc.clock.now)
    client = svc.client()
    assert client.post("/api/me/totp/enrol", headers=bearer(token)).status_code == 403
    assert client.post("/api/login/totp", json={"code": code(secret, svc.clock.now + 30)},
                       headers=bearer(token)).status_code == 409
