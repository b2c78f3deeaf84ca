"""A shipped deployment on local tiers for the tamper-evidence tests: config, keys, recordings
shipped by the real Shipper with the daemon's hooks (sign, ledger, chain heads), call rows
written by a sealing Catalog, and the CLI run against it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pbx_recorder.catalog import Catalog, engine
from pbx_recorder.catalog.number_keys import protection_for
from pbx_recorder.cli import main
from pbx_recorder.config import load_config
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle import number_lookup
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.recording import ledger
from pbx_recorder.recording.call_seal import CallSealer
from pbx_recorder.recording.chain_head import ChainHeadHook, CheckpointStore
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.signing import SignAfterStore, generate_signing_key
from pbx_recorder.recording.spool import Spool
from storage.envelope import EncryptStage
from storage.keyring import KeyRing
from storage.local import LocalTier

NOW = 1772618400.0  # 2026-03-04 10:00 UTC
CALLER = "4915112345678"

CONFIG = """
node: n1
catalog: {path: ./cat.db}
spool: {dir: ./spool, min_free_mb: 0}
storage:
  tiers: {hot: {type: local, path: ./hot}}
  hot: hot
  cold: null
encryption: {enabled: true, master_key_file: ./keys/k1.key, key_id: k1}
signing: {key_file: ./sign.pem}
privacy: {hash_key_file: ./hash.key}
"""


class Deployment:
    def __init__(self, root: Path, *, encrypted: bool = True, vault: bool = False) -> None:
        self.root = root
        config = CONFIG
        if vault:  # a second tier keeps a copy of each daily chain head
            config = config.replace("{hot: {type: local, path: ./hot}}",
                                    "{hot: {type: local, path: ./hot}, vault: {type: local, path: ./vault}}")
            config = config.replace("signing: {key_file: ./sign.pem}",
                                    "signing: {key_file: ./sign.pem, checkpoint_tier: vault}")
        (root / "cfg.yaml").write_text(config)
        # as ``keys init`` writes it (64 hex characters): read back with ``read_hash_key`` (which
        # strips whitespace), never raw; random bytes were stripped when they began or ended with a
        # whitespace byte, so a raw read gave another key one run in twenty
        (root / "hash.key").write_bytes(secrets.token_hex(32).encode() + b"\n")
        self.ring = KeyRing(root / "keys")
        self.ring.generate("k1")
        self.sign_key = generate_signing_key(root / "sign.pem")
        self.heads = CheckpointStore(root / "chain-heads", node="n1",
                                     tier=LocalTier("vault", root / "vault") if vault else None)
        self.tier = LocalTier("hot", root / "hot")
        self.spool = Spool(root / "spool")
        self.catalog = Catalog(root / "cat.db", clock=lambda: NOW, sealer=CallSealer(self.sign_key))
        stages = [EncryptStage(self.ring, "k1")] if encrypted else []
        heads = ChainHeadHook(self.sign_key, self.heads, "n1", lambda: NOW)
        heads.start(self.catalog)  # what the daemon does at start-up: sign the empty chains
        self.shipper = Shipper(self.spool, self.catalog, lambda region: self.tier, prepare_stages=stages,
                               after_store=[SignAfterStore(self.sign_key),
                                            ledger.StoredLedgerHook(lambda: NOW),
                                            heads])

    def call(self, call_id: str, caller: str = CALLER, **extra: object) -> None:
        self.catalog.upsert_call({"call_id": call_id, "caller_num": caller, "callee_num": "4930123456",
                                  "agent": "alice", "consent_decision": "granted", "status": "answered",
                                  "started_at": NOW - 60, "ended_at": NOW, **extra})

    def record(self, call_id: str, n: int = 1, *, ship: bool = True) -> str:
        rid = f"{call_id}_call{n:03d}"
        src = self.root / "mon" / f"{rid}.wav"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(os.urandom(6000 + n))
        call = self.catalog.get_call(call_id) or {}
        m = Manifest(recording_id=rid, call_id=call_id, recorded_from=NOW - 50, created_at=NOW - 1,
                     cdr={"src": call.get("caller_num", CALLER), "dst": "4930123456"},
                     files=(ManifestFile(src.name, 0, "", 2.0),))
        self.spool.spool_recording(rid, [src], m)
        if ship:
            assert rid in self.shipper.ship_once().shipped
        return rid

    def record_two_legs(self, call_id: str) -> str:
        """A two-leg recording (``read`` and ``write``) of ``call_id``, spooled and shipped."""
        rid = f"{call_id}_call001"
        mon = self.root / "mon"
        mon.mkdir(exist_ok=True)
        legs = []
        for name in (f"{rid}-in.wav", f"{rid}-out.wav"):
            (mon / name).write_bytes(os.urandom(5000))
            legs.append(mon / name)
        m = Manifest(recording_id=rid, call_id=call_id, recorded_from=NOW - 50, created_at=NOW - 1,
                     cdr={"src": "4915112345678", "dst": "4930123456"},
                     files=(ManifestFile(legs[0].name, 0, "", 2.0, role="read"),
                            ManifestFile(legs[1].name, 0, "", 2.0, role="write")))
        self.spool.spool_recording(rid, legs, m)
        assert rid in self.shipper.ship_once().shipped
        return rid

    def key_of(self, rid: str) -> str:
        return str(self.catalog.get_recording(rid)["storage_key"])

    def sidecar_of(self, rid: str) -> Path:
        """The manifest sidecar's file (``.json``, or ``.jsonpbxr`` when sealed in the envelope)."""
        objects = self.catalog.get_recording(rid)["objects"]
        return self.tier.root / next(str(o["key"]) for o in objects if o["role"] == "manifest")

    def sql(self, *statements: str) -> None:
        """What an insider with write access to the catalog file does."""
        conn = engine.connect(self.root / "cat.db")  # whichever engine holds the catalog
        try:
            conn.execute("BEGIN")
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def cli(self, capsys, *args: str) -> tuple[int, str]:
        code = main(["--config", str(self.root / "cfg.yaml"), *args])
        out = capsys.readouterr()
        err = "".join(line for line in out.err.splitlines(keepends=True)
                      if not line.startswith("warning: access.users is empty"))
        return code, out.out + err

    def close(self) -> None:
        self.catalog.close()


def two_recorded_calls(tmp_path: Path) -> Deployment:
    """A deployment with two recorded calls, ``n1_1.1`` and ``n1_2.2`` (another caller)."""
    d = Deployment(tmp_path)
    d.call("n1_1.1")
    d.record("n1_1.1")
    d.call("n1_2.2", caller="4917000000000")
    d.record("n1_2.2")
    return d


def indexing_deployment(tmp_path: Path) -> Deployment:
    """A deployment whose catalog seals and indexes call numbers as the daemon's does (the number
    protection of its config, kept as ``d.config``): what the erasure and migration tests search."""
    d = Deployment(tmp_path)
    config = load_config(tmp_path / "cfg.yaml", env={})
    d.catalog.close()
    numbers = protection_for(config)
    # the daemon's sealer (app.py): it seals what a row's encrypted numbers open to, so verify agrees
    d.catalog = d.shipper.catalog = Catalog(config.catalog.path, clock=lambda: NOW,
                                             sealer=CallSealer(d.sign_key, reveal=numbers.open_call),
                                             numbers=numbers)
    d.config = config  # type: ignore[attr-defined]
    return d


def calls_naming(d: Deployment, number: str) -> set[str]:
    """The calls an erasure of ``number`` finds in ``d``'s catalog (through the number index)."""
    config = d.config  # type: ignore[attr-defined]
    conn = open_catalog(config.catalog.path)
    try:
        return number_lookup.calls_naming(conn, read_hash_key(config.privacy.hash_key_file), number)
    finally:
        conn.close()
