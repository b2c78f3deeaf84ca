"""Encryption at rest: per-file AES-256-GCM in chunked segments, data key wrapped by a master key.

File format, version 1 (all integers big-endian)::

    "PBXR"              4   magic
    version             1   0x01
    flags               1   0x00 (reserved)
    chunk_size          4   plaintext bytes per segment (1 KiB .. 16 MiB; default 64 KiB)
    base_nonce         12   random
    key_id_len, key_id  1+k master key id (ASCII) the DEK was wrapped with at write time
    wrapped_len, wdek   2+w DEK wrapped with AES-KW (RFC 3394) under that key -> 40 bytes
    aad_len, aad        2+a caller context (e.g. the recording id), authenticated, not secret
    segment 0..n-1          AES-256-GCM(DEK, nonce_i, plaintext_i, ad_i) = ciphertext || 16-byte tag

    nonce_i = base_nonce XOR i (i in the low 8 bytes)
    ad_i    = "PBXR-seg1" || SHA-256(header bytes) || uint64(i) || final flag (0x01 on the last)

Every segment holds ``chunk_size`` plaintext bytes except the last (0..chunk_size; an empty file
is one empty final segment).  Binding the header hash, the index and the final flag into each
segment's tag detects header edits, reordering, dropped segments and truncation, even at a
segment boundary.  Plaintext is only released segment by segment after its tag verified; to a
path it is published atomically only when the whole file verified.

Where the wrapped DEK lives: the catalog row (recordings.key_id + wrapped_key) carries the
*current* one.  A self-describing file (``key_in_header=True``, e.g. a catalog backup under its
backup key) also carries the wrapped DEK *as written* in its header.  Recordings are written
with ``key_in_header=False`` (``wrapped_len`` 0): their DEK exists only in the catalog row (and
in catalog backups, each encrypted under a backup key that erasure destroys), so erasing the
row *crypto-shreds* every ciphertext copy of the recording wherever it lies -- backups, a cloud
tier's target bucket, an archive -- without having to find it.  The price: without the catalog
(or a readable catalog backup) the master key alone no longer opens the audio.  Key rotation
(``rewrap``) re-wraps the DEK under the new master key and updates only the catalog; the audio
object is never rewritten (it may sit under S3 Object Lock, which forbids that anyway).  After a
rotation the header copy is stale and superseded: ``decrypt_stream`` takes the catalog's
``wrapped_key``/``key_id`` and the header copy is only a fallback.  Rotation therefore protects
against a *future* loss of the old master key once it is retired/destroyed, not against one that
already leaked (that needs re-encryption).

SSE-KMS: when the cold tier is S3 with SSE-KMS, the bucket already encrypts at rest with a KMS
key; operators may then set ``encryption.enabled: false`` to skip this envelope (one less key to
manage, plain objects for S3-side tooling).  The envelope adds protection against anyone with
bucket read access and covers the local tiers, so keep it on when those matter.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from pbx_recorder.errors import CryptoError, StorageError
from storage import atomic
from storage.keyring import KeyRing, check_key_id

MAGIC = b"PBXR"
VERSION = 1
DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK, MAX_CHUNK = 1024, 16 * 1024 * 1024
TAG_LEN = 16
NONCE_LEN = 12
SEG_LABEL = b"PBXR-seg1"
_FIXED = struct.Struct(">4sBBI12s")


@dataclass(frozen=True, slots=True)
class EnvelopeInfo:
    key_id: str
    wrapped_key: str  # base64 of the AES-KW wrapped DEK (what the catalog stores)
    plaintext_sha256: str
    ciphertext_sha256: str
    size: int  # plaintext bytes
    ciphertext_size: int = 0
    aad: bytes = b""


@dataclass(frozen=True, slots=True)
class Header:
    chunk_size: int
    base_nonce: bytes
    key_id: str
    wrapped_key: bytes
    aad: bytes
    raw: bytes  # the header bytes exactly as in the file

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CryptoError("wrapped key is not valid base64") from exc


def wrap_key(dek: bytes, keyring: KeyRing, key_id: str) -> bytes:
    return aes_key_wrap(keyring.get(key_id), dek)


def unwrap_key(wrapped: bytes, keyring: KeyRing, key_id: str) -> bytes:
    try:
        dek = aes_key_unwrap(keyring.get(key_id), wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise CryptoError(f"data key does not unwrap with master key {key_id!r}") from exc
    if len(dek) != 32:
        raise CryptoError("unwrapped data key has the wrong length")
    return dek


def rewrap(wrapped_key: str | bytes, old_key_id: str, keyring: KeyRing, new_key_id: str) -> str:
    """Re-wrap a DEK under ``new_key_id`` without touching the audio; returns base64."""
    dek = unwrap_key(_unb64(wrapped_key), keyring, old_key_id)
    return _b64(wrap_key(dek, keyring, new_key_id))


def build_header(chunk_size: int, base_nonce: bytes, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
    kid = check_key_id(key_id).encode("ascii")
    if len(aad) > 0xFFFF:
        raise CryptoError("associated data longer than 65535 bytes")
    return (_FIXED.pack(MAGIC, VERSION, 0, chunk_size, base_nonce) + bytes([len(kid)]) + kid
            + struct.pack(">H", len(wrapped)) + wrapped + struct.pack(">H", len(aad)) + aad)


def _read_exact(src: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        block = src.read(n - len(buf))
        if not block:
            raise CryptoError("encrypted file truncated inside its header")
        buf += block
    return buf


def read_header(src: BinaryIO) -> Header:
    fixed = _read_exact(src, _FIXED.size)
    magic, version, _flags, chunk_size, nonce = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise CryptoError("not a PBXR encrypted file (bad magic)")
    if version != VERSION:
        raise CryptoError(f"unsupported PBXR version {version}")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise CryptoError(f"implausible chunk size {chunk_size}")
    klen = _read_exact(src, 1)
    kid = _read_exact(src, klen[0])
    wlen = _read_exact(src, 2)
    wrapped = _read_exact(src, struct.unpack(">H", wlen)[0])
    alen = _read_exact(src, 2)
    aad = _read_exact(src, struct.unpack(">H", alen)[0])
    try:
        key_id = check_key_id(kid.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise CryptoError("key id in header is not ASCII") from exc
    raw = fixed + klen + kid + wlen + wrapped + alen + aad
    return Header(chunk_size, nonce, key_id, wrapped, aad, raw)


def _read_upto(src: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at end of stream (short reads of pipes are retried)."""
    buf = src.read(n)
    while buf and len(buf) < n:
        block = src.read(n - len(buf))
        if not block:
            break
        buf += block
    return buf


def _nonce(base: bytes, index: int) -> bytes:
    return base[:4] + (int.from_bytes(base[4:], "big") ^ index).to_bytes(8, "big")


def _segment_ad(header_digest: bytes, index: int, final: bool) -> bytes:
    return SEG_LABEL + header_digest + struct.pack(">QB", index, 1 if final else 0)


class _Encryptor:
    """Iterates over the encrypted file's blocks; ``info`` is set once exhausted."""

    def __init__(self, src: BinaryIO, keyring: KeyRing, key_id: str, aad: bytes, chunk_size: int,
                 wrapped_dek: bytes | None = None, key_in_header: bool = True) -> None:
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise CryptoError(f"chunk size must be within {MIN_CHUNK}..{MAX_CHUNK}")
        self.src, self.key_id, self.aad, self.chunk_size = src, key_id, aad, chunk_size
        if wrapped_dek is None:
            self.dek = AESGCM.generate_key(bit_length=256)
            self.wrapped = wrap_key(self.dek, keyring, key_id)
        else:  # another file of the same recording: same DEK, fresh random base nonce
            self.dek, self.wrapped = unwrap_key(wrapped_dek, keyring, key_id), wrapped_dek
        self.key_in_header = key_in_header
        self.info: EnvelopeInfo | None = None

    def __iter__(self) -> Iterator[bytes]:
        base = os.urandom(NONCE_LEN)
        in_header = self.wrapped if self.key_in_header else b""
        header = build_header(self.chunk_size, base, self.key_id, in_header, self.aad)
        hdig = hashlib.sha256(header).digest()
        gcm = AESGCM(self.dek)
        p_hash, c_hash = hashlib.sha256(), hashlib.sha256(header)
        size, csize = 0, len(header)
        yield header
        current, index = _read_upto(self.src, self.chunk_size), 0
        while True:
            nxt = _read_upto(self.src, self.chunk_size) if len(current) == self.chunk_size else b""
            final = not nxt
            p_hash.update(current)
            size += len(current)
            seg = gcm.encrypt(_nonce(base, index), current, _segment_ad(hdig, index, final))
            c_hash.update(seg)
            csize += len(seg)
            yield seg
            if final:
                break
            current, index = nxt, index + 1
        self.info = EnvelopeInfo(self.key_id, _b64(self.wrapped), p_hash.hexdigest(), c_hash.hexdigest(),
                                 size, csize, self.aad)



def _as_bytes(aad: bytes | str) -> bytes:
    return aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)


def _open_src(src: str | Path | BinaryIO) -> tuple[BinaryIO, bool]:
    if isinstance(src, str | Path):
        try:
            return open(src, "rb"), True
        except OSError as exc:
            raise StorageError(f"cannot open {Path(src).name}: {exc.strerror}") from exc
    return src, False


def _drain(blocks: Iterator[bytes] | _Encryptor, dst: str | Path | BinaryIO) -> None:
    if isinstance(dst, str | Path):
        atomic.write_stream(dst, blocks)
    else:
        for block in blocks:
            dst.write(block)


def encrypt_stream(src: str | Path | BinaryIO, dst: str | Path | BinaryIO, keyring: KeyRing, key_id: str,
                   aad: bytes | str = b"", *, chunk_size: int = DEFAULT_CHUNK,
                   wrapped_key: str | bytes | None = None, key_in_header: bool = True) -> EnvelopeInfo:
    """Encrypt ``src`` into ``dst`` (a path is written atomically) in one streaming pass.

    A new random DEK is made unless ``wrapped_key`` (under ``key_id``) is given to reuse one.
    ``key_in_header=False`` leaves the wrapped DEK out of the file: only ``info.wrapped_key``
    (kept by the caller, e.g. the catalog) can open it."""
    stream, owned = _open_src(src)
    try:
        wrapped = _unb64(wrapped_key) if wrapped_key is not None else None
        enc = _Encryptor(stream, keyring, key_id, _as_bytes(aad), chunk_size, wrapped, key_in_header)
        _drain(enc, dst)
    finally:
        if owned:
            stream.close()
    assert enc.info is not None
    return enc.info


def decrypt_chunks(src: BinaryIO, keyring: KeyRing, *, wrapped_key: str | bytes | None = None,
                   key_id: str | None = None, expected_aad: bytes | str | None = None) -> Iterator[bytes]:
    """Yield verified plaintext segments.  ``wrapped_key``/``key_id`` (the catalog's, current
    after rotations) override the header copy.  Raises CryptoError on any tampering."""
    header = read_header(src)
    if expected_aad is not None and header.aad != _as_bytes(expected_aad):
        raise CryptoError("encrypted file belongs to another recording (associated data differs)")
    wrapped = _unb64(wrapped_key) if wrapped_key is not None else header.wrapped_key
    if not wrapped:
        raise CryptoError("the data key of this file is not in it: it is held only by the catalog "
                          "(gone once the recording was erased)")
    gcm = AESGCM(unwrap_key(wrapped, keyring, key_id or header.key_id))
    hdig, seg_len = header.digest, header.chunk_size + TAG_LEN
    current, index = _read_upto(src, seg_len), 0
    while True:
        nxt = _read_upto(src, seg_len) if len(current) == seg_len else b""
        final = not nxt
        try:
            yield gcm.decrypt(_nonce(header.base_nonce, index), current, _segment_ad(hdig, index, final))
        except (InvalidTag, ValueError) as exc:
            raise CryptoError(f"encrypted segment {index} failed authentication "
                              "(tampered, truncated, reordered or wrong key)") from exc
        if final:
            return
        current, index = nxt, index + 1


def plaintext_size(header: Header, ciphertext_size: int) -> int:
    """How many plaintext bytes a file of ``ciphertext_size`` bytes with ``header`` holds (its
    segments are fixed-size, each with a tag; the last one may be short or empty)."""
    body = ciphertext_size - len(header.raw)
    seg_len = header.chunk_size + TAG_LEN
    segments = max(1, -(-body // seg_len))
    size = body - segments * TAG_LEN
    if body < TAG_LEN or size < 0:
        raise CryptoError("encrypted file is shorter than its segments")
    return size


def decrypt_range(src: BinaryIO, keyring: KeyRing, start: int, stop: int, *,
                  wrapped_key: str | bytes | None = None, key_id: str | None = None,
                  expected_aad: bytes | str | None = None) -> Iterator[bytes]:
    """Plaintext bytes ``[start, stop)``: the reader seeks to the segment that holds ``start`` (or
    reads past the ones before it when ``src`` cannot seek) and decrypts from there, so a seek
    into a long recording costs one segment, not the file.  Every segment released is
    authenticated exactly as :func:`decrypt_chunks` does (index and final flag bound in)."""
    header = read_header(src)
    if expected_aad is not None and header.aad != _as_bytes(expected_aad):
        raise CryptoError("encrypted file belongs to another recording (associated data differs)")
    wrapped = _unb64(wrapped_key) if wrapped_key is not None else header.wrapped_key
    if not wrapped:
        raise CryptoError("the data key of this file is not in it: it is held only by the catalog")
    gcm = AESGCM(unwrap_key(wrapped, keyring, key_id or header.key_id))
    hdig, seg_len = header.digest, header.chunk_size + TAG_LEN
    index = max(0, start) // header.chunk_size
    if index:
        try:
            src.seek(len(header.raw) + index * seg_len)
        except (OSError, AttributeError, ValueError):
            for _ in range(index):
                _read_upto(src, seg_len)
    pos = index * header.chunk_size
    current = _read_upto(src, seg_len)
    while pos < stop:
        nxt = _read_upto(src, seg_len) if len(current) == seg_len else b""
        final = not nxt
        try:
            plain = gcm.decrypt(_nonce(header.base_nonce, index), current, _segment_ad(hdig, index, final))
        except (InvalidTag, ValueError) as exc:
            raise CryptoError(f"encrypted segment {index} failed authentication "
                              "(tampered, truncated, reordered or wrong key)") from exc
        lo, hi = max(start - pos, 0), min(stop - pos, len(plain))
        if hi > lo:
            yield plain[lo:hi]
        if final:
            return
        pos, current, index = pos + len(plain), nxt, index + 1


def decrypt_stream(src: str | Path | BinaryIO, dst: str | Path | BinaryIO, keyring: KeyRing, *,
                   wrapped_key: str | bytes | None = None, key_id: str | None = None,
                   expected_aad: bytes | str | None = None) -> tuple[str, int]:
    """Decrypt ``src`` into ``dst``; returns (plaintext sha256 hex, size).

    A path ``dst`` is published only if every segment verified.  A stream ``dst`` may have
    received verified leading segments before a CryptoError: the caller must discard it.
    """
    stream, owned = _open_src(src)
    h, size = hashlib.sha256(), 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for block in decrypt_chunks(stream, keyring, wrapped_key=wrapped_key, key_id=key_id,
                                    expected_aad=expected_aad):
            h.update(block)
            size += len(block)
            yield block

    try:
        _drain(counted(), dst)
    finally:
        if owned:
            stream.close()
    return h.hexdigest(), size


class EncryptStage:
    """Shipper ``prepare_stage``: ``(path, manifest) -> (path + ".pbxr", manifest)``.

    The associated data is the recording id, so an object copied onto another recording's
    row fails to decrypt.  All files of one recording (dual-channel legs) share one DEK (each
    with its own random base nonce) so the catalog's single ``wrapped_key`` covers them all
    and a rotation re-wraps them together.  Records in ``manifest.processing``: ``encrypted``,
    ``key_id``, ``wrapped_key`` (catalog columns), ``envelope`` ("PBXR1"), ``plaintext_sha256``
    of the primary (first) file -- differs from ``audio_sha256`` when a transcode stage ran
    first -- and per-file ``encrypted_files`` {name: {plaintext_sha256, ciphertext_sha256, size}}.

    The files carry no copy of the wrapped DEK (``key_in_header=False``): the catalog row is
    its only home, so erasing the row crypto-shreds every copy.  :meth:`seal_sidecar` puts the
    manifest sidecar (numbers, consent evidence) in the same envelope under the same DEK.
    """

    SUFFIX = ".pbxr"
    SIDECAR_AAD = ":manifest"  # appended to the recording id: a sidecar never opens as audio

    def __init__(self, keyring: KeyRing, key_id: str, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.keyring, self.key_id, self.chunk_size = keyring, check_key_id(key_id), chunk_size
        keyring.get(key_id)  # fail at start-up, not at the first call

    def __call__(self, path: Path, manifest: Any) -> tuple[Path, Any]:
        processing = dict(getattr(manifest, "processing", {}) or {})
        reuse = processing.get("wrapped_key") if processing.get("key_id") == self.key_id else None
        out = path.with_name(path.name + self.SUFFIX)
        info = encrypt_stream(path, out, self.keyring, self.key_id, manifest.recording_id,
                              chunk_size=self.chunk_size, wrapped_key=reuse, key_in_header=False)
        if "encrypted_files" not in processing:  # the shipper stages files in order: this is the primary
            processing["plaintext_sha256"] = info.plaintext_sha256
        files = dict(processing.get("encrypted_files", {}))
        files[path.name] = {"plaintext_sha256": info.plaintext_sha256,
                            "ciphertext_sha256": info.ciphertext_sha256, "size": info.size}
        processing.update(encrypted=True, key_id=info.key_id, wrapped_key=info.wrapped_key,
                          envelope=f"PBXR{VERSION}", encrypted_files=files, key_in_header=False)
        return out, dataclasses.replace(manifest, processing=processing)

    def seal_sidecar(self, path: Path, manifest: Any) -> Path:
        """Encrypt the manifest sidecar at ``path`` under the recording's DEK (the one the audio
        stages used; a new one when no audio file was encrypted); returns the sealed file."""
        processing = getattr(manifest, "processing", {}) or {}
        reuse = processing.get("wrapped_key") if processing.get("key_id") == self.key_id else None
        if reuse is None:
            raise CryptoError(f"recording {manifest.recording_id}: no data key to seal its manifest with")
        out = path.with_name(path.name + self.SUFFIX)
        encrypt_stream(path, out, self.keyring, self.key_id, manifest.recording_id + self.SIDECAR_AAD,
                       chunk_size=self.chunk_size, wrapped_key=reuse, key_in_header=False)
        return out
