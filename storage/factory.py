"""Build storage tiers from the ``storage`` config section.

``build_tiers(storage_config) -> {name: Tier}``.  Each tier entry has a ``type``;
the dispatch is one small table, so another tier type is one line plus a builder.
Accepts a mapping ``{"tiers": {name: {...}}}`` / ``{name: {...}}`` or objects with
the same attributes (the typed Config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pbx_recorder.errors import ConfigError
from storage.base import Tier
from storage.local import LocalTier


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _build_local(name: str, cfg: Any) -> Tier:
    root = _get(cfg, "root") or _get(cfg, "path")
    if not root:
        raise ConfigError("a local tier needs 'root'", key=f"storage.tiers.{name}.root")
    return LocalTier(name, root, read_only=bool(_get(cfg, "read_only", False)))


def _build_s3(name: str, cfg: Any) -> Tier:
    # imported here: boto3 costs about 0.2 s at start, and a local-only node never needs it
    from storage.s3_build import build_s3_tier

    return build_s3_tier(name, cfg)


TIER_BUILDERS: dict[str, Callable[[str, Any], Tier]] = {
    "local": _build_local,
    "s3": _build_s3,
}


def _tier_entries(storage_config: Any) -> list[tuple[str, Any]]:
    tiers = _get(storage_config, "tiers", storage_config)
    if isinstance(tiers, Mapping):
        return list(tiers.items())
    if isinstance(tiers, list | tuple):  # list of tier objects carrying .name
        return [(str(_get(t, "name")), t) for t in tiers]
    raise ConfigError("storage.tiers must be a mapping of name -> tier", key="storage.tiers")


def build_tiers(storage_config: Any) -> dict[str, Tier]:
    result: dict[str, Tier] = {}
    for name, cfg in _tier_entries(storage_config):
        kind = str(_get(cfg, "type", "local"))
        builder = TIER_BUILDERS.get(kind)
        if builder is None:
            raise ConfigError(f"unknown tier type {kind!r} (known: {', '.join(sorted(TIER_BUILDERS))})",
                              key=f"storage.tiers.{name}.type")
        result[name] = builder(name, cfg)
    return result
