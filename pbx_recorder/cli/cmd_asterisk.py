"""``pbx-recorder asterisk check``: a read-only preflight of the Asterisk side (manager.conf, dialplan).

pyst2 (the .conf parser) is imported only when the check runs (README "CLI start time").  Root or
the service user run it as ``host-admin``; a root front end acting for a named operator needs
``asterisk.check`` (admin) and may not name another config.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pbx_recorder.cli.config_load import load_or_list_errors
from pbx_recorder.errors import AsteriskCheckFailed, ConfigError


def register(group: click.Group) -> None:
    @group.group("asterisk")
    def asterisk() -> None:
        """Check the Asterisk side: AMI user, manager.conf, the dialplan snippet (read-only)."""

    @asterisk.command("check")
    @click.option("--etc", "etc", default="/etc/asterisk", show_default=True, metavar="DIR",
                  type=click.Path(file_okay=False, path_type=Path),
                  help="Asterisk's config folder (manager.conf, extensions.conf and what they #include).")
    @click.option("--config", "config_override", default=None, metavar="FILE",
                  help="The recorder's config file (default: the group's --config).")
    @click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
    @click.option("--recorder-address", default=None, metavar="IP",
                  help="The address Asterisk sees the recorder's AMI connection come from, to hold the "
                  "AMI user's ACL to (default: this host's address toward pbx.ami.host; give it when "
                  "the check runs elsewhere than the recorder, or across NAT or a proxy).")
    @click.pass_context
    def check(ctx: click.Context, etc: Path, config_override: str | None, as_json: bool,
              recorder_address: str | None) -> None:
        """Read manager.conf and extensions.conf (with their #includes) and say what is wrong.

        Exit 0: no errors (warnings may remain); 1: errors; 2: a file could not be read or parsed,
        or the recorder's config is invalid.  Secrets are compared, never printed.
        """
        from pbx_recorder.asterisk_check import run_check
        from pbx_recorder.asterisk_check.findings import table
        from pbx_recorder.cli import authz, operator_gate

        default = (ctx.obj or {}).get("config_path")
        if config_override is not None:  # a named operator: the default config only, like the group's
            operator_gate.check_config(config_override, default or "")
        cfg = load_or_list_errors(config_override or default)
        authz.host_admin_or_authorize(cfg, None, "asterisk.check")  # it compares the AMI secret
        if cfg.pbx.type != "asterisk":
            raise click.UsageError(f"pbx.type is {cfg.pbx.type!r}: this checks an Asterisk configuration")
        if recorder_address is not None:
            import ipaddress

            try:
                ipaddress.ip_address(recorder_address)
            except ValueError as exc:
                raise click.BadParameter("an IPv4 or IPv6 address", param_hint="--recorder-address") from exc
        findings, code = run_check(etc, cfg, recorder_address)
        if as_json:
            click.echo(json.dumps({"etc": str(etc), "exit": code,
                                   "findings": [f.to_dict() for f in findings]}, indent=2))
        else:
            click.echo(table(findings))
        if code == 2:
            raise ConfigError("some Asterisk config could not be read (see 'unreadable')", file=str(etc))
        if code == 1:
            raise AsteriskCheckFailed("the Asterisk configuration has errors (see above)")
