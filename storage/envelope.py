"""Encryption at rest: per-file AES-256-GCM in chunked segments, data key wrapped by a master key.

File format, version 2 (all integers big-endian)::

    "PBXR"              4   magic
    version             1   0x02 (0x01 is still read: see "Version 1" below)
    flags               1   0x00 (reserved)
    chunk_size          4   plaintext bytes per segment (1 KiB .. 16 MiB; default 64 KiB)
    base_nonce         12   random
    key_id_len, key_id  1+k master key id (ASCII) the DEK was wrapped with at write time
    wrapped_len, wdek   2+w DEK wrapped with AES-KW (RFC 3394) under that key -> 40 bytes
    aad_len, aad        2+a caller context (e.g. the recording id), authenticated, not secret
    role_len, role      1+r which object of the recording this is (UTF-8, the names of
                            ``pbx_recorder.recording.recording_objects``: "audio", "leg:<role>",
                            "original[:<role>]", "manifest"; "" for a file that is no recording's)
    segment 0..n-1          AES-256-GCM(DEK, nonce_i, plaintext_i, ad_i) = ciphertext || 16-byte tag

    nonce_i = base_nonce XOR i (i in the low 8 bytes)
    ad_i    = "PBXR-seg2" || SHA-256(header bytes) || uint64(i) || final flag (0x01 on the last)

Every segment holds ``chunk_size`` plaintext bytes except the last (0..chunk_size; an empty file
is one empty final segment).  Binding the header hash, the index and the final flag into each
segment's tag detects header edits, reordering, dropped segments and truncation, even at a
segment boundary.  Plaintext is only released segment by segment after its tag verified; to a
path it is published atomically only when the whole file verified.

Why the role: all objects of one recording (the audio, each leg of a two-leg recording, kept
originals, the manifest sidecar) share one DEK and the recording id as associated data, so
without it a leg's ciphertext put in place of the main object opens as the main object.  A
reader that says which object it opens (``expected_role``) refuses an envelope of another role
with :class:`~pbx_recorder.errors.ObjectRoleMismatch` after reading the header, before any
plaintext; the role is authenticated like every header byte (an edited role fails segment 0).

Version 1 (written up to the release that introduced version 2): the same without the role
field, segment label "PBXR-seg1".  It is still read, with no role to check, because older
recordings hold it.  That is not a downgrade path: a version-2 envelope cannot be rewritten as a
version-1 one (the version byte and the role are in the header every segment's tag covers, and
the labels differ), and nothing ever re-encrypts an object, so version-1 envelopes exist only
under the DEKs of recordings all of whose objects were written before the upgrade.  For those
the swap stays possible at this level; ``verify`` finds it by the stored bytes' SHA-256 that the
ledger's ``stored`` entry recorded for each object.

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

from pbx_recorder.errors import CryptoError, ObjectRoleMismatch, StorageError
from storage import atomic
from storage.keyring import KeyRing, check_key_id

MAGIC = b"PBXR"
VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK, MAX_CHUNK = 1024, 16 * 1024 * 1024
TAG_LEN = 16
NONCE_LEN = 12
SEG_LABELS = {1: b"PBXR-seg1", 2: b"PBXR-seg2"}
MAX_ROLE = 255
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
    role: str = ""  # which object of the recording (version 2 header)


@dataclass(frozen=True, slots=True)
class Header:
    chunk_size: int
    base_nonce: bytes
    key_id: str
    wrapped_key: bytes
    aad: bytes
    raw: bytes  # the header bytes exactly as in the file
    version: int = VERSION
    role: str = ""  # "" in a version-1 header (it has no role field)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    def segment_ad(self, index: int, final: bool) -> bytes:
        return _segment_ad(SEG_LABELS[self.version], self.digest, index, final)


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


def build_header(chunk_size: int, base_nonce: bytes, key_id: str, wrapped: bytes, aad: bytes,
                 role: str = "") -> bytes:
    """A version-2 header (the only version written)."""
    kid = check_key_id(key_id).encode("ascii")
    if len(aad) > 0xFFFF:
        raise CryptoError("associated data longer than 65535 bytes")
    role_bytes = role.encode("utf-8")
    if len(role_bytes) > MAX_ROLE:
        raise CryptoError(f"object role longer than {MAX_ROLE} bytes")
    return (_FIXED.pack(MAGIC, VERSION, 0, chunk_size, base_nonce) + bytes([len(kid)]) + kid
            + struct.pack(">H", len(wrapped)) + wrapped + struct.pack(">H", len(aad)) + aad
            + bytes([len(role_bytes)]) + role_bytes)


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
    if version not in READABLE_VERSIONS:
        raise CryptoError(f"unsupported PBXR version {version}")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise CryptoError(f"implausible chunk size {chunk_size}")
    klen = _read_exact(src, 1)
    kid = _read_exact(src, klen[0])
    wlen = _read_exact(src, 2)
    wrapped = _read_exact(src, struct.unpack(">H", wlen)[0])
    alen = _read_exact(src, 2)
    aad = _read_exact(src, struct.unpack(">H", alen)[0])
    rlen = _read_exact(src, 1) if version >= 2 else b""
    role_bytes = _read_exact(src, rlen[0]) if rlen else b""
    try:
        key_id = check_key_id(kid.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise CryptoError("key id in header is not ASCII") from exc
    try:
        role = role_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CryptoError("object role in header is not UTF-8") from exc
    raw = fixed + klen + kid + wlen + wrapped + alen + aad + rlen + role_bytes
    return Header(chunk_size, nonce, key_id, wrapped, aad, raw, version, role)


def check_binding(header: Header, *, expected_aad: bytes | str | None = None,
                  expected_role: str | None = None) -> None:
    """Refuse an envelope of another recording (``expected_aad``) or of another object of this
    recording (``expected_role``; a version-1 header has no role: accepted, see the module doc).
    Raises before any segment is decrypted; the header itself is authenticated by segment 0."""
    if expected_aad is not None and header.aad != _as_bytes(expected_aad):
        raise CryptoError("encrypted file belongs to another recording (associated data differs)")
    if expected_role is not None and header.version >= 2 and header.role != expected_role:
        found = f"the recording's {header.role!r} object" if header.role else "an object with no role"
        raise ObjectRoleMismatch(f"encrypted object is {found}, not its {expected_role!r} object "
                                 "(put in its place)")


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


def _segment_ad(label: bytes, header_digest: bytes, index: int, final: bool) -> bytes:
    return label + header_digest + struct.pack(">QB", index, 1 if final else 0)


class _Encryptor:
    """Iterates over the encrypted file's blocks; ``info`` is set once exhausted."""

    def __init__(self, src: BinaryIO, keyring: KeyRing, key_id: str, aad: bytes, chunk_size: int,
                 wrapped_dek: bytes | None = None, key_in_header: bool = True, role: str = "") -> None:
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise CryptoError(f"chunk size must be within {MIN_CHUNK}..{MAX_CHUNK}")
        self.src, self.key_id, self.aad, self.chunk_size, self.role = src, key_id, aad, chunk_size, role
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
        header = build_header(self.chunk_size, base, self.key_id, in_header, self.aad, self.role)
        hdig, label = hashlib.sha256(header).digest(), SEG_LABELS[VERSION]
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
            seg = gcm.encrypt(_nonce(base, index), current, _segment_ad(label, hdig, index, final))
            c_hash.update(seg)
            csize += len(seg)
            yield seg
            if final:
                break
            current, index = nxt, index + 1
        self.info = EnvelopeInfo(self.key_id, _b64(self.wrapped), p_hash.hexdigest(), c_hash.hexdigest(),
                                 size, csize, self.aad, self.role)



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
                   wrapped_key: str | bytes | None = None, key_in_header: bool = True,
                   role: str = "") -> EnvelopeInfo:
    """Encrypt ``src`` into ``dst`` (a path is written atomically) in one streaming pass.

    A new random DEK is made unless ``wrapped_key`` (under ``key_id``) is given to reuse one.
    ``key_in_header=False`` leaves the wrapped DEK out of the file: only ``info.wrapped_key``
    (kept by the caller, e.g. the catalog) can open it.  ``role`` names which object of the
    recording this is (every object of a recording must have its own: they share the DEK)."""
    stream, owned = _open_src(src)
    try:
        wrapped = _unb64(wrapped_key) if wrapped_key is not None else None
        enc = _Encryptor(stream, keyring, key_id, _as_bytes(aad), chunk_size, wrapped, key_in_header, role)
        _drain(enc, dst)
    finally:
        if owned:
            stream.close()
    assert enc.info is not None
    return enc.info


def _opened(src: BinaryIO, keyring: KeyRing, wrapped_key: str | bytes | None, key_id: str | None,
            expected_aad: bytes | str | None, expected_role: str | None) -> tuple[Header, AESGCM]:
    """Read and check the header, unwrap the DEK: what every decrypting reader starts with."""
    header = read_header(src)
    check_binding(header, expected_aad=expected_aad, expected_role=expected_role)
    wrapped = _unb64(wrapped_key) if wrapped_key is not None else header.wrapped_key
    if not wrapped:
        raise CryptoError("the data key of this file is not in it: it is held only by the catalog "
                          "(gone once the recording was erased)")
    return header, AESGCM(unwrap_key(wrapped, keyring, key_id or header.key_id))


def decrypt_chunks(src: BinaryIO, keyring: KeyRing, *, wrapped_key: str | bytes | None = None,
                   key_id: str | None = None, expected_aad: bytes | str | None = None,
                   expected_role: str | None = None) -> Iterator[bytes]:
    """Yield verified plaintext segments.  ``wrapped_key``/``key_id`` (the catalog's, current
    after rotations) override the header copy.  Raises CryptoError on any tampering
    (:class:`ObjectRoleMismatch` for another object of the recording than ``expected_role``)."""
    header, gcm = _opened(src, keyring, wrapped_key, key_id, expected_aad, expected_role)
    seg_len = header.chunk_size + TAG_LEN
    current, index = _read_upto(src, seg_len), 0
    while True:
        nxt = _read_upto(src, seg_len) if len(current) == seg_len else b""
        final = not nxt
        try:
            yield gcm.decrypt(_nonce(header.base_nonce, index), current, header.segment_ad(index, final))
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
                  expected_aad: bytes | str | None = None,
                  expected_role: str | None = None) -> Iterator[bytes]:
    """Plaintext bytes ``[start, stop)``: the reader seeks to the segment that holds ``start`` (or
    reads past the ones before it when ``src`` cannot seek) and decrypts from there, so a seek
    into a long recording costs one segment, not the file.  Every segment released is
    authenticated exactly as :func:`decrypt_chunks` does (index and final flag bound in)."""
    header, gcm = _opened(src, keyring, wrapped_key, key_id, expected_aad, expected_role)
    seg_len = header.chunk_size + TAG_LEN
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
            plain = gcm.decrypt(_nonce(header.base_nonce, index), current, header.segment_ad(index, final))
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
                   expected_aad: bytes | str | None = None,
                   expected_role: str | None = None) -> tuple[str, int]:
    """Decrypt ``src`` into ``dst``; returns (plaintext sha256 hex, size).

    A path ``dst`` is published only if every segment verified.  A stream ``dst`` may have
    received verified leading segments before a CryptoError: the caller must discard it.
    """
    stream, owned = _open_src(src)
    h, size = hashlib.sha256(), 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for block in decrypt_chunks(stream, keyring, wrapped_key=wrapped_key, key_id=key_id,
                                    expected_aad=expected_aad, expected_role=expected_role):
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
    """Shipper ``prepare_stage``: ``(path, manifest, role=...) -> (path + ".pbxr", manifest)``.

    The associated data is the recording id, so an object copied onto another recording's
    row fails to decrypt; the header's role (``takes_role``: the shipper says which object of
    the recording each file is) makes an object put in place of another of the same recording
    fail too.  All files of one recording (dual-channel legs) share one DEK (each
    with its own random base nonce) so the catalog's single ``wrapped_key`` covers them all
    and a rotation re-wraps them together.  Records in ``manifest.processing``: ``encrypted``,
    ``key_id``, ``wrapped_key`` (catalog columns), ``envelope`` ("PBXR2"), ``plaintext_sha256``
    of the primary (first) file -- differs from ``audio_sha256`` when a transcode stage ran
    first -- and per-file ``encrypted_files``
    {name: {plaintext_sha256, ciphertext_sha256, size, role}}.

    The files carry no copy of the wrapped DEK (``key_in_header=False``): the catalog row is
    its only home, so erasing the row crypto-shreds every copy.  :meth:`seal_sidecar` puts the
    manifest sidecar (numbers, consent evidence) in the same envelope under the same DEK.
    """

    SUFFIX = ".pbxr"
    SIDECAR_AAD = ":manifest"  # appended to the recording id: a sidecar never opens as audio
    takes_role = True  # the shipper passes ``role=`` (the object's recording_objects role)

    def __init__(self, keyring: KeyRing, key_id: str, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.keyring, self.key_id, self.chunk_size = keyring, check_key_id(key_id), chunk_size
        keyring.get(key_id)  # fail at start-up, not at the first call

    def __call__(self, path: Path, manifest: Any, *, role: str = "") -> tuple[Path, Any]:
        if not role:  # objects of one recording share the DEK: without a role they are interchangeable
            raise CryptoError(f"recording {manifest.recording_id}: no object role given for {path.name}")
        processing = dict(getattr(manifest, "processing", {}) or {})
        reuse = processing.get("wrapped_key") if processing.get("key_id") == self.key_id else None
        out = path.with_name(path.name + self.SUFFIX)
        info = encrypt_stream(path, out, self.keyring, self.key_id, manifest.recording_id,
                              chunk_size=self.chunk_size, wrapped_key=reuse, key_in_header=False, role=role)
        if "encrypted_files" not in processing:  # the shipper stages files in order: this is the primary
            processing["plaintext_sha256"] = info.plaintext_sha256
        files = dict(processing.get("encrypted_files", {}))
        files[path.name] = {"plaintext_sha256": info.plaintext_sha256,
                            "ciphertext_sha256": info.ciphertext_sha256, "size": info.size, "role": role}
        processing.update(encrypted=True, key_id=info.key_id, wrapped_key=info.wrapped_key,
                          envelope=f"PBXR{VERSION}", encrypted_files=files, key_in_header=False)
        return out, dataclasses.replace(manifest, processing=processing)

    def seal_sidecar(self, path: Path, manifest: Any, *, role: str) -> Path:
        """Encrypt the manifest sidecar at ``path`` under the recording's DEK (the one the audio
        stages used; a new one when no audio file was encrypted) as object ``role``; returns the
        sealed file."""
        processing = getattr(manifest, "processing", {}) or {}
        reuse = processing.get("wrapped_key") if processing.get("key_id") == self.key_id else None
        if reuse is None:
            raise CryptoError(f"recording {manifest.recording_id}: no data key to seal its manifest with")
        out = path.with_name(path.name + self.SUFFIX)
        encrypt_stream(path, out, self.keyring, self.key_id, manifest.recording_id + self.SIDECAR_AAD,
                       chunk_size=self.chunk_size, wrapped_key=reuse, key_in_header=False, role=role)
        return out
