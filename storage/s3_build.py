"""Build an :class:`storage.s3.S3Tier` from one ``storage.tiers.<name>`` entry (type ``s3``).

Keys (mapping or attributes): bucket (required), endpoint_url, region / region_name, prefix,
access_key, secret_key, session_token (or <key>_file holding the secret), addressing_style
(path), storage_class, sse (AES256 | aws:kms | SSE-C), kms_key_id, sse_customer_key
(base64 or hex of 32 bytes; or sse_customer_key_file), object_lock_mode (GOVERNANCE |
COMPLIANCE), object_lock_days, multipart_threshold_mb (8), restore_days (7),
restore_tier (Standard | Bulk | Expedited), allow_governance_bypass (false).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pbx_recorder.errors import ConfigError
from storage.s3 import S3Tier
from storage.s3_sse import SseConfig


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    return default if value is None else value


def _secret(cfg: Any, key: str, where: str) -> str:
    value = _get(cfg, key, "")
    path = _get(cfg, key + "_file", "")
    if not value and path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {key}_file: {exc.strerror}", key=f"{where}.{key}_file") from exc
    return str(value or "")


def _customer_key(text: str, where: str) -> bytes:
    if not text:
        return b""
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    raise ConfigError("sse_customer_key must be 32 bytes, hex or base64", key=f"{where}.sse_customer_key")


def build_s3_tier(name: str, cfg: Any) -> S3Tier:
    where = f"storage.tiers.{name}"
    bucket = str(_get(cfg, "bucket", ""))
    if not bucket:
        raise ConfigError("an s3 tier needs 'bucket'", key=f"{where}.bucket")
    mode = str(_get(cfg, "sse", "") or "")
    try:
        sse = SseConfig(mode=mode, kms_key_id=str(_get(cfg, "kms_key_id", "")),
                        customer_key=_customer_key(_secret(cfg, "sse_customer_key", where), where))
    except ConfigError as exc:
        key = exc.key or "sse"
        raise ConfigError(exc.message.removeprefix(f"{key}: "), key=f"{where}.{key}") from exc
    lock_mode = str(_get(cfg, "object_lock_mode", "")).upper()
    if lock_mode not in ("", "GOVERNANCE", "COMPLIANCE"):
        raise ConfigError("object_lock_mode must be GOVERNANCE or COMPLIANCE",
                          key=f"{where}.object_lock_mode")
    try:
        return S3Tier(
            name, bucket=bucket, endpoint_url=_get(cfg, "endpoint_url") or None,
            region_name=_get(cfg, "region_name") or _get(cfg, "region") or None,
            prefix=str(_get(cfg, "prefix", "")), access_key=_secret(cfg, "access_key", where) or None,
            secret_key=_secret(cfg, "secret_key", where) or None,
            session_token=_secret(cfg, "session_token", where) or None,
            addressing_style=str(_get(cfg, "addressing_style", "path")),
            storage_class=str(_get(cfg, "storage_class", "")), sse=sse, object_lock_mode=lock_mode,
            object_lock_days=int(_get(cfg, "object_lock_days", 0)),
            multipart_threshold_mb=int(_get(cfg, "multipart_threshold_mb", 8)),
            restore_days=int(_get(cfg, "restore_days", 7)),
            restore_tier=str(_get(cfg, "restore_tier", "Standard")),
            allow_governance_bypass=bool(_get(cfg, "allow_governance_bypass", False)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid s3 tier setting: {exc}", key=where) from exc
