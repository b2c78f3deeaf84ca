"""Signatures of a bulk write made ahead, in a helper process (``Catalog.write_calls``).

A call written in bulk costs its writer two Ed25519 signatures (the call seal and the recording's
manifest), about a sixth of the writer's CPU; ``cryptography`` holds the GIL while it signs, so
a thread cannot take them off the writer, a process can.  :class:`SignAhead` runs one helper
process for the writer's key(s).  At the start of a batch a thread of the writer sends it what
the batch will sign (the calls' rows, the recordings' manifests); the helper makes the bytes
with the same functions the writer uses (``catalog.seal_ahead``, ``signing.manifest_bytes``),
signs them, and sends back bytes and signature, chunk by chunk, while the writer works through
the batch.  Measured (``bench/bench_catalog.py``): the writer spends 45-100 us less CPU a call,
the helper ~150 us more; it pays where a core is free, not beside a searcher that keeps one busy.

The writer takes a signature from the helper only for exactly the bytes it has just made itself
(Ed25519 is deterministic: it is the signature the writer would have made); otherwise (a call
already stored, a payload that does not pickle, a helper that died or is late) it signs itself.
The private key goes to the helper once, over a socket pair of the process started for it
(``python -m pbx_recorder.recording.sign_ahead FD``: never a file, an argument or the
environment), and the helper's first signature is checked against the public key before any
is used.  It is a child of the writer under the same account and ends when the writer's socket
closes.
"""

from __future__ import annotations

import base64
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if TYPE_CHECKING:
    from pbx_recorder.catalog.seal_ahead import SealForm

log = logging.getLogger(__name__)

#: what a job asks for: a new call's seal (payload: the call row), a manifest's signature
#: (payload: the manifest)
SEAL, MANIFEST = "seal", "manifest"
#: jobs per message each way: the first signatures come back while the rest are still sent
CHUNK = 64
#: a batch smaller than this is signed by the writer (the round trips would cost more)
MIN_BATCH = 32
#: how long the writer waits for a chunk before it signs itself (the helper is stuck or gone)
WAIT_S = 10.0
_PROBE = b"pbx-recorder sign-ahead probe"

Job = tuple[str, str, Any]  # (kind, ident, payload)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes_raw()


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def manifest_key_of(hooks: Sequence[Any]) -> Ed25519PrivateKey | None:
    """The key of the hook that signs manifests (``signing.SignAfterStore``), if one does."""
    for hook in hooks:
        key = getattr(hook, "private_key", None)
        if getattr(hook, "signs_manifests", False) and isinstance(key, Ed25519PrivateKey):
            return key
    return None


def _sign_jobs(keys: dict[str, Ed25519PrivateKey], form: SealForm | None,
               jobs: Sequence[Job]) -> list[tuple[str, str, bytes | None, str | None]]:
    """The helper's work for one chunk: (kind, ident, bytes, signature), None where it cannot say."""
    from pbx_recorder.catalog.seal_ahead import new_call_sealed_bytes
    from pbx_recorder.recording.signing import manifest_bytes

    out: list[tuple[str, str, bytes | None, str | None]] = []
    for kind, ident, payload in jobs:
        data: bytes | None = None
        try:
            if kind == SEAL and form is not None:
                data = new_call_sealed_bytes(form, payload)
            elif kind == MANIFEST:
                data = manifest_bytes(payload)
        except Exception:  # noqa: BLE001 -- the writer makes and signs these itself, with its errors
            data = None
        key = keys.get(kind)
        sig = base64.b64encode(key.sign(data)).decode("ascii") if data is not None and key else None
        out.append((kind, ident, data, sig))
    return out


def serve(conn: Connection) -> None:
    """The helper process: its keys and seal form first, then sign each chunk it is sent, until
    the socket closes.  It reads a chunk only when it has answered the one before: the writer
    sends from a thread of its own and reads the answers as it needs them, so a full socket
    either way only makes one side wait for the other to read, never both."""
    try:
        raw_keys, form = conn.recv()
        keys = {kind: Ed25519PrivateKey.from_private_bytes(raw) for kind, raw in raw_keys.items()}
        conn.send({kind: base64.b64encode(k.sign(_PROBE)).decode("ascii") for kind, k in keys.items()})
        while (jobs := conn.recv()) is not None:
            conn.send(_sign_jobs(keys, form, jobs))
    except (EOFError, OSError):
        return  # the writer is gone


@dataclass
class Presigned:
    """One batch's signatures made ahead: ``take`` what the writer is about to sign."""

    helper: SignAhead
    chunks: deque[list[tuple[str, str]]] = field(default_factory=deque)  # jobs of the chunks not read yet
    expected: set[tuple[str, str]] = field(default_factory=set)  # the jobs of those chunks
    ready: dict[tuple[str, str], tuple[bytes | None, str | None]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    sender: threading.Thread | None = None

    def take(self, kind: str, ident: str, data: bytes) -> str | None:
        """The signature made ahead for ``data`` as job ``(kind, ident)``, or None (sign it yourself)."""
        key = (kind, ident)
        # (a job sent once and taken already -- the same call twice in a batch -- is not waited for)
        while key not in self.ready and key in self.expected and not self.helper.broken:
            if not self._read_chunk():
                break
        made = self.ready.pop(key, None)
        if made is not None and made[0] == data and made[1] is not None:
            self.hits += 1
            return made[1]
        self.misses += 1
        return None

    def signer(self, kind: str, ident: str) -> Any:
        """``take`` for one job, as ``call_seal.seal`` asks for it: ``made(data)``."""
        return lambda data: self.take(kind, ident, data)

    def _read_chunk(self) -> bool:
        if not self.chunks:
            return False
        self.expected.difference_update(self.chunks.popleft())
        got = self.helper.receive()
        if got is None:
            return False
        for kind, ident, data, sig in got:
            self.ready[(kind, ident)] = (data, sig)
        return True

    def finish(self) -> None:
        """Read what is still on its way (the next batch's answers must start clean)."""
        while self.chunks and not self.helper.broken:
            if not self._read_chunk():
                break
        self.chunks.clear()
        self.expected.clear()
        self.ready.clear()
        if self.sender is not None:
            self.sender.join(WAIT_S)  # (a helper that stopped reading is killed: its send ends)


class SignAhead:
    """One helper process signing for a writer: seals with ``seal_key``, manifests with
    ``manifest_key`` (either may be None).  Started on the first batch, stopped by ``close``;
    after a failure it is ``broken`` and the writer signs everything itself."""

    def __init__(self, seal_key: Ed25519PrivateKey | None, manifest_key: Ed25519PrivateKey | None,
                 form: SealForm | None) -> None:
        self.keys = {k: v for k, v in ((SEAL, seal_key), (MANIFEST, manifest_key)) if v is not None}
        self.publics = {kind: _public(key) for kind, key in self.keys.items()}
        self.form = form
        self.broken = False
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def serves(self, kind: str, key: Any) -> bool:
        """This helper signs ``kind`` with ``key`` (the same key: compared by its public bytes)."""
        mine = self.publics.get(kind)
        return mine is not None and isinstance(key, Ed25519PrivateKey) and _public(key) == mine

    def serves_all(self, seal_key: Any, manifest_key: Any, form: SealForm | None) -> bool:
        """This helper is the one for these keys and this seal form."""
        wanted = {k: v for k, v in ((SEAL, seal_key), (MANIFEST, manifest_key)) if v is not None}
        return (set(self.keys) == set(wanted) and all(self.serves(k, v) for k, v in wanted.items())
                and self.form == form)

    def _start(self) -> bool:
        if self._conn is not None or self.broken:
            return not self.broken
        # a fresh interpreter running only this module (not multiprocessing's spawn, which would
        # import the writer's own main module again), talking over a socket pair it inherits
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p)}
        try:
            proc = subprocess.Popen([sys.executable, "-m", __name__, str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            ours.close()
            return self._fail(f"cannot start: {exc}")
        finally:
            theirs.close()
        self._conn, self._proc = Connection(ours.detach()), proc
        try:
            self._conn.send(({kind: _raw(key) for kind, key in self.keys.items()}, self.form))
        except OSError as exc:
            return self._fail(f"cannot be sent its keys: {exc}")
        probe = self.receive()
        if not isinstance(probe, dict):
            return self._fail("no answer")
        for kind, key in self.keys.items():
            try:
                key.public_key().verify(base64.b64decode(str(probe.get(kind, ""))), _PROBE)
            except (InvalidSignature, ValueError):
                return self._fail(f"its {kind} signature does not verify")
        return True

    def _fail(self, why: str) -> bool:
        if not self.broken:
            log.warning("sign-ahead helper %s: the writer signs itself", why)
        self.broken = True
        self.close()
        return False

    def receive(self) -> Any:
        conn = self._conn
        if conn is None:
            return None
        try:
            if not conn.poll(WAIT_S):
                self._fail(f"sent nothing for {WAIT_S:g} s")
                return None
            return conn.recv()
        except (EOFError, OSError) as exc:
            self._fail(f"stopped ({exc.__class__.__name__})")
            return None
        except BaseException:
            # interrupted inside a message (a signal's SystemExit, KeyboardInterrupt): the stream is
            # out of step -- reading on would take the rest of the message for the next one's length
            # and wait forever -- so nothing more is read from this helper
            self.broken = True
            self.close()
            raise

    def batch(self, jobs: Sequence[Job]) -> Presigned | None:
        """Send a batch's jobs (chunked, from a thread: the writer goes on with its first calls
        meanwhile); None when there is nothing to gain or no helper."""
        jobs = [j for j in jobs if j[0] in self.keys]
        if len(jobs) < MIN_BATCH or not self._start():
            return None
        presigned = Presigned(self)
        chunks = list(_chunks(jobs))
        presigned.chunks.extend([(kind, ident) for kind, ident, _ in chunk] for chunk in chunks)
        presigned.expected.update((kind, ident) for kind, ident, _ in jobs)
        presigned.sender = threading.Thread(target=self._send_all, args=(chunks,), daemon=True,
                                            name="sign-ahead-sender")
        presigned.sender.start()
        return presigned

    def _send_all(self, chunks: Sequence[list[Job]]) -> None:
        """Every chunk, in order; one that does not pickle goes without its payloads (the helper
        answers "cannot say" for each: the writer signs them), so answers and chunks stay paired."""
        conn = self._conn
        for chunk in chunks:
            try:
                data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 -- whatever a payload's pickling raises
                data = pickle.dumps([(kind, ident, None) for kind, ident, _ in chunk])
            try:
                if conn is None:
                    return
                conn.send_bytes(data)
            except (OSError, ValueError):
                return  # the helper is gone: the writer finds out when it reads

    def close(self) -> None:
        """Stop the helper: told to end when it is well, killed when it is not (a sender blocked
        on a socket it no longer reads is woken by the shutdown)."""
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if proc is not None and self.broken:
            proc.kill()
        if conn is not None:
            if not self.broken:
                try:
                    conn.send(None)  # (between batches it waits to read: this does not block)
                except OSError:
                    pass
            try:
                with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _chunks(jobs: Sequence[Job]) -> Iterator[list[Job]]:
    for i in range(0, len(jobs), CHUNK):
        yield list(jobs[i:i + CHUNK])


if __name__ == "__main__":  # the helper: ``python -m pbx_recorder.recording.sign_ahead FD``
    serve(Connection(int(sys.argv[1])))
