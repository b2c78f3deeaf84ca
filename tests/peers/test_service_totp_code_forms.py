"""A TOTP code in any wrong form (full-width digits, too short, too long, letters) is a wrong code:
refused, counted toward the lockout and the address limit, and audited; never a server error."""

from __future__ import annotations

import pytest

from pbx_recorder.service import login_limit
from pbx_recorder.service.totp import matching_step
from tests.peers.authx_support import enrol, password_step

FORMS = ("１２３４５６", "١٢٣٤٥٦", "12345", "1234567", "12345678901234", "12a456", "²³⁴⁵⁶⁷")


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    from tests.peers.authx_support import service_with_totp

    service = service_with_totp(tmp_path)
    yield service
    service.ctx.catalog.close()


@pytest.mark.parametrize("given", FORMS)
def test_a_malformed_code_never_matches(given: str) -> None:
    assert matching_step("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", given, 1_800_000_000.0, 0) is None


def test_an_ascii_code_with_spaces_still_matches() -> None:
    import pyotp

    secret, now = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 1_800_000_000.0
    right = pyotp.TOTP(secret).at(int(now))
    assert matching_step(secret, f" {right[:3]} {right[3:]} ", now, 0) == int(now) // 30


def _failures(svc, name: str) -> int:  # type: ignore[no-untyped-def]
    conn = svc.ctx.catalog.connection()
    return int(conn.execute("SELECT failed_logins FROM users WHERE name = ?", (name,)).fetchone()[0])


def _client_failures(svc) -> int:  # type: ignore[no-untyped-def]
    """What the per-address limit counts (an attempt counted before its code is checked, a
    confirmation's failure after it)."""
    conn = svc.ctx.catalog.connection()
    clients = [r[0] for r in conn.execute("SELECT DISTINCT target FROM audit_log WHERE action IN (?, ?)",
                                          (login_limit.ACTION, login_limit.ATTEMPT))]
    return sum(login_limit.failures(conn, client, 0.0) for client in clients)


def test_a_full_width_login_code_is_counted_and_audited(svc) -> None:  # type: ignore[no-untyped-def]
    enrol(svc, "alice")
    svc.clock.now += 60
    client, answer = password_step(svc, "alice")
    hdr = {"X-CSRF-Token": answer.json()["csrf_token"]}
    before, by_address = _failures(svc, "alice"), _client_failures(svc)
    refused = client.post("/api/login/totp", json={"code": "１２３４５６"}, headers=hdr)
    assert refused.status_code == 401 and refused.json() == {"error": "wrong code"}
    assert _failures(svc, "alice") == before + 1 and _client_failures(svc) == by_address + 1
    last = [r for r in svc.audit_rows("alice") if r["action"] == "login.failed"][-1]
    assert '"totp"' in last["detail"]


def test_a_full_width_confirmation_code_is_counted_and_audited(svc) -> None:  # type: ignore[no-untyped-def]
    client, csrf = svc.login("alice")
    hdr = {"X-CSRF-Token": csrf}
    assert client.post("/api/me/totp/enrol", headers=hdr).status_code == 200
    before = _failures(svc, "alice")
    refused = client.post("/api/me/totp/confirm", json={"code": "１２３４５６"}, headers=hdr)
    assert refused.status_code == 400
    assert _failures(svc, "alice") == before + 1
    assert "totp.confirm.failed" in [r["action"] for r in svc.audit_rows("alice")]
