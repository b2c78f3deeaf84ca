"""``pbx-recorder demo``: private Asterisk + recorder + real sipp calls, then a search."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


def register(group: click.Group) -> None:
    @group.command("demo")
    @click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Where everything lives (default: a new directory under /tmp, kept afterwards).")
    @click.option("--freeswitch", "pbx", flag_value="freeswitch", default=False,
                  help="Run the same calls on a private FreeSWITCH (built by scripts/setup), "
                       "not Asterisk.")
    @click.pass_context
    def demo(ctx: click.Context, workdir: Path | None, pbx: str | bool) -> None:
        """Start a private Asterisk (or FreeSWITCH) and the recorder, place consent yes/no, notify
        and no-record calls with sipp, wait for shipping, show `calls search`, stop everything."""
        from pbx_recorder.demo import run_demo

        target = (workdir or Path(tempfile.mkdtemp(prefix="pbxrec-demo-"))).resolve()
        code = run_demo(target, echo=click.echo, pbx=pbx or "asterisk")
        if code:
            ctx.exit(code)
