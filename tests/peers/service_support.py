"""Shared pieces of the operator-service tests: a cheap argon2 hasher, a seeded catalog with the
calls of two teams and their recordings on a local tier, and accounts of every role."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from pbx_recorder import audit_key
from pbx_recorder.catalog import Catalog
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.service import access_seal
from pbx_recorder.service.access_seal import AccessSeal
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.service.secret_box import create_key_file, read_key
from storage.local import LocalTier

NOW = 1_800_000_000.0
PASSWORD = "correct horse battery"
#: argon2id with the smallest cost: the tests check the logic, not the cost
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

#: (call id, agent, caller): team red = alice, bob; team blue = carol
CALLS = (
    ("c-red-1", "alice", "+8613812345678"),
    ("c-red-2", "bob", "+8613900001111"),
    ("c-blue-1", "carol", "+8613700002222"),
    ("c-blue-2", "carol", "+8613812345678"),
)
#: user -> (role, teams)
USERS = {
    "root-admin": ("admin", ()),
    "lead-red": ("supervisor", ("red",)),
    "qa1": ("qa", ()),
    "alice": ("agent", ()),
    "comp": ("auditor", ()),
    "counsel": ("legal", ()),
    "ops": ("it", ()),
}


@dataclass
class Seeded:
    db: Path
    tier: LocalTier
    audio: dict[str, bytes]  # recording id -> audio bytes


def seed(tmp_path: Path, seal: AccessSeal | None = None) -> Seeded:
    """The catalog of every service test; ``seal``: the access rows' seal its accounts are written
    with (the service of :func:`make_service` has one, as a service with ``web.secret_key_file``)."""
    db = tmp_path / "catalog.db"
    catalog = Catalog(db, clock=lambda: NOW)
    tier = LocalTier("hot", tmp_path / "hot")
    audio: dict[str, bytes] = {}
    for n, (call_id, agent, caller) in enumerate(CALLS):
        catalog.upsert_call({"call_id": call_id, "agent": agent, "caller_num": caller, "callee_num": "8001",
                             "caller_name": "<script>alert(1)</script>", "status": "answered",
                             "started_at": NOW - 3600 * (n + 1), "queue": "sales", "tags": ["vip"]})
        rid = f"r-{call_id}"
        data = bytes(range(256)) * 40 + call_id.encode()
        key = f"2027/01/{call_id}/{rid}.wav"
        sha = hashlib.sha256(data).hexdigest()
        tier.put(key, io.BytesIO(data), sha256=sha)
        catalog.upsert_recording({"recording_id": rid, "call_id": call_id, "state": "stored",
                                  "size": len(data), "sha256": sha, "tier": "hot", "storage_key": key,
                                  "format": "wav", "created_at": NOW})
        audio[rid] = data
    catalog.close()
    conn = open_catalog(db)
    accounts = Accounts(conn, hasher=CHEAP, seal=seal)
    for name, (role, teams) in USERS.items():
        accounts.add(name, role, PASSWORD, teams=teams, actor="root", actor_role="host-admin", now=NOW)
    accounts.set_team_agents("red", ["alice", "bob"], actor="root", actor_role="host-admin", now=NOW)
    accounts.set_team_agents("blue", ["carol"], actor="root", actor_role="host-admin", now=NOW)
    accounts.assign_review("c-blue-1", "qa1", actor="root-admin", actor_role="admin", now=NOW)
    conn.close()
    return Seeded(db, tier, audio)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    seeded: Seeded
    ctx: object  # pbx_recorder.service.context.ServiceContext
    clock: Clock
    client_factory: object
    key_file: Path | None = None  #: web.secret_key_file of the service (its access rows' seal)

    def accounts(self, conn):  # type: ignore[no-untyped-def]
        """The accounts of ``conn`` as this service writes them (sealed with its key)."""
        return Accounts(conn, hasher=CHEAP, seal=self.ctx.access_seal)  # type: ignore[attr-defined]

    def client(self):  # type: ignore[no-untyped-def]
        return self.client_factory()  # type: ignore[operator]

    def login(self, name: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
        """A client logged in as ``name`` and its CSRF token."""
        client = self.client()
        answer = client.post("/api/login", json={"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]

    def set_lang(self, name: str, lang: str) -> None:
        """``name``'s console language, as the language switch stores it."""
        conn = open_catalog(self.seeded.db)
        try:
            conn.execute("UPDATE users SET lang = ? WHERE name = ?", (lang, name))
            conn.commit()
        finally:
            conn.close()

    def audit_rows(self, actor: str | None = None) -> list[dict]:
        conn = open_catalog(self.seeded.db)
        try:
            sql = "SELECT actor, role, action, target, detail FROM audit_log"
            rows = conn.execute(sql + (" WHERE actor = ?" if actor else "") + " ORDER BY id",
                                (actor,) if actor else ()).fetchall()
            return [dict(zip(("actor", "role", "action", "target", "detail"), r, strict=True)) for r in rows]
        finally:
            conn.close()


def make_service(tmp_path: Path, **web: object) -> Service:
    from starlette.testclient import TestClient

    from pbx_recorder.config.model import WebConfig
    from pbx_recorder.service.app import build_app
    from pbx_recorder.service.context import ServiceContext

    key_file = create_key_file(tmp_path / "keys" / "web.key")  # web.secret_key_file, for the CLI too
    seal = access_seal.from_file(key_file)
    seeded = seed(tmp_path, seal)
    # as `serve` loading a config that names the key: the service's audit rows are keyed
    audit_key.register(seeded.db, audit_key.derive(read_key(key_file)))
    clock = Clock()
    ctx = ServiceContext(Catalog(seeded.db, clock=clock), {"hot": seeded.tier}, web=WebConfig(**web),
                         hasher=CHEAP, clock=clock, access_seal=seal)
    app = build_app(ctx)
    return Service(seeded, ctx, clock, lambda: TestClient(app, client=("192.0.2.7", 50000)), key_file)



def login_from_config(config: object, name: str, password: str = PASSWORD,
                      paths: tuple[str, ...] = ()) -> int:
    """The status of ``name``'s login to the service ``pbx-recorder serve`` builds from ``config``
    (``ServiceContext.from_config``, the cheap hasher); each of ``paths`` must then answer 200."""
    from starlette.testclient import TestClient

    from pbx_recorder.service.app import build_app
    from pbx_recorder.service.context import ServiceContext

    ctx = ServiceContext.from_config(config)
    ctx.hasher = CHEAP
    try:
        client = TestClient(build_app(ctx))
        status = int(client.post("/api/login", json={"name": name, "password": password}).status_code)
        for path in paths:
            assert client.get(path).status_code == 200, path
        return status
    finally:
        ctx.catalog.close()


def insider_sql(service: Service, sql: str, params: tuple[object, ...] = ()) -> None:
    """What an insider who can write the catalog (not read the service's key) does: a statement on
    the catalog, outside the recorder."""
    conn = open_catalog(service.seeded.db)
    try:
        with Tx(conn):
            conn.execute(sql, params)
    finally:
        conn.close()


def service_config(tmp_path: Path, db: Path, key_file: Path) -> object:
    """The loaded configuration of a service over ``db`` with ``key_file`` as web.secret_key_file
    (what ``pbx-recorder serve`` reads)."""
    from pbx_recorder.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {db}}}\nstorage:\n  tiers:\n    hot: {{type: local, "
                   f"path: {tmp_path / 'hot'}}}\nweb: {{secret_key_file: {key_file}}}\n")
    return load_config(cfg)
