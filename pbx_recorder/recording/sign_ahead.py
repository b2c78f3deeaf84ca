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

Where the catalog seals the numbers it protects (``SealForm.protected``) the helper is also given
the catalog cipher's current derived key and the blind-index key (``NumberKeys``), and *prepares*:
for a new call it makes the token columns and opened fields (``seal_call_opened``) and the index
of the numbers it names (``named_index``) besides the seal, for a manifest the hash of its bytes.
The writer then takes them without making them again (:meth:`Presigned.take_call`,
:meth:`Presigned.take_manifest`: only for the very row it sent, as a call with no stored row, and
the very manifest object), which is the work saved.  It
makes every ``CHECK_EVERY``-th of each kind itself too, the first of each batch among them, and
compares (the token opened with its own keys); a difference (a helper started from other files
than the writer's, during an upgrade) raises ``PreparedMismatch``: the batch, one transaction, is
rolled back, the helper stopped for good, and the writer writes the batch alone.  The helper's
first answer holds a probe token and index values the writer checks against its own keys; a
rotated catalog key gets a new helper (``serves_all``), and the writer asks its key ring again
at every batch (a retired key fails closed there).
The private key goes to the helper once, over a socket pair of the process started for it
(``python -m pbx_recorder.recording.sign_ahead FD``: never a file, an argument or the
environment), and the helper's first signature is checked against the public key before any
is used.  It is a child of the writer under the same account and ends when the writer's socket
closes.
"""

from __future__ import annotations

import base64
import hashlib
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
    from pbx_recorder.catalog.protected_rows import NumberProtection
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
#: what the helper is given to make a new call's numbers token and blind indexes: the catalog
#: cipher's current key id, its derived AES-GCM key and check value, the blind-index key
NumberKeys = tuple[str, bytes, str, bytes]
#: of the results taken without making them again, the writer makes every CHECK_EVERY-th itself
#: too (the first of each batch among them) and compares: a helper that makes anything else
#: (started from other files than the writer's, during an upgrade) fails the batch, which is
#: then written by the writer alone
CHECK_EVERY = 32
_PROBE_NUMBER = "+86 138 0013 8000"


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A new call's results made by the helper: its token and blind-index columns, its protected
    fields as the token opens, its seal, and the full-number index of every number its caller,
    callee and CDR name (``named``: ``NumberProtection.named_index``, what ``call_numbers`` is
    given); ``check``: the writer makes them itself too and compares (:meth:`compare`,
    :meth:`compare_named`, :meth:`compare_seal`)."""

    stored: dict[str, Any]
    opened: dict[str, Any]
    seal: str
    named: dict[str, str]
    check: bool

    def compare(self, numbers: NumberProtection, call_id: str, text: str, stored: Any, opened: Any) -> None:
        """The writer's own token text, columns and opened fields against the helper's (the
        token opened with the writer's keys: its nonce is its own)."""
        from pbx_recorder.errors import CryptoError, PreparedMismatch

        try:
            same_text = numbers.cipher.decrypt(str(self.stored.get("numbers")), f"calls/{call_id}") == text
        except CryptoError:
            same_text = False
        others = {k: v for k, v in stored.items() if k != "numbers"}
        if not same_text or others != {k: v for k, v in self.stored.items() if k != "numbers"} \
                or dict(opened) != self.opened:
            raise PreparedMismatch(f"the helper's numbers of call {call_id} are not the writer's")

    def compare_named(self, call_id: str, named: dict[str, str]) -> None:
        from pbx_recorder.errors import PreparedMismatch

        if named != self.named:
            raise PreparedMismatch(f"the helper's number index rows of call {call_id} are not the writer's")

    def compare_seal(self, call_id: str, seal: str) -> None:
        from pbx_recorder.errors import PreparedMismatch

        if seal != self.seal:
            raise PreparedMismatch(f"the helper's seal of call {call_id} is not the writer's")


@dataclass(frozen=True, slots=True)
class PreparedManifest:
    """A manifest's signature and the hash of its canonical bytes, made by the helper."""

    signature: str
    sha256: str
    data: bytes
    check: bool

    def compare(self, recording_id: str, data: bytes, signature: str) -> None:
        from pbx_recorder.errors import PreparedMismatch

        if data != self.data or signature != self.signature:
            raise PreparedMismatch(f"the helper's manifest signature of {recording_id} is not the writer's")


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


Answer = tuple[str, str, bytes | None, str | None, Any]  # (kind, ident, bytes, signature, extra)


def _sign_jobs(keys: dict[str, Ed25519PrivateKey], form: SealForm | None, numbers: NumberProtection | None,
               jobs: Sequence[Job]) -> list[Answer]:
    """The helper's work for one chunk: (kind, ident, bytes, signature, extra), None where it
    cannot say.  ``extra``: for a new call with protected fields, given ``numbers``, its token
    columns and opened fields (``NumberProtection.seal_call_opened`` of the fields
    ``Catalog._protect_call`` takes for a new call) and the index of the numbers they name
    (``NumberProtection.named_index``); for a manifest, the hash of its bytes."""
    from pbx_recorder.catalog.protected_rows import CALL_FIELDS, CLEAR_DEFAULTS
    from pbx_recorder.catalog.seal_ahead import new_call_sealed_bytes
    from pbx_recorder.recording.signing import manifest_bytes

    out: list[Answer] = []
    for kind, ident, payload in jobs:
        data: bytes | None = None
        extra: Any = None
        try:
            if kind == SEAL and form is not None:
                data = new_call_sealed_bytes(form, payload)
                if data is not None and numbers is not None and any(f in payload for f in CALL_FIELDS):
                    plain = {f: payload[f] if f in payload else CLEAR_DEFAULTS[f] for f in CALL_FIELDS}
                    stored, opened = numbers.seal_call_opened(ident, plain)
                    named = numbers.named_index(plain["caller_num"], plain["callee_num"], plain["cdr"])
                    extra = (stored, opened, named)
            elif kind == MANIFEST:
                data = manifest_bytes(payload)
                extra = hashlib.sha256(data).hexdigest()
        except Exception:  # noqa: BLE001 -- the writer makes and signs these itself, with its errors
            data, extra = None, None
        key = keys.get(kind)
        sig = base64.b64encode(key.sign(data)).decode("ascii") if data is not None and key else None
        out.append((kind, ident, data, sig, extra))
    return out


def _numbers_of(keys: NumberKeys | None) -> NumberProtection | None:
    """The helper's copy of the catalog's number protection (writes only: one key each)."""
    if keys is None:
        return None
    from pbx_recorder.catalog.number_protection import BlindIndex, NumberCipher
    from pbx_recorder.catalog.protected_rows import NumberProtection

    key_id, aes_key, check, index_key = keys
    return NumberProtection(NumberCipher.fixed(key_id, aes_key, check), BlindIndex(index_key, alone=True))


def serve(conn: Connection) -> None:
    """The helper process: its keys and seal form first, then sign each chunk it is sent, until
    the socket closes.  It reads a chunk only when it has answered the one before: the writer
    sends from a thread of its own and reads the answers as it needs them, so a full socket
    either way only makes one side wait for the other to read, never both."""
    try:
        raw_keys, form, number_keys = conn.recv()
        keys = {kind: Ed25519PrivateKey.from_private_bytes(raw) for kind, raw in raw_keys.items()}
        numbers = _numbers_of(number_keys)
        probe: dict[str, Any] = {kind: base64.b64encode(k.sign(_PROBE)).decode("ascii")
                                 for kind, k in keys.items()}
        if numbers is not None:  # the writer opens the token and compares the index with its own
            probe["numbers"] = (numbers.cipher.encrypt(_PROBE.decode(), "probe"),
                                numbers.index.full(_PROBE_NUMBER), numbers.index.last4(_PROBE_NUMBER))
        conn.send(probe)
        while (jobs := conn.recv()) is not None:
            conn.send(_sign_jobs(keys, form, numbers, jobs))
    except (EOFError, OSError):
        return  # the writer is gone


@dataclass
class Presigned:
    """One batch's signatures made ahead: ``take`` what the writer is about to sign."""

    helper: SignAhead
    chunks: deque[list[tuple[str, str]]] = field(default_factory=deque)  # jobs of the chunks not read yet
    expected: set[tuple[str, str]] = field(default_factory=set)  # the jobs of those chunks
    ready: dict[tuple[str, str], tuple[bytes | None, str | None, Any]] = field(default_factory=dict)
    #: what each job was sent (a call row's copy; the manifest object itself): a result is taken
    #: without being made again only for exactly that input
    sent: dict[tuple[str, str], Any] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    taken: int = 0  # results taken without the bytes made again, checked ones included
    checked: int = 0
    #: of those, per kind (calls, manifests): each kind's 1st, 33rd ... is checked
    _taken_of: dict[str, int] = field(default_factory=dict)
    sender: threading.Thread | None = None

    def _answer(self, key: tuple[str, str], *,
                take: bool = True) -> tuple[bytes | None, str | None, Any] | None:
        """The helper's answer to job ``key``, waited for while it is on its way; ``take`` False:
        left in place (for ``take``, the signature alone)."""
        # (a job sent once and taken already -- the same call twice in a batch -- is not waited for)
        while key not in self.ready and key in self.expected and not self.helper.broken:
            if not self._read_chunk():
                break
        return self.ready.pop(key, None) if take else self.ready.get(key)

    def take(self, kind: str, ident: str, data: bytes) -> str | None:
        """The signature made ahead for ``data`` as job ``(kind, ident)``, or None (sign it yourself)."""
        made = self._answer((kind, ident))
        if made is not None and made[0] == data and made[1] is not None:
            self.hits += 1
            return made[1]
        self.misses += 1
        return None

    def _check_next(self, kind: str) -> bool:
        n = self._taken_of.get(kind, 0)
        self._taken_of[kind] = n + 1
        check = n % CHECK_EVERY == 0
        self.taken += 1
        self.checked += check
        return check

    def take_call(self, call_id: str, row: Any) -> PreparedCall | None:
        """A new call's token columns, opened fields, number index and seal made by the helper, when
        ``row`` is the row it was sent and it made them all; None: the writer makes them (and signs)."""
        key = (SEAL, call_id)
        if key not in self.sent or self.sent[key] != row:
            return None
        made = self._answer(key, take=False)
        if made is None or made[0] is None or made[1] is None or made[2] is None:
            return None  # (left for ``take``: a signature without the rest is still the writer's)
        del self.ready[key]
        self.hits += 1
        stored, opened, named = made[2]  # (fresh from the helper's message: nobody else holds them)
        return PreparedCall(stored, opened, made[1], named, self._check_next(SEAL))

    def take_manifest(self, recording_id: str, manifest: Any) -> PreparedManifest | None:
        """The signature and bytes' hash of the manifest the helper was sent as ``recording_id``,
        when ``manifest`` is that very object; None: the writer makes them."""
        key = (MANIFEST, recording_id)
        if self.sent.get(key) is not manifest:
            return None
        made = self._answer(key)
        if made is None or made[0] is None or made[1] is None or not isinstance(made[2], str):
            return None  # (the writer signs: ``take`` then counts the miss)
        self.hits += 1
        return PreparedManifest(made[1], made[2], made[0], self._check_next(MANIFEST))

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
        for kind, ident, data, sig, extra in got:
            self.ready[(kind, ident)] = (data, sig, extra)
        return True

    def finish(self) -> None:
        """Read what is still on its way (the next batch's answers must start clean)."""
        while self.chunks and not self.helper.broken:
            if not self._read_chunk():
                break
        self.chunks.clear()
        self.expected.clear()
        self.ready.clear()
        self.sent.clear()
        if self.sender is not None:
            self.sender.join(WAIT_S)  # (a helper that stopped reading is killed: its send ends)


class SignAhead:
    """One helper process signing for a writer: seals with ``seal_key``, manifests with
    ``manifest_key`` (either may be None).  Started on the first batch, stopped by ``close``;
    after a failure it is ``broken`` and the writer signs everything itself."""

    def __init__(self, seal_key: Ed25519PrivateKey | None, manifest_key: Ed25519PrivateKey | None,
                 form: SealForm | None, numbers: NumberKeys | None = None,
                 writer_numbers: NumberProtection | None = None) -> None:
        self.keys = {k: v for k, v in ((SEAL, seal_key), (MANIFEST, manifest_key)) if v is not None}
        self.publics = {kind: _public(key) for kind, key in self.keys.items()}
        self.form = form
        #: with ``numbers`` (and the seal key and form) it also makes new calls' tokens and blind
        #: indexes, checked at its start against ``writer_numbers``, the writer's own
        self.numbers = numbers if form is not None and form.protected and SEAL in self.keys else None
        self._writer_numbers = writer_numbers
        self.broken = False
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def serves(self, kind: str, key: Any) -> bool:
        """This helper signs ``kind`` with ``key`` (the same key: compared by its public bytes)."""
        mine = self.publics.get(kind)
        return mine is not None and isinstance(key, Ed25519PrivateKey) and _public(key) == mine

    def serves_all(self, seal_key: Any, manifest_key: Any, form: SealForm | None,
                   numbers: NumberKeys | None = None) -> bool:
        """This helper is the one for these keys, this seal form and these number keys (a
        rotated catalog key or index key: another helper)."""
        wanted = {k: v for k, v in ((SEAL, seal_key), (MANIFEST, manifest_key)) if v is not None}
        numbers = numbers if form is not None and form.protected and SEAL in wanted else None
        return (set(self.keys) == set(wanted) and all(self.serves(k, v) for k, v in wanted.items())
                and self.form == form and self.numbers == numbers)

    @property
    def prepares(self) -> bool:
        """It makes new calls' tokens and seals and manifests' hashes (the writer takes them
        without making them again, :meth:`Presigned.take_call`), not only signatures."""
        return self.numbers is not None

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
            self._conn.send(({kind: _raw(key) for kind, key in self.keys.items()}, self.form, self.numbers))
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
        if self.numbers is not None and not self._numbers_agree(probe.get("numbers")):
            return self._fail("its numbers token or blind index is not the writer's")
        return True

    def _numbers_agree(self, made: Any) -> bool:
        """The helper's probe token opens with the writer's keys, and its index values are the
        writer's own."""
        from pbx_recorder.errors import CryptoError

        mine = self._writer_numbers
        if mine is None or not isinstance(made, tuple) or len(made) != 3:
            return False
        token, full, last4 = made
        try:
            opened = mine.cipher.decrypt(str(token), "probe")
        except CryptoError:
            return False
        return (opened == _PROBE.decode() and full == mine.index.full(_PROBE_NUMBER)
                and last4 == mine.index.last4(_PROBE_NUMBER))

    def give_up(self, why: str) -> None:
        """Stop it for good (the writer found a result of it that is not its own)."""
        self._fail(why)

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
        presigned.sent.update(((kind, ident), payload) for kind, ident, payload in jobs)
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
