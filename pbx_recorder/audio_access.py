"""Authorized reads of recorded audio: role check, audit row, then decrypt (or copy).

Who may listen is ``pbx_recorder.core.access_policy`` (action ``recordings.read_audio``: admin,
supervisor, auditor).  ``agent`` (and anything unknown) may not: the refusal is itself
audited, then ``AccessDenied`` is raised.  Every read of recorded audio goes through here.
The plaintext hash is checked against the catalog (``sha256`` for a plain object; for an
encrypted one the manifest's ``processing.plaintext_sha256``, else ``audio_sha256``) before
a path is published.  The object read must be the recording's ``audio`` object: an envelope of
another of its objects (a leg, a kept original, the manifest) put in its place is refused
(``ObjectRoleMismatch``) from its header, before any audio is released.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from pbx_recorder import audit_trail
from pbx_recorder.core.access_policy import check, roles_for
from pbx_recorder.errors import AccessDenied, IntegrityError
from pbx_recorder.recording.recording_objects import AUDIO
from pbx_recorder.recording.verify import expected_plaintext_sha256
from storage import atomic, envelope
from storage.base import Tier
from storage.envelope import decrypt_chunks
from storage.hashing import digests_equal
from storage.keyring import KeyRing

log = logging.getLogger(__name__)

READ_ACTION = "recordings.read_audio"
READ_ROLES = roles_for(READ_ACTION)


def _audit(conn: sqlite3.Connection, now: float, actor: str, role: str, action: str, target: str,
           detail: Mapping[str, Any]) -> None:
    audit_trail.record(conn, actor=actor, role=role, action=action, target=target, detail=detail, now=now)
    if conn.in_transaction and conn.isolation_level is not None:
        conn.commit()  # the audit row must survive whatever happens next


def open_plaintext(conn: sqlite3.Connection, recording: Mapping[str, Any], tier: Tier,
                   keyring: KeyRing | None, *, actor: str, role: str, dst: str | Path | BinaryIO,
                   now: float) -> tuple[str, int]:
    """Write the recording's audio (decrypted if needed) to ``dst``; returns (sha256, size)."""
    rid = str(recording["recording_id"])
    where = {"tier": tier.name, "key": recording.get("storage_key", "")}
    if not check(role, READ_ACTION):
        _audit(conn, now, actor, role, "read_audio_denied", rid, where)
        log.warning("recording %s: audio read by %s refused (role %s)", rid, actor, role)
        raise AccessDenied(f"role {role!r} may not read recorded audio")
    _audit(conn, now, actor, role, "read_audio", rid, where)
    encrypted = bool(recording.get("encrypted"))
    expected = expected_plaintext_sha256(recording) if encrypted else str(recording.get("sha256") or "")
    if encrypted and keyring is None:
        raise AccessDenied(f"recording {rid} is encrypted and no key ring is configured")
    h, size = hashlib.sha256(), 0

    def checked(blocks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal size
        for block in blocks:
            h.update(block)
            size += len(block)
            yield block
        if expected and not digests_equal(h.hexdigest(), expected):
            raise IntegrityError(f"recording {rid}: audio hash differs from the catalog")

    with tier.open(str(recording["storage_key"])) as src:
        if encrypted:
            assert keyring is not None
            blocks = decrypt_chunks(src, keyring, wrapped_key=recording.get("wrapped_key") or None,
                                    key_id=recording.get("key_id") or None, expected_aad=rid,
                                    expected_role=AUDIO)
        else:
            blocks = atomic.read_chunks(src)  # type: ignore[assignment]
        if isinstance(dst, str | Path):
            atomic.write_stream(dst, checked(blocks), mode=0o600)
        else:
            for block in checked(blocks):
                dst.write(block)
    return h.hexdigest(), size


def plaintext_size(recording: Mapping[str, Any], tier: Tier, *, role: str = AUDIO) -> int:
    """How many bytes of audio the recording holds (decrypted, when it is encrypted).  The
    player asks this first: an envelope that is not this recording's object ``role`` (its
    ``audio``; the waveform reads a leg as ``leg:<role>``) is refused here (``CryptoError``),
    before any header or byte of the answer."""
    key = str(recording["storage_key"])
    info = tier.stat(key)
    stored = int(info.size) if info is not None else int(recording.get("size") or 0)
    if not recording.get("encrypted"):
        return stored
    with tier.open(key) as src:
        header = envelope.read_header(src)
    envelope.check_binding(header, expected_aad=str(recording["recording_id"]), expected_role=role)
    return envelope.plaintext_size(header, stored)


def plaintext_range(recording: Mapping[str, Any], tier: Tier, keyring: KeyRing | None,
                    start: int, stop: int, *, role: str = AUDIO) -> Iterator[bytes]:
    """Audio bytes ``[start, stop)`` of the recording, decrypted on the fly, for a reader whose
    right to listen was already checked and audited (the operator service,
    ``pbx_recorder.service.api_audio``).  Encrypted segments are authenticated one by one, and
    the envelope must be the recording's object ``role`` (``audio`` unless the caller reads a
    leg); a plain object read whole is checked against the catalog's hash at its end."""
    rid = str(recording["recording_id"])
    if recording.get("encrypted") and keyring is None:
        raise AccessDenied(f"recording {rid} is encrypted and no key ring is configured")
    with tier.open(str(recording["storage_key"])) as src:
        if recording.get("encrypted"):
            assert keyring is not None
            yield from envelope.decrypt_range(src, keyring, start, stop,
                                              wrapped_key=recording.get("wrapped_key") or None,
                                              key_id=recording.get("key_id") or None, expected_aad=rid,
                                              expected_role=role)
            return
        whole = start == 0 and stop >= int(recording.get("size") or 0) > 0
        h = hashlib.sha256()
        pos = 0
        if start:
            try:
                src.seek(start)
                pos = start
            except (OSError, AttributeError, ValueError):
                pass  # not seekable: read past the head below
        for block in atomic.read_chunks(src):
            lo, hi = max(start - pos, 0), min(stop - pos, len(block))
            if whole:
                h.update(block)
            if hi > lo:
                yield block[lo:hi]
            pos += len(block)
            if pos >= stop:
                break
        expected = str(recording.get("sha256") or "")
        if whole and pos >= stop and expected and not digests_equal(h.hexdigest(), expected):
            raise IntegrityError(f"recording {rid}: audio hash differs from the catalog")
