"""Building and validating ``retention`` and ``storage`` (used by ``config.build``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pbx_recorder.config.model import (
    CapacityConfig,
    LocalTierConfig,
    MigrationConfig,
    ObjectLockConfig,
    RegionStorage,
    RetentionClass,
    RetentionConfig,
    S3TierConfig,
    StorageConfig,
    TierConfig,
    TranscodeConfig,
)
from pbx_recorder.config.reader import Ctx, Node

MIN_RETENTION_DAYS = 180  # below this a class must say allow_short: true

DEFAULT_RETENTION_CLASSES: dict[str, dict[str, Any]] = {
    "standard": {"days": 180, "cold_after_days": 30},
    "finance": {"days": 1095},
    "complaints": {"days": 1825},
    "vip": {"days": 1825},
}
DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "hot": {"type": "local", "path": "./var/hot"},
    "cold": {"type": "local", "path": "./var/cold"},
}
TIER_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_-]*"
BUCKET_RE = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


def build_retention(node: Node) -> RetentionConfig:
    """Embedded default classes, each overlaid key by key with what the config says."""
    classes_node = node.child("classes")
    given = dict(classes_node.items())
    classes: dict[str, RetentionClass] = {}
    for name in [*DEFAULT_RETENTION_CLASSES, *(n for n in given if n not in DEFAULT_RETENTION_CLASSES)]:
        raw = given.get(name)
        if raw is not None and not isinstance(raw, Mapping):
            classes_node.error(name, "expected a mapping with 'days'")
            continue
        spec = {**DEFAULT_RETENTION_CLASSES.get(name, {}), **(raw or {})}
        c = Node(node.ctx, classes_node.key(name), spec)
        days = c.get_int("days", lo=1) or MIN_RETENTION_DAYS
        allow_short = c.get_bool("allow_short", False)
        if days < MIN_RETENTION_DAYS and not allow_short:
            c.error(
                "days",
                f"{days} days is shorter than the {MIN_RETENTION_DAYS}-day minimum "
                "(set 'allow_short: true' if this is intended)",
            )
        cold = c.get_int("cold_after_days", None, optional=True, lo=0)
        if cold is not None and cold >= days:
            c.error("cold_after_days", f"{cold} must be less than days ({days})")
        protected = c.get_bool("protected", False)
        c.finish()
        classes[name] = RetentionClass(
            days=days, cold_after_days=cold, protected=protected, allow_short=allow_short
        )
    default_class = node.get_str("default_class", "standard")
    if default_class not in classes:
        node.error(
            "default_class",
            f"unknown retention class {default_class!r} (defined: {', '.join(sorted(classes))})",
        )
    node.finish()
    return RetentionConfig(default_class=default_class, classes=MappingProxyType(classes))


def _local_tier(name: str, t: Node) -> LocalTierConfig:
    tier = LocalTierConfig(name=name, path=t.get_path("path"), read_only=t.get_bool("read_only", False))
    t.finish(extra_allowed=("type",))
    return tier


def _s3_tier(name: str, t: Node) -> S3TierConfig:
    lock_node = t.child("object_lock")
    lock = ObjectLockConfig(
        mode=lock_node.get_str("mode", "none", choices=("none", "GOVERNANCE", "COMPLIANCE")),
        days=lock_node.get_int("days", None, optional=True, lo=1),
    )
    if lock.mode != "none" and lock.days is None:
        lock_node.error("days", f"is required with mode {lock.mode}")
    lock_node.finish()
    endpoint = t.get_str("endpoint_url", None, optional=True, regex=r"https?://\S+", what="http(s) URL")
    tier = S3TierConfig(
        name=name,
        bucket=t.get_str(
            "bucket", regex=BUCKET_RE, what="S3 bucket name (3-63 lower-case letters, digits, . -)"
        ),
        endpoint_url=endpoint,
        region_name=t.get_str("region_name", None, optional=True),
        prefix=t.get_str("prefix", ""),
        access_key_id=t.get_str("access_key_id", None, optional=True),
        secret_access_key=t.get_secret("secret_access_key"),
        addressing_style=t.get_str("addressing_style", "path", choices=("path", "virtual", "auto")),
        storage_class=t.get_str("storage_class", None, optional=True),
        restore_days=t.get_int("restore_days", 7, lo=1),
        restore_tier=t.get_str("restore_tier", "Standard", choices=("Standard", "Bulk", "Expedited")),
        sse=t.get_str("sse", "none", choices=("none", "AES256", "aws:kms", "SSE-C")),
        kms_key_id=t.get_str("kms_key_id", None, optional=True),
        sse_c_key_file=t.get_path("sse_c_key_file", None, optional=True),
        object_lock=lock,
        multipart_threshold_mb=t.get_int("multipart_threshold_mb", 8, lo=5, hi=5 * 1024),
        verify_readback=t.get_bool("verify_readback", True),
        allow_governance_bypass=t.get_bool("allow_governance_bypass", False),
        class_transition=t.get_str("class_transition", "direct", choices=("direct", "lifecycle")),
        archive_classes=tuple(c.upper() for c in t.get_str_list("archive_classes"))
        if t.has("archive_classes") else S3TierConfig.archive_classes,
    )
    if tier.class_transition == "lifecycle" and not tier.storage_class:
        t.error("storage_class", "with class_transition: lifecycle, name the class the bucket's rule moves "
                                 "objects to")
    if tier.sse == "aws:kms" and not tier.kms_key_id:
        t.error("kms_key_id", "is required with sse: aws:kms")
    if tier.sse == "SSE-C" and tier.sse_c_key_file is None:
        t.error("sse_c_key_file", "is required with sse: SSE-C")
    if tier.prefix.startswith("/"):
        t.error("prefix", "must not start with '/'")
    t.finish(extra_allowed=("type",))
    return tier


def _tiers(node: Node) -> dict[str, TierConfig]:
    raw = node.raw("tiers")
    tiers_node = Node(node.ctx, node.key("tiers"), DEFAULT_TIERS if raw is None else raw)
    tiers: dict[str, TierConfig] = {}
    for name, spec in tiers_node.items():
        if not re.fullmatch(TIER_NAME_RE, name):
            tiers_node.error(name, "tier names use letters, digits, _ and -")
        t = Node(node.ctx, tiers_node.key(name), spec)
        kind = t.get_str("type", "local", choices=("local", "s3"))
        tiers[name] = _s3_tier(name, t) if kind == "s3" else _local_tier(name, t)
    if not tiers:
        node.error("tiers", "at least one tier is required")
    _distinct_local_roots(tiers_node, tiers)
    return tiers


def _distinct_local_roots(tiers_node: Node, tiers: dict[str, TierConfig]) -> None:
    """Two local tiers on one folder (or one inside the other, a symlink resolved): a migration
    between them copies a file onto itself, then deletes the source -- the only copy."""
    local = [(name, t.path.resolve()) for name, t in tiers.items() if isinstance(t, LocalTierConfig)]
    for i, (name, root) in enumerate(local):
        for other, other_root in local[:i]:
            if root == other_root or root.is_relative_to(other_root) or other_root.is_relative_to(root):
                Node(tiers_node.ctx, tiers_node.key(name), {}).error(
                    "path", f"{root} is tier {other!r}'s folder or overlaps it ({other_root}): each local "
                            "tier needs a folder of its own")


def build_storage(node: Node) -> StorageConfig:
    ctx: Ctx = node.ctx
    tiers = _tiers(node)

    def tier_ref(n: Node, key: str, default: Any, optional: bool) -> Any:
        name = n.get_str(key, default, optional=optional)
        if name is not None and tiers and name not in tiers:
            n.error(key, f"unknown tier {name!r} (defined: {', '.join(sorted(tiers))})")
        return name

    hot = tier_ref(node, "hot", "hot", False)
    cold = tier_ref(node, "cold", "cold" if "cold" in tiers else None, True)
    archive = tier_ref(node, "archive", None, True)
    hot_tier = tiers.get(hot)
    if isinstance(hot_tier, LocalTierConfig) and hot_tier.read_only:
        node.error("hot", f"tier {hot!r} is read_only; the hot tier must be writable")
    if cold is not None and cold == hot:
        node.error("cold", "must differ from the hot tier")
    regions: dict[str, RegionStorage] = {}
    regions_node = node.child("regions")
    for region, spec in regions_node.items():
        r = Node(ctx, regions_node.key(region), spec)
        regions[region] = RegionStorage(
            hot=tier_ref(r, "hot", hot, False), cold=tier_ref(r, "cold", cold, True)
        )
        r.finish()
    cap = node.child("capacity")
    capacity = CapacityConfig(
        high_water=cap.get_float("high_water", 0.85, lo=0.01, hi=1.0),
        low_water=cap.get_float("low_water", 0.75, lo=0.0, hi=1.0),
    )
    if capacity.low_water >= capacity.high_water:
        cap.error("low_water", f"{capacity.low_water} must be below high_water ({capacity.high_water})")
    cap.finish()
    tc = node.child("transcode")
    transcode = TranscodeConfig(
        format=tc.get_str("format", "none", choices=("none", "flac", "opus")),
        keep_original=tc.get_bool("keep_original", True),
    )
    tc.finish()
    mg = node.child("migration")
    migration = MigrationConfig(batch_size=mg.get_int("batch_size", 200, lo=1, hi=100_000))
    mg.finish()
    node.finish()
    return StorageConfig(
        tiers=MappingProxyType(tiers),
        hot=hot,
        cold=cold,
        archive=archive,
        regions=MappingProxyType(regions),
        capacity=capacity,
        transcode=transcode,
        migration=migration,
    )
