"""Typed, layered, validated configuration.

    cfg = load_config("/etc/pbx-recorder/pbx-recorder.yaml")
    cfg.pbx.ami.secret.reveal()          # Secret; repr/str/to_safe_dict never show it
    cfg.storage.tiers[cfg.storage.hot]   # LocalTierConfig | S3TierConfig

Layers, lowest first: embedded defaults < the YAML file < ``conf.d/*.yaml`` beside it
(sorted by name, deep-merged; lists replace) < environment ``PBX_RECORDER_<SECTION>__<KEY>``.
Secrets may be inline, in ``<key>_file`` (read and stripped) or in the environment.
Relative paths resolve against the config file's directory (embedded defaults: the
current working directory).  ``load_config(None)`` is the private sandbox: local tiers
under ./var and an SQLite catalog.

Every problem found is collected; one ``ConfigErrors`` (a ``ConfigError``) is raised
with ``.errors`` listing each problem with its file and dotted key.

Modules of this package: ``model`` (dataclasses), ``secret`` (Secret), ``layers`` (files +
env), ``yaml_load`` (the bounded YAML loader), ``reader`` (typed getters), ``build`` / ``rules``
/ ``storage`` / ``qa`` / ``reports`` / ``keys`` (validation); the rule pattern and time-window
grammar is the core's (``pbx_recorder.core.rule_patterns``), shared with rule evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pbx_recorder.config.build import build_config
from pbx_recorder.config.layers import collect
from pbx_recorder.config.model import (
    AccessConfig,
    AgiConfig,
    AmiConfig,
    CapacityConfig,
    CatalogConfig,
    Config,
    ConsentConfig,
    EncryptionConfig,
    EslConfig,
    LocalTierConfig,
    LoggingConfig,
    MetricsConfig,
    MigrationConfig,
    ObjectLockConfig,
    PbxConfig,
    PrivacyConfig,
    RedisConfig,
    RegionStorage,
    RetentionClass,
    RetentionConfig,
    RuleAction,
    RuleConfig,
    RuleMatch,
    RuleRefusal,
    S3TierConfig,
    SigningConfig,
    SpoolConfig,
    StorageConfig,
    TierConfig,
    TranscodeConfig,
    VipConfig,
    WebConfig,
)
from pbx_recorder.config.reader import Ctx
from pbx_recorder.config.secret import Secret
from pbx_recorder.core.rule_patterns import PatternError, TimeWindow, compile_pattern, parse_time_window
from pbx_recorder.errors import ConfigError

__all__ = [
    "AccessConfig",
    "AgiConfig",
    "AmiConfig",
    "CapacityConfig",
    "CatalogConfig",
    "Config",
    "ConfigErrors",
    "ConsentConfig",
    "EncryptionConfig",
    "EslConfig",
    "LocalTierConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MigrationConfig",
    "ObjectLockConfig",
    "PatternError",
    "PbxConfig",
    "PrivacyConfig",
    "RedisConfig",
    "RegionStorage",
    "RetentionClass",
    "RetentionConfig",
    "RuleAction",
    "RuleConfig",
    "RuleMatch",
    "RuleRefusal",
    "S3TierConfig",
    "Secret",
    "SigningConfig",
    "SpoolConfig",
    "StorageConfig",
    "TierConfig",
    "TimeWindow",
    "TranscodeConfig",
    "VipConfig",
    "WebConfig",
    "compile_pattern",
    "load_config",
    "parse_time_window",
]


class ConfigErrors(ConfigError):
    """All problems of one load; ``.errors`` holds one ``ConfigError`` per problem."""

    def __init__(self, errors: Sequence[ConfigError], *, file: str | None = None) -> None:
        self.errors: list[ConfigError] = list(errors)
        if len(self.errors) == 1:
            only = self.errors[0]
            super().__init__(_bare(only), file=only.file, key=only.key)
        else:
            lines = "\n".join(f"  - {e}" for e in self.errors)
            super().__init__(f"{len(self.errors)} configuration errors:\n{lines}", file=file)


def _bare(error: ConfigError) -> str:
    """The message of a ConfigError without its "file: key: " prefix."""
    text = str(error)
    prefix = ": ".join(p for p in (error.file, error.key) if p)
    return text[len(prefix) + 2 :] if prefix and text.startswith(prefix + ": ") else text


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load, layer and validate; raise ``ConfigErrors`` listing every problem."""
    environ: Mapping[str, str] = os.environ if env is None else env
    cwd = Path.cwd()
    file = None if path is None else (cwd / Path(path).expanduser()).resolve()
    ctx = Ctx(main_label=str(file) if file else "<defaults>", default_base=cwd, main_file=file)
    data, sources = collect(file, environ, ctx)
    config = build_config(ctx, data)
    if ctx.errors:
        raise ConfigErrors(ctx.errors, file=ctx.main_label)
    from pbx_recorder import audit_key  # every process of the recorder keys its audit rows

    audit_key.register_for(config)
    return dataclasses.replace(config, config_file=file, sources=tuple(sources))
