"""Build an :class:`storage.s3.S3Tier` from one ``storage.tiers.<name>`` entry (type ``s3``).

Accepts the typed ``S3TierConfig`` or a plain mapping with the same names:
bucket (required), endpoint_url, region_name, prefix, access_key_id, secret_access_key
(a ``Secret`` or str; ``*_file`` variants read a file), addressing_style (path),
storage_class, sse (none | AES256 | aws:kms | SSE-C), kms_key_id, sse_c_key_file (32 raw
bytes, or their hex/base64), object_lock {mode: none|GOVERNANCE|COMPLIANCE, days},
multipart_threshold_mb (8), restore_days (7), restore_tier (Standard | Bulk | Expedited),
verify_readback (true), allow_governance_bypass (false), class_transition (direct | lifecycle),
archive_classes (the classes that need a restore before a GET; default GLACIER, DEEP_ARCHIVE).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.errors import ConfigError
from storage.s3 import S3Tier
from storage.s3_objects import DEFAULT_ARCHIVE_CLASSES
from storage.s3_sse import SseConfig


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    return default if value is None else value


def _secret(cfg: Any, key: str, where: str) -> str:
    value = _get(cfg, key, "")
    if hasattr(value, "reveal"):
        value = value.reveal()
    path = _get(cfg, key + "_file", "")
    if not value and path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {key}_file: {exc.strerror}", key=f"{where}.{key}_file") from exc
    return str(value or "")


def _customer_key(path: Any, where: str) -> bytes:
    if not path:
        return b""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read sse_c_key_file: {exc.strerror}",
                          key=f"{where}.sse_c_key_file") from exc
    if len(raw) == 32:
        return raw
    text = raw.strip().decode("ascii", "replace")
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise ConfigError("sse_c_key_file must hold a 32-byte key (raw, hex or base64)",
                      key=f"{where}.sse_c_key_file")


def build_s3_tier(name: str, cfg: Any) -> S3Tier:
    where = f"storage.tiers.{name}"
    bucket = str(_get(cfg, "bucket", ""))
    if not bucket:
        raise ConfigError("an s3 tier needs 'bucket'", key=f"{where}.bucket")
    mode = str(_get(cfg, "sse", "none"))
    try:
        sse = SseConfig(mode="" if mode == "none" else mode, kms_key_id=str(_get(cfg, "kms_key_id", "")),
                        customer_key=_customer_key(_get(cfg, "sse_c_key_file"), where))
    except ConfigError as exc:
        key = exc.key or "sse"
        raise ConfigError(exc.message.removeprefix(f"{key}: "), key=f"{where}.{key}") from exc
    lock = _get(cfg, "object_lock", {})
    lock_mode = str(_get(lock, "mode", "none")).upper()
    if lock_mode not in ("NONE", "GOVERNANCE", "COMPLIANCE"):
        raise ConfigError("must be none, GOVERNANCE or COMPLIANCE", key=f"{where}.object_lock.mode")
    try:
        return S3Tier(
            name, bucket=bucket, endpoint_url=_get(cfg, "endpoint_url") or None,
            region_name=_get(cfg, "region_name") or None, prefix=str(_get(cfg, "prefix", "")),
            access_key=_secret(cfg, "access_key_id", where) or None,
            secret_key=_secret(cfg, "secret_access_key", where) or None,
            session_token=_secret(cfg, "session_token", where) or None,
            addressing_style=str(_get(cfg, "addressing_style", "path")),
            storage_class=str(_get(cfg, "storage_class", "")), sse=sse,
            object_lock_mode="" if lock_mode == "NONE" else lock_mode,
            object_lock_days=int(_get(lock, "days", 0)) if lock_mode != "NONE" else 0,
            multipart_threshold_mb=int(_get(cfg, "multipart_threshold_mb", 8)),
            restore_days=int(_get(cfg, "restore_days", 7)),
            restore_tier=str(_get(cfg, "restore_tier", "Standard")),
            verify_readback=bool(_get(cfg, "verify_readback", True)),
            allow_governance_bypass=bool(_get(cfg, "allow_governance_bypass", False)),
            class_transition=str(_get(cfg, "class_transition", "direct")),
            archive_classes=tuple(_get(cfg, "archive_classes", DEFAULT_ARCHIVE_CLASSES)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid s3 tier setting: {exc}", key=where) from exc
