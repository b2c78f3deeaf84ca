"""A kept, resumable work directory for ``bench_catalog.py --keep DIR`` (PostgreSQL: with ``--pg-url``).

A 10,000,000-call fill takes hours on a 2-core host; with ``--keep`` it can be stopped at any
moment (each batch is one committed transaction in the catalog and one in the ``cdr`` table) and
a later run with the same arguments goes on from the batch after the last one committed, then
measures. What a resumed run must reuse is kept beside the databases:

- ``state.json``: the run's parameters (calls, batch), its ``now`` (the 24 months the calls span end
  there, and the presets are measured against it) and its keys (bench-only keys made for this
  directory: the Ed25519 signing key, the catalog master key, the blind-index HMAC key), readable
  by the owner only;
- ``samples.pickle``: the calls kept to draw filter values from, appended batch by batch.

The generated calls themselves are not kept: each batch's random draws are seeded by its start
(``CallGenerator.calls(..., batch_seed=...)``), so batch ``k`` is the same calls in every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class ResumeError(Exception):
    """A kept directory that does not belong to this run (other parameters, broken state)."""


@dataclass
class KeptRun:
    now: float
    key: Ed25519PrivateKey
    keys: tuple[bytes, bytes]
    resumed: bool

    @property
    def run_id(self) -> str:
        """Names this kept run (its signing key's public half, hashed) where its data lives
        outside the directory (PostgreSQL's kept schemas)."""
        return hashlib.sha256(self.key.public_key().public_bytes_raw()).hexdigest()[:16]


def _private(root: Path) -> None:
    """``root`` made owner-only, or refused: it holds the run's keys, and ``samples.pickle`` is
    unpickled on resume, so nobody else may be able to plant a file there."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = root.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ResumeError(f"{root} must belong to this user and not be writable by others "
                          "(it keeps the run's keys and a pickle it loads)")


def open_state(root: Path, calls: int, batch: int, now: float) -> KeptRun:
    """The kept run in ``root`` (made now if there is none); refuses another run's directory."""
    _private(root)
    path = root / "state.json"
    if path.exists():
        try:
            state = json.loads(path.read_text())
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(state["ed25519"]))
            keys = (bytes.fromhex(state["master_key"]), bytes.fromhex(state["hmac_key"]))
            kept = (int(state["calls"]), int(state["batch"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResumeError(f"{path}: not a bench state file ({exc})") from exc
        if kept != (calls, batch):
            raise ResumeError(f"{root} holds a run of --calls {kept[0]} --batch {kept[1]}, "
                              f"not --calls {calls} --batch {batch}")
        return KeptRun(float(state["now"]), key, keys, resumed=True)
    key, keys = Ed25519PrivateKey.generate(), (os.urandom(32), os.urandom(32))
    state = {"calls": calls, "batch": batch, "now": now, "ed25519": key.private_bytes_raw().hex(),
             "master_key": keys[0].hex(), "hmac_key": keys[1].hex()}
    tmp = root / "state.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return KeptRun(now, key, keys, resumed=False)


def committed(conn: sqlite3.Connection, table: str) -> int:
    """Rows committed in ``table`` (a whole number of batches: each batch is one transaction)."""
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def load_samples(root: Path) -> list[Any]:
    """The samples of the batches done so far (a record cut short by a kill is dropped)."""
    out: list[Any] = []
    path = root / "samples.pickle"
    if not path.exists():
        return out
    with open(path, "rb") as f:
        while True:
            try:
                out.extend(pickle.load(f))  # noqa: S301 -- this run's own file, owner-only dir
            except EOFError:
                break
            except (pickle.UnpicklingError, ValueError, AttributeError):
                break  # the last record, cut short
    return out


def append_samples(root: Path, samples: list[Any]) -> None:
    if samples:
        with open(root / "samples.pickle", "ab") as f:
            pickle.dump(samples, f)
