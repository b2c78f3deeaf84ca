"""Helpers of the TOTP / token / admin / four-eyes tests: a service with a sealing key, TOTP codes
at the service's clock, a client past both login steps."""

from __future__ import annotations

import secrets
from pathlib import Path

import pyotp

from pbx_recorder.service.secret_box import SecretBox
from tests.peers.service_support import PASSWORD, Service, make_service


def service_with_totp(tmp_path: Path, **web: object) -> Service:
    svc = make_service(tmp_path, **web)
    svc.ctx.secret_box = SecretBox(secrets.token_bytes(32))  # type: ignore[attr-defined]
    return svc


def code(secret: str, at: float) -> str:
    return str(pyotp.TOTP(secret).at(int(at)))


def enrol(svc: Service, name: str):  # type: ignore[no-untyped-def]
    """Log ``name`` in, enrol and confirm a second factor: (client, csrf, secret)."""
    client, csrf = svc.login(name)
    started = client.post("/api/me/totp/enrol", headers={"X-CSRF-Token": csrf})
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    done = client.post("/api/me/totp/confirm", json={"code": code(secret, svc.clock.now)},
                       headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    return client, csrf, secret


def password_step(svc: Service, name: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client = svc.client()
    answer = client.post("/api/login", json={"name": name, "password": password})
    return client, answer


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
