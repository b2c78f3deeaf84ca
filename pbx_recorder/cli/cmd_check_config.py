"""``pbx-recorder check-config``: validate the configuration, optionally print it (secrets redacted)."""

from __future__ import annotations

from collections.abc import Mapping

import click
import yaml

from pbx_recorder.cli.config_load import load_or_list_errors
from pbx_recorder.config import TierConfig
from pbx_recorder.errors import StorageError
from pbx_recorder.tier_probe import probe_tiers


def _tier_label(tiers: Mapping[str, TierConfig], name: str | None) -> str:
    if name is None:
        return "none"
    tier = tiers.get(name)
    return f"{name}({tier.type})" if tier is not None else name


def register(group: click.Group) -> None:
    @group.command("check-config")
    @click.option(
        "--config",
        "config_override",
        default=None,
        metavar="FILE",
        help="Config file to check (default: the group's --config).",
    )
    @click.option(
        "--print", "print_config", is_flag=True, help="Print the effective config (secrets redacted)."
    )
    @click.option(
        "--probe",
        is_flag=True,
        help="Also write, read back and delete a probe object on every S3 tier: do the configured "
        "encryption, class and lock modes work on the bucket? (exit 4 if not)",
    )
    @click.pass_context
    def check_config(
        ctx: click.Context, config_override: str | None, print_config: bool, probe: bool
    ) -> None:
        """Validate the config file, conf.d and PBX_RECORDER_* variables; exit 2 on any error."""
        path = config_override or (ctx.obj or {}).get("config_path")
        cfg = load_or_list_errors(path)
        if print_config:
            click.echo(yaml.safe_dump(cfg.to_safe_dict(), sort_keys=False, allow_unicode=True), nl=False)
        tiers = cfg.storage.tiers
        click.echo(
            f"OK: {cfg.config_file or '<defaults>'}: {len(cfg.rules)} rules, "
            f"tiers hot={_tier_label(tiers, cfg.storage.hot)}, cold={_tier_label(tiers, cfg.storage.cold)}"
            + (f", sources={len(cfg.sources)}" if len(cfg.sources) > 1 else "")
        )
        if not cfg.encryption.enabled:
            click.echo("warning: encryption.enabled is false: audio and manifest sidecars (numbers) are "
                       "stored in clear on every tier and erasure cannot shred copies it does not see "
                       "(README, Security)", err=True)
        if cfg.web.secret_key_file is None:
            click.echo("warning: web.secret_key_file is not set: the service's accounts, roles, sessions, "
                       "tokens, teams and QA rows are not sealed nor its audit rows keyed, and `serve` "
                       "refuses to start" + (" (web.allow_unsealed: it starts all the same)"
                                             if cfg.web.allow_unsealed else "")
                       + " (README, \"The operator service's access rows\")", err=True)
        if probe:
            reports = probe_tiers(cfg.storage)
            for r in reports:
                for line in r.errors:
                    click.echo(f"PROBE ERROR: tier {r.tier}: {line}", err=True)
                for line in r.warnings:
                    click.echo(f"PROBE WARNING: tier {r.tier}: {line}", err=True)
                if r.ok:
                    click.echo(f"PROBE OK: tier {r.tier}")
            failed = [r.tier for r in reports if not r.ok]
            if failed:
                raise StorageError(f"the probe failed on tier(s) {', '.join(failed)}")
