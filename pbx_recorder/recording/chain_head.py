"""Signed chain-head checkpoints: the ledger's and the audit log's head kept outside the database.

A hash chain inside the catalog proves nothing against someone who can write the catalog:
they can drop the last rows (and lower ``sqlite_sequence``) or recompute the whole chain.
So the head of each chain (``ledger``: highest ``seq`` and its hash; ``audit``: highest
``id`` and its hash) is signed with the node's Ed25519 key and written *outside* the
database, to files in ``signing.checkpoint_dir`` (default ``<catalog dir>/chain-heads``):

* ``<chain>.head.json``           the newest checkpoint (replaced atomically)
* ``<chain>/<YYYY-MM-DD>.json``   the last checkpoint of each UTC day (the daily root; copy it
                                  off the host, e.g. to a WORM bucket, mail or RFC 3161 stamp)

A checkpoint is ``{"chain", "seq", "head", "at", "node", "signature"}``; the signature covers
the canonical JSON of everything but itself.  ``check`` compares the newest valid checkpoint
with the database: a chain shorter than the checkpoint (truncation) or with another hash at
the checkpoint's position (rewrite) is a problem; a forged or corrupt checkpoint file is a
problem; a non-empty chain without any checkpoint is a problem (someone removed them).  Rows
after the newest checkpoint are not yet covered: the daemon writes a checkpoint after every
stored recording and the lifecycle commands after each run, so that window stays small.

``write`` never moves the head backwards and refuses to sign a chain that does not extend the
previous checkpoint (it re-checks the links from the previous head): signing over a truncated
or rewritten chain would launder the tampering.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pbx_recorder.core.naming import safe_component
from pbx_recorder.errors import ConfigError, IntegrityError, StorageError
from pbx_recorder.recording.manifest import canonical_json
from storage import atomic, file_modes
from storage.base import Tier

log = logging.getLogger(__name__)

CHAINS = ("ledger", "audit")
# chain -> (table, position column); both tables carry prev_hash / hash
_TABLES = {"ledger": ("ledger", "seq"), "audit": ("audit_log", "id")}
GENESIS = "0" * 64
TIER_PREFIX = "chain-heads"  # <prefix>/<node>/<chain>/<YYYY-MM-DD>.json on signing.checkpoint_tier


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain: str
    seq: int
    head: str
    at: float
    node: str = ""
    signature: str = ""

    def signed_bytes(self) -> bytes:
        body = asdict(self)
        body.pop("signature")
        return canonical_json(body)

    def signed_by(self, key: Ed25519PrivateKey) -> Checkpoint:
        sig = base64.b64encode(key.sign(self.signed_bytes())).decode("ascii")
        return Checkpoint(self.chain, self.seq, self.head, self.at, self.node, sig)

    def valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.signed_bytes())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class HeadProblem:
    chain: str
    what: str
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        text = f"{self.chain} chain head: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


def db_head(conn: sqlite3.Connection, chain: str) -> tuple[int, str]:
    """(position, hash) of the chain's last row in the database; (0, GENESIS) when empty."""
    table, col = _TABLES[chain]
    row = conn.execute(f"SELECT {col}, hash FROM {table} WHERE hash != '' ORDER BY {col} DESC LIMIT 1"
                       ).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def hash_at(conn: sqlite3.Connection, chain: str, seq: int) -> str | None:
    table, col = _TABLES[chain]
    row = conn.execute(f"SELECT hash FROM {table} WHERE {col} = ?", (seq,)).fetchone()
    return str(row[0]) if row else None


class CheckpointStore:
    """The checkpoint files of one node (see the module docstring)."""

    def __init__(self, directory: str | Path, *, tier: Tier | None = None, node: str = "") -> None:
        self.dir = Path(directory)
        self.tier = tier  # signing.checkpoint_tier: a copy of each daily file (make it WORM)
        self.node = safe_component(node or "node")

    def _tier_prefix(self, chain: str) -> str:
        return f"{TIER_PREFIX}/{self.node}/{chain}/"

    def _tier_texts(self, chain: str) -> Iterator[tuple[str, str]]:
        if self.tier is None:
            return
        try:
            for info in self.tier.list(self._tier_prefix(chain)):
                with self.tier.open(info.key) as f:
                    yield f"{self.tier.name}:{info.key}", f.read(1 << 16).decode("utf-8", "replace")
        except StorageError as exc:  # an outage hides the copies, it does not forge them
            log.warning("checkpoint copies on tier %s not read: %s", self.tier.name, exc)

    def _files(self, chain: str) -> Iterator[Path]:
        head = self.dir / f"{chain}.head.json"
        if head.is_file():
            yield head
        daily = self.dir / chain
        if daily.is_dir():
            yield from sorted(daily.glob("*.json"))

    def read_all(self, chain: str) -> tuple[list[Checkpoint], list[str]]:
        """Every parseable checkpoint of ``chain`` and the names of unreadable files."""
        found, bad = [], []
        texts: list[tuple[str, str | None]] = []
        try:
            files = list(self._files(chain))
        except OSError as exc:  # e.g. run by an account that may not read the folder
            files, texts = [], [(f"{self.dir} ({exc.strerror})", None)]
        for file in files:
            try:
                texts.append((str(file), file.read_text(encoding="utf-8")))
            except OSError:
                texts.append((str(file), None))
        texts += list(self._tier_texts(chain))
        for path, text in texts:
            try:
                if text is None:
                    raise ValueError("unreadable")
                data = json.loads(text)
                cp = Checkpoint(chain=str(data["chain"]), seq=int(data["seq"]), head=str(data["head"]),
                                at=float(data["at"]), node=str(data.get("node", "")),
                                signature=str(data["signature"]))
            except (ValueError, KeyError, TypeError):
                bad.append(path)
                continue
            if cp.chain != chain:
                bad.append(path)
                continue
            found.append(cp)
        return found, bad

    def latest(self, chain: str, public_key: Ed25519PublicKey) -> Checkpoint | None:
        good = [cp for cp in self.read_all(chain)[0] if cp.valid(public_key)]
        return max(good, key=lambda cp: cp.seq) if good else None

    def _write(self, path: Path, cp: Checkpoint) -> bytes:
        file_modes.private_dir(path.parent, tighten=False)  # parents too: 0700 whatever the umask
        data = json.dumps(asdict(cp), sort_keys=True, indent=1).encode("utf-8") + b"\n"
        atomic.write_stream(path, [data], mode=0o600)
        return data

    def write(self, conn: sqlite3.Connection, chain: str, key: Ed25519PrivateKey, *, now: float,
              node: str = "", init: bool = False) -> Checkpoint | None:
        """Sign and store the database's current head of ``chain``; None when nothing new.

        The first checkpoint is written automatically only for an empty chain (a new
        installation: the daemon signs both chains at start-up).  A non-empty chain without
        any checkpoint (they were removed, or the first start after an upgrade) is signed only
        with ``init`` (``pbx-recorder ledger checkpoint --init``, a deliberate act after checking
        the chain): otherwise deleting the checkpoints would heal itself at the next store."""
        previous = self.latest(chain, key.public_key())
        seq, head = db_head(conn, chain)
        if previous is not None:
            problems = _extends(conn, chain, previous)
            if problems:
                raise IntegrityError(f"refusing to sign the {chain} chain head: {problems[0]}")
            if seq == previous.seq:
                return None
        elif seq and not init:
            raise IntegrityError(f"no signed {chain} checkpoint in {self.dir} while the chain has rows: "
                                 f"not signing it automatically (run `pbx-recorder ledger checkpoint "
                                 f"--init` once the chain is checked)")
        cp = Checkpoint(chain, seq, head, float(now), node).signed_by(key)
        self._write(self.dir / f"{chain}.head.json", cp)
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        data = self._write(self.dir / chain / f"{day}.json", cp)
        if self.tier is not None:
            try:
                self.tier.put(f"{self._tier_prefix(chain)}{day}.json", io.BytesIO(data))
            except StorageError as exc:
                log.error("%s chain head not copied to tier %s: %s", chain, self.tier.name, exc)
        log.info("%s chain head signed at position %d", chain, seq)
        return cp


def _links(conn: sqlite3.Connection, chain: str, start: int) -> list[HeadProblem]:
    """Rows after position ``start`` link to each other (prev_hash = previous hash).  A ledger row
    written since schema 13 stores no prev_hash (``ledger.append``): its hash is recomputed over
    the previous row's, which is the link."""
    table, col = _TABLES[chain]
    prev = hash_at(conn, chain, start) if start else GENESIS
    problems: list[HeadProblem] = []
    if chain == "ledger":
        from pbx_recorder.recording import ledger

        found = ledger.verify_chain_from(conn, start, prev or GENESIS)[0]
        return [HeadProblem(chain, f"row {found[0].seq} does not link to the signed head ({found[0].what})",
                            found[0].expected, found[0].found)] if found else []
    for pos, prev_hash, digest in conn.execute(
            f"SELECT {col}, prev_hash, hash FROM {table} WHERE {col} > ? AND hash != '' ORDER BY {col}",
            (start,)):
        if prev_hash != prev:
            problems.append(HeadProblem(chain, f"row {pos} does not link to the signed head", str(prev),
                                        str(prev_hash)))
            break
        prev = digest
    return problems


def _at_position(conn: sqlite3.Connection, chain: str, cp: Checkpoint, seq: int) -> list[HeadProblem]:
    """The database still has the checkpoint's row, with the signed hash (``seq``: its last row)."""
    if cp.seq == 0:
        return []
    if seq < cp.seq:
        return [HeadProblem(chain, "rows removed after the signed head (truncated)",
                            f"last position >= {cp.seq}", f"last position {seq}")]
    found = hash_at(conn, chain, cp.seq)
    if found != cp.head:
        return [HeadProblem(chain, f"row {cp.seq} differs from the signed head (chain rewritten)",
                            cp.head, found or "absent")]
    return []


def _extends(conn: sqlite3.Connection, chain: str, cp: Checkpoint) -> list[HeadProblem]:
    """The database's chain continues the checkpoint (for the writer: links after it re-checked)."""
    problems = _at_position(conn, chain, cp, db_head(conn, chain)[0]) or _links(conn, chain, cp.seq)
    if not problems and chain == "audit":
        _alert_audit_rows_after(conn, cp.seq)
    return problems


def _alert_audit_rows_after(conn: sqlite3.Connection, start: int) -> None:
    """An ALERT for each audit row after the signed head whose content or MAC fails, before the
    head is signed over it.  The head is still signed: those findings do not depend on the heads
    (every full ``audit verify`` reports them), and a head withheld for good would leave every
    later row without truncation evidence."""
    from pbx_recorder import audit_trail

    prev = hash_at(conn, "audit", start) if start else ""
    for bad in audit_trail.verify_chain_from(conn, start, prev or "", tail=False)[0]:
        log.error("ALERT audit chain: %s (signing the head over it; `pbx-recorder audit verify` "
                  "reports it until the incident is settled)", bad)


def check(conn: sqlite3.Connection, chain: str, store: CheckpointStore,
          public_key: Ed25519PublicKey) -> tuple[list[HeadProblem], list[str]]:
    """Problems and notes for ``chain`` against its newest valid signed checkpoint."""
    found, bad = store.read_all(chain)
    problems = [HeadProblem(chain, f"unreadable checkpoint file {path}") for path in bad]
    forged = [cp for cp in found if not cp.valid(public_key)]
    problems += [HeadProblem(chain, f"checkpoint at position {cp.seq} has an invalid signature")
                 for cp in forged]
    good = [cp for cp in found if cp.valid(public_key)]
    seq, _ = db_head(conn, chain)
    if not good:
        if seq:
            problems.append(HeadProblem(chain, "no signed checkpoint for a non-empty chain",
                                        f"a checkpoint in {store.dir}", "none"))
        return problems, []
    for cp in sorted(good, key=lambda c: c.seq):  # every daily root must still be in the chain
        problems += _at_position(conn, chain, cp, seq)  # (the links: verify_chain recomputes them)
    latest = max(good, key=lambda c: c.seq)
    problems += _links(conn, chain, latest.seq) if seq >= latest.seq else []
    notes = []
    if seq > latest.seq:
        notes.append(f"{chain}: {seq - latest.seq} row(s) after the newest signed head "
                     f"(position {latest.seq}) are not yet covered by a checkpoint")
    return _dedupe(problems), notes


def _dedupe(problems: list[HeadProblem]) -> list[HeadProblem]:
    return list(dict.fromkeys(problems))


def store_for(config: Any, tiers: Mapping[str, Tier] | None = None) -> CheckpointStore:
    """The configured checkpoint folder (``signing.checkpoint_dir`` or ``<catalog dir>/chain-heads``)
    and, with ``signing.checkpoint_tier``, the tier that keeps a copy of each daily file."""
    configured = getattr(config.signing, "checkpoint_dir", None)
    tier_name = getattr(config.signing, "checkpoint_tier", None)
    if tier_name and tiers is None:
        from storage.factory import build_tiers

        tiers = build_tiers(config.storage)
    tier = (tiers or {}).get(tier_name) if tier_name else None
    if tier_name and tier is None:
        raise ConfigError(f"no tier named {tier_name!r}", key="signing.checkpoint_tier")
    return CheckpointStore(configured or Path(config.catalog.path).parent / "chain-heads", tier=tier,
                           node=str(getattr(config, "node", "") or ""))


def write_all(conn: sqlite3.Connection, store: CheckpointStore, key: Ed25519PrivateKey, *, now: float,
              node: str = "", init: bool = False) -> list[str]:
    """Checkpoint every chain; returns what could not be signed (logged, never raised: a refused
    checkpoint is itself the alarm, and ``verify`` reports the cause)."""
    failed = []
    for chain in CHAINS:
        try:
            store.write(conn, chain, key, now=now, node=node, init=init)
        except Exception as exc:  # noqa: BLE001 - a checkpoint must never stop shipping
            log.error("%s chain head not signed: %s", chain, exc)
            failed.append(f"{chain}: {exc}")
    return failed


class ChainHeadHook:
    """Shipper ``after_store`` hook (after the ledger hook): sign both chain heads."""

    #: it publishes the heads the catalog's transaction made: the shipper and ``write_calls`` run
    #: it once that transaction has committed (a head of a rolled-back entry is never published)
    after_commit = True

    def __init__(self, key: Ed25519PrivateKey, store: CheckpointStore, node: str = "",
                 clock: Any = None) -> None:
        import time

        self.key, self.store, self.node = key, store, node
        self.clock = clock or time.time

    def __call__(self, catalog: Any, recording_id: str, manifest: Any, record: Any = None) -> None:
        from pbx_recorder.recording.ledger import connection_of

        write_all(connection_of(catalog), self.store, self.key, now=self.clock(), node=self.node)

    def start(self, catalog: Any) -> None:
        """At start-up: sign the (empty) chains of a new installation, check the others."""
        self(catalog, "", None)


def checkpoint_if_possible(config: Any, conn: sqlite3.Connection, now: float) -> list[str]:
    """Sign both chain heads when this process can read the signing key (the recorder's account
    and root can; an operator's own account usually cannot: then the next daemon or lifecycle
    run covers these rows).  Returns what failed."""
    from pbx_recorder.recording.signing import load_signing_key

    key_file = config.signing.key_file
    try:
        key = load_signing_key(key_file)
    except Exception:  # noqa: BLE001 - unreadable here is normal for an operator account
        return []
    try:
        store = store_for(config)
    except Exception as exc:  # noqa: BLE001 - a checkpoint must never fail the command it follows
        return [str(exc)]
    return write_all(conn, store, key, now=now, node=str(getattr(config, "node", "") or ""))
