"""Object-level encodings for the S3 tier: full keys, user metadata, tags, the
``x-amz-restore`` header, and a reader that hashes the whole stream and each multipart
part in the single pass that feeds the upload."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import quote, unquote, urlencode

from pbx_recorder.errors import StorageError

MAX_KEY_BYTES = 1024
# The AWS classes that need a restore before a GET: the default of an S3 tier's
# ``archive_classes`` (servers with cloud tiers let the admin name theirs).
DEFAULT_ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
COLD_CLASSES = frozenset(DEFAULT_ARCHIVE_CLASSES)


def check_key(key: str) -> str:
    """Refuse keys that could escape the prefix or confuse listings; return ``key``."""
    if not isinstance(key, str) or not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise StorageError("invalid storage key: empty or too long")
    if any(ord(c) < 32 or ord(c) == 127 for c in key) or "\\" in key:
        raise StorageError("invalid storage key: control character or backslash")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StorageError("invalid storage key: not valid UTF-8") from exc
    if key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise StorageError("invalid storage key: absolute, or an empty, '.' or '..' segment")
    return key


def encode_metadata(meta: Mapping[str, str]) -> dict[str, str]:
    """User metadata: names lower-case with '-' (call_id -> call-id), values ASCII (%-quoted)."""
    out: dict[str, str] = {}
    for name, value in meta.items():
        clean = re.sub(r"[^a-z0-9-]", "-", str(name).lower().replace("_", "-"))
        text = str(value)
        out[clean] = text if text.isascii() and text.isprintable() else "q:" + quote(text, safe="")
    return out


def decode_metadata(meta: Mapping[str, str]) -> dict[str, str]:
    return {k: (unquote(v[2:]) if v.startswith("q:") else v) for k, v in meta.items()}


def encode_tags(tags: Mapping[str, str]) -> str:
    return urlencode({str(k): str(v) for k, v in tags.items()})


def tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]


def restore_state(header: str | None) -> str:
    """``x-amz-restore`` -> "" | "in_progress" | "done"."""
    if not header:
        return ""
    if re.search(r'ongoing-request\s*=\s*"?true', header):
        return "in_progress"
    return "done"


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def read_up_to(raw: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, or fewer only at EOF (pipes and sockets may return short reads)."""
    first = raw.read(n)
    if len(first) == n or not first:
        return first
    chunks, got = [first], len(first)
    while got < n:
        block = raw.read(n - got)
        if not block:
            break
        chunks.append(block)
        got += len(block)
    return b"".join(chunks)


class ChainedReader:
    """``head`` bytes already read, then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = memoryview(head)
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            take = len(self._head) if n < 0 else min(n, len(self._head))
            block = bytes(self._head[:take])
            self._head = self._head[take:]
            if n < 0:
                block += self._raw.read()
            return block
        return self._raw.read(n)


class PartHashingReader:
    """Feeds an upload while hashing: SHA-256 of everything read, plus SHA-256 of every
    ``part_size`` slice so a multipart composite checksum can be checked without a download.
    It exposes only ``read`` so s3transfer reads it sequentially (non-seekable path)."""

    def __init__(self, raw: BinaryIO | ChainedReader, part_size: int) -> None:
        self._raw = raw
        self._part_size = part_size
        self._whole = hashlib.sha256()
        self._part = hashlib.sha256()
        self._in_part = 0
        self.part_digests: list[bytes] = []
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        block = self._raw.read(n)
        self._whole.update(block)
        self.size += len(block)
        view = memoryview(block)
        while view:
            take = min(len(view), self._part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self._part_size:
                self.part_digests.append(self._part.digest())
                self._part, self._in_part = hashlib.sha256(), 0
        return block

    def hexdigest(self) -> str:
        return self._whole.hexdigest()

    def composite_b64(self) -> str:
        """AWS composite checksum ``base64(sha256(part digests...))-N`` for a multipart upload."""
        parts = list(self.part_digests)
        if self._in_part:
            parts.append(self._part.digest())
        joined = hashlib.sha256(b"".join(parts)).digest()
        return f"{base64.b64encode(joined).decode()}-{len(parts)}"
