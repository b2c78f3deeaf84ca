"""Layering: YAML file < conf.d/*.yaml beside it (sorted) < environment variables.

Mappings merge deeply; any other value (lists included) replaces what lower layers
had.  For every key we remember which layer set it (``Origin``) so errors can name
the right file and relative paths resolve against the right directory.

Environment: ``PBX_RECORDER_<SECTION>__<KEY>[__<KEY>...]`` (double underscore =
nesting, names lower-cased), e.g. ``PBX_RECORDER_PBX__AMI__SECRET``.  Values are kept
as raw text (``EnvText``) and parsed as YAML scalars only where a number, boolean or
list is expected, so a secret such as ``0123`` or ``yes`` stays exactly as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.config import yaml_load
from pbx_recorder.config.reader import Ctx, EnvText, KeyPath, Origin
from pbx_recorder.errors import ConfigError

ENV_PREFIX = "PBX_RECORDER_"
#: variables with the prefix that are not config keys
ENV_NOT_CONFIG = frozenset({"PBX_RECORDER_CONFIG", "PBX_RECORDER_USER"})
ENV_RANK = 1_000_000  # above the main file (0) and every conf.d file (1, 2, ...)


def read_yaml(path: Path, ctx: Ctx) -> Mapping[str, Any] | None:
    """Parse one YAML file; on failure record an error (with the line) and return None."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.errors.append(ConfigError("config file not found", file=label))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        ctx.errors.append(ConfigError(f"cannot read config file: {reason}", file=label))
        return None
    try:
        data = yaml_load.load(text)  # bounded: an alias bomb is an error, not 2 GB and MemoryError
    except yaml_load.ConfigTooLarge as exc:
        ctx.errors.append(ConfigError(f"refused: {exc.problem}", file=label))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        ctx.errors.append(ConfigError(f"malformed YAML at {where}: {problem}", file=label))
        return None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        ctx.errors.append(ConfigError("the top level must be a mapping of sections", file=label))
        return None
    return data


def _record(origins: dict[KeyPath, Origin], path: KeyPath, value: Any, origin: Origin) -> None:
    origins[path] = origin
    if isinstance(value, Mapping):
        for k, v in value.items():
            _record(origins, (*path, k), v, origin)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def merge(
    dst: dict[Any, Any], src: Mapping[Any, Any], origin: Origin, ctx: Ctx, prefix: KeyPath = ()
) -> None:
    """Deep-merge ``src`` into ``dst`` and remember where each key came from."""
    for key, value in src.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            ctx.origins.setdefault(path, origin)
            merge(dst[key], value, origin, ctx, path)
        else:
            dst[key] = _plain(value)
            # forget deeper origins of the value just replaced
            for old in [p for p in ctx.origins if p[: len(path)] == path and len(p) > len(path)]:
                del ctx.origins[old]
            _record(ctx.origins, path, value, origin)


def override_variables(env: Mapping[str, str]) -> list[str]:
    """The names of the variables that override config keys (sorted).  The one definition: the
    CLI refuses every one of them when root acts for a named operator (``cli/operator_gate.py``)."""
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in ENV_NOT_CONFIG)


def env_layer(env: Mapping[str, str], ctx: Ctx, data: dict[Any, Any], base_dir: Path) -> None:
    """Apply ``PBX_RECORDER_*`` variables (sorted, so the result does not depend on order)."""
    for name in override_variables(env):
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            ctx.errors.append(
                ConfigError(
                    "bad variable name: use PBX_RECORDER_<SECTION>__<KEY> (double underscore = nesting)",
                    file=f"env {name}",
                )
            )
            continue
        nested: dict[str, Any] = {}
        cursor = nested
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = EnvText(env[name])
        merge(data, nested, Origin(label=f"env {name}", base_dir=base_dir, rank=ENV_RANK), ctx)


def collect(path: Path | None, env: Mapping[str, str], ctx: Ctx) -> tuple[dict[Any, Any], list[str]]:
    """Merge every layer above the embedded defaults; return the data and the files used."""
    data: dict[Any, Any] = {}
    sources: list[str] = []
    base_dir = ctx.default_base
    if path is not None:
        base_dir = path.parent
        main = read_yaml(path, ctx)
        if main is not None:
            merge(data, main, Origin(label=str(path), base_dir=base_dir), ctx)
            sources.append(str(path))
        conf_d = path.parent / "conf.d"
        if conf_d.is_dir():
            for rank, extra in enumerate(sorted(conf_d.glob("*.yaml")), start=1):
                layer = read_yaml(extra, ctx)
                if layer is not None:
                    # relative paths in conf.d resolve against the main file's directory
                    merge(data, layer, Origin(label=str(extra), base_dir=base_dir, rank=rank), ctx)
                    sources.append(str(extra))
    env_layer(env, ctx, data, base_dir)
    return data, sources
