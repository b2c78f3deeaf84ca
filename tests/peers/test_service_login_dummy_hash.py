"""An unknown user name costs the same hash work as a known one: one verify, never a hash made for
the request (the dummy hash is made once per process and hasher), whichever ``Accounts`` object
(one per request in the service) serves the login."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from pbx_recorder.errors import LoginRefused
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.service.accounts import Accounts, dummy_hash
from pbx_recorder.service.app import build_app
from tests.peers.service_support import NOW, PASSWORD, seed


class SpyHasher(PasswordHasher):
    """The tests' cheap argon2id, counting its hash() and verify() calls."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hashes = self.verifies = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashes += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 (argon2's name)
        self.verifies += 1
        return super().verify(hash, password)


def _calls(spy: SpyHasher, conn: Any, name: str) -> tuple[int, int]:
    """(hash calls, verify calls) of one wrong-password login of ``name`` through a fresh
    ``Accounts``, as the service makes one per request."""
    spy.hashes = spy.verifies = 0
    with pytest.raises(LoginRefused):
        Accounts(conn, hasher=spy, max_failures=10**6).authenticate(name, "not the password!", client="x",
                                                                       now=NOW)
    return spy.hashes, spy.verifies


def test_an_unknown_name_costs_one_verify_and_no_hash_after_the_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = open_catalog(seed(tmp_path).db)
    try:
        spy = SpyHasher()
        _calls(spy, conn, "nobody-0")  # the first one in the process may make the dummy hash
        for n in range(3):
            assert _calls(spy, conn, f"nobody-{n + 1}") == (0, 1)
            assert _calls(spy, conn, "alice") == (0, 1)  # a known name: the same work
    finally:
        conn.close()


def test_the_app_makes_the_dummy_hash_at_start_once_per_hasher_parameters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.peers.service_support import make_service

    svc = make_service(tmp_path)
    try:
        spy = SpyHasher()
        svc.ctx.hasher = spy  # type: ignore[attr-defined]
        build_app(svc.ctx)  # type: ignore[arg-type]
        made = spy.hashes
        build_app(svc.ctx)  # type: ignore[arg-type]
        assert spy.hashes == made <= 1
        assert dummy_hash(spy) == dummy_hash(SpyHasher())  # the same parameters: the same hash
        other = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
        assert other.verify(dummy_hash(other), "not a password of anyone")
        assert dummy_hash(other) != dummy_hash(spy)
        spy.hashes = 0
        client = svc.client()
        for name in ("nobody", "alice"):
            answer = client.post("/api/login", json={"name": name, "password": PASSWORD + "x"})
            assert answer.status_code == 401
        assert spy.hashes == 0
    finally:
        svc.ctx.catalog.close()  # type: ignore[attr-defined]
