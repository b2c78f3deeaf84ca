"""The ``pbx-recorder`` command.

Sub-commands live in ``pbx_recorder/cli/cmd_*.py``; each module defines
``register(group: click.Group) -> None``.  The group imports a command's modules only when that
command runs (the table in ``cli/lazy_group.py``: add a new top-level command there, a test checks
it), so a catalog command does not pay for boto3 or asyncio.  Only the CLI turns a
``RecorderError`` into an exit code.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import click
from click.core import ParameterSource

from pbx_recorder import log_masking
from pbx_recorder.cli import chain_heads_on_exit, operator_gate, privilege
from pbx_recorder.cli.lazy_group import LazyGroup
from pbx_recorder.core.masking import mask_text
from pbx_recorder.errors import RecorderError

DEFAULT_CONFIG = "/etc/pbx-recorder/pbx-recorder.yaml"
#: commands that never write the catalog's chains (or must not touch it: check-config, the demo)
NO_CATALOG_COMMANDS = frozenset({None, "asterisk", "check-config", "demo", "plan", "run", "rules", "prompts"})


class GatedGroup(LazyGroup):
    """The top-level group: a command that opens the catalog, the keys or the AMI connection runs
    for root or the service user only (``cli/privilege.py``); a root front end acting for a named
    operator runs only the commands that authorize an action (``cli/operator_gate.py``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return None if command is None else operator_gate.gate(cmd_name, privilege.gate(cmd_name, command))


@click.group(cls=GatedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="PBX_RECORDER_CONFIG", default=None,
              show_default=DEFAULT_CONFIG, help="YAML config file (conf.d beside it is layered on top); "
              "refused when root acts for a named operator (PBX_RECORDER_USER).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Compliant call recording for Asterisk: consent, rules, tiered storage, catalog."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_masking.install()  # no log line shows a phone number
    # root acting for a named operator: the default config only (no --config, no PBX_RECORDER_* key)
    given = config_path if ctx.get_parameter_source("config_path") is ParameterSource.COMMANDLINE else None
    operator_gate.check_config(given, DEFAULT_CONFIG)
    config_path = config_path or DEFAULT_CONFIG  # read here, so a test may point it at a sandbox
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    # audit rows it wrote: under a signed head (an unprivileged user's refused command reads no config)
    if ctx.invoked_subcommand not in NO_CATALOG_COMMANDS and privilege.is_privileged():
        ctx.call_on_close(lambda: chain_heads_on_exit.sign_heads(config_path))


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="pbx-recorder", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except RecorderError as exc:
        click.echo(f"error: {mask_text(str(exc))}", err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run_main() -> None:
    """Console-script entry point.  SIGTERM (``systemctl stop``, a shutdown) ends a command the way
    an error does: its context managers run (a transaction rolled back, a catalog backup's plaintext
    work copy removed) instead of the process vanishing; then the process ends by SIGTERM all the
    same (systemd counts that as a clean stop: an exit status 143 would mark the unit failed).
    ``run`` and ``serve`` handle SIGTERM themselves (uvicorn raises it again once it has stopped)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        code = main()
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    sys.exit(code)


class Terminated(SystemExit):
    """SIGTERM, raised where the main thread was (see :func:`run_main`)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)
