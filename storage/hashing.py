"""Streaming SHA-256: hash while reading or writing, tagged ``sha256:<hex>`` form,
constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
TAG = "sha256:"


def tagged(hexdigest: str) -> str:
    """``"ab12..." -> "sha256:ab12..."`` (idempotent)."""
    return hexdigest if hexdigest.startswith(TAG) else TAG + hexdigest


_HEX64 = re.compile(r"[0-9a-f]{64}")


def untag(value: str) -> str:
    """Hex digest from either form; ValueError for another algorithm tag or bad hex."""
    text = value.strip().lower()
    if ":" in text:
        alg, _, text = text.partition(":")
        if alg != "sha256":
            raise ValueError(f"unsupported hash algorithm {alg!r}")
    if _HEX64.fullmatch(text) is None:  # (a regex: verify compares millions of these)
        raise ValueError("not a SHA-256 hex digest")
    return text


def digests_equal(a: str, b: str) -> bool:
    """Compare two digests (tagged or not) in constant time; malformed -> False."""
    try:
        return hmac.compare_digest(untag(a).encode(), untag(b).encode())
    except ValueError:
        return False


def hash_stream(stream: BinaryIO, chunk: int = CHUNK) -> tuple[str, int]:
    """(hex digest, byte count) of the rest of ``stream``."""
    h = hashlib.sha256()
    size = 0
    while True:
        block = stream.read(chunk)
        if not block:
            break
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


def hash_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    with open(path, "rb") as f:
        return hash_stream(f)[0]


class HashingReader:
    """Wraps a binary stream; hashes every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._h = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        block = self._raw.read(n)
        self._h.update(block)
        self.size += len(block)
        return block

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class HashingWriter:
    """Wraps a binary stream; hashes every byte written through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._h.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()
