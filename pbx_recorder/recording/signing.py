"""Ed25519 signatures over recording manifests (tamper evidence for the catalog).

What is signed: ``canonical_json(manifest)`` (sorted keys, no whitespace, UTF-8, no NaN) of
the manifest as a plain dict, exactly as ``pbx_recorder.recording.manifest.canonical_json`` writes it.
The catalog stores the manifest as JSON text (any spacing) and the signature as base64 in
``recordings.signature``; verification re-parses the text and re-canonicalizes, so the
column's formatting does not matter, only its content.

Key files: the private key is PKCS#8 PEM (unencrypted; protect it by file mode 0600 and
ownership), the public key beside it as ``<key_file>.pub`` (SubjectPublicKeyInfo PEM) for
auditors who must verify without the ability to sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CryptoError
from pbx_recorder.recording.manifest import Manifest, canonical_json
from storage import file_modes
from storage.atomic import create_exclusive

log = logging.getLogger(__name__)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` atomically with ``mode``; never overwrite an existing file."""
    file_modes.private_dir(path.parent, tighten=False)  # a key's folder: 0700 whatever the umask
    try:
        create_exclusive(path, data, mode)
    except FileExistsError as exc:
        raise CryptoError(f"{path} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise CryptoError(f"cannot write {path}: {exc.strerror}") from exc


def public_key_path(key_file: str | Path) -> Path:
    return Path(str(key_file) + ".pub")


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_signing_key(key_file: str | Path) -> Ed25519PrivateKey:
    """Create a new Ed25519 key at ``key_file`` (0600) and its public key at ``<key_file>.pub``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new(Path(key_file), pem, 0o600)
    pub = public_key_path(key_file)
    if not pub.exists():
        _write_new(pub, public_key_pem(key), 0o644)
    return key


def load_signing_key(key_file: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise CryptoError(f"signing key {key_file} unreadable: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"signing key {key_file} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoError(f"signing key {key_file} is not an Ed25519 key")
    return key


def load_public_key(source: str | Path | bytes | Ed25519PublicKey | Ed25519PrivateKey) -> Ed25519PublicKey:
    """A public key from PEM bytes, a .pub file, or derived from a private key/its file."""
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, Ed25519PrivateKey):
        return source.public_key()
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix != ".pub" and public_key_path(path).exists():
            path = public_key_path(path)
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise CryptoError(f"public key {path} unreadable: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(source)
    except ValueError:
        return load_public_key(_private_from_pem(source))
    if not isinstance(key, Ed25519PublicKey):
        raise CryptoError("public key is not Ed25519")
    return key


def _private_from_pem(data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError("not a PEM Ed25519 key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoError("not an Ed25519 key")
    return key


def manifest_bytes(manifest: Any) -> bytes:
    """Canonical bytes of a manifest given as dict, ``Manifest`` (has ``to_dict``) or JSON text."""
    if isinstance(manifest, bytes | str):
        manifest = json.loads(manifest)
    elif isinstance(manifest, Manifest):
        try:
            return manifest.to_json()  # the same bytes as canonical_json(manifest.to_dict())
        except (TypeError, ValueError) as exc:
            raise CryptoError(f"manifest is not canonical-JSON serializable: {exc}") from exc
    elif hasattr(manifest, "to_dict"):
        manifest = manifest.to_dict()
    if not isinstance(manifest, Mapping):
        raise CryptoError("a manifest must be a JSON object")
    try:
        return canonical_json(dict(manifest))
    except (TypeError, ValueError) as exc:
        raise CryptoError(f"manifest is not canonical-JSON serializable: {exc}") from exc


def sign_manifest(manifest: Any, private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(private_key.sign(manifest_bytes(manifest))).decode("ascii")


def verify_manifest(manifest: Any, signature: str, public_key: Ed25519PublicKey) -> bool:
    """True iff ``signature`` (base64) is valid for the manifest's canonical bytes."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, manifest_bytes(manifest))
    except (InvalidSignature, binascii.Error, ValueError, CryptoError):
        return False
    return True


class SignAfterStore:
    """Shipper ``after_store`` hook ``(catalog, recording_id, manifest, record)``: sign the manifest.

    With a ``Catalog`` it returns ``{"signature": ...}``, which the shipper merges into the row
    (the shipper already stored ``manifest.to_dict()``; the signature covers exactly that).
    With a ``sqlite3.Connection`` it writes manifest + signature itself and returns the same
    mapping.  Ed25519 is deterministic, so a retry is idempotent."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key

    @classmethod
    def from_key_file(cls, key_file: str | Path) -> SignAfterStore:
        return cls(load_signing_key(key_file))

    #: called with a ``Catalog``, the hook neither reads nor writes the recording's row:
    #: ``Catalog.write_calls`` may run it first and write the row once, with the signature
    before_row = True

    #: it signs manifests with ``private_key``: ``Catalog.write_calls`` may have a helper process
    #: sign a batch's ahead (``recording.sign_ahead``), taken here for exactly the bytes made here
    signs_manifests = True

    def __call__(self, catalog: Any, recording_id: str, manifest: Any, *_: Any, **__: Any) -> dict[str, str]:
        # inside a bulk write with a helper: its signature and bytes' hash of this very manifest
        # object, taken as they are unless it is one the writer checks (``recording.sign_ahead``)
        premade = getattr(catalog, "premade_manifest", None)
        prepared = premade(recording_id, manifest) if premade is not None else None
        if prepared is not None and not prepared.check:
            log.info("recording %s: manifest signed", recording_id)
            return {"signature": prepared.signature, "manifest_sha256": prepared.sha256}
        raw = manifest_bytes(manifest)  # canonical once: what is signed is what is stored
        text = raw.decode("utf-8")
        made = getattr(catalog, "presigned", None) if prepared is None else None
        ahead = made("manifest", recording_id, raw) if made is not None else None  # (sign_ahead.MANIFEST)
        signature = ahead or base64.b64encode(self.private_key.sign(raw)).decode("ascii")
        if prepared is not None:  # a checked one: the writer's own bytes and signature must be the helper's
            prepared.compare(recording_id, raw, signature)
        if engine.is_connection(catalog):
            cur = catalog.execute("UPDATE recordings SET manifest = ?, signature = ? WHERE recording_id = ?",
                                  (text, signature, recording_id))
            if cur.rowcount != 1:
                raise CryptoError(f"cannot sign: no catalog row for recording {recording_id}")
            log.info("recording %s: manifest signed", recording_id)
            return {"signature": signature}
        log.info("recording %s: manifest signed", recording_id)
        # and the hash of the bytes signed (the row's ``manifest_sha256``): the catalog need not
        # make the manifest's canonical bytes a second time to hash them
        return {"signature": signature, "manifest_sha256": hashlib.sha256(raw).hexdigest()}
