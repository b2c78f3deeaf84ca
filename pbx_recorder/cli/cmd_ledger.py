"""``pbx-recorder ledger root --day YYYY-MM-DD`` and ``ledger verify``.

The root is the chain head hash at the end of that UTC day (see ``pbx_recorder.ledger``):
publish it somewhere you do not control (mail, RFC 3161 timestamp) to anchor the ledger.
"""

from __future__ import annotations

import click

from pbx_recorder import ledger
from pbx_recorder.cli import crypto_setup
from pbx_recorder.errors import IntegrityError
from pbx_recorder.verify import catalog_connection


def register(group: click.Group) -> None:
    @group.group("ledger")
    def ledger_group() -> None:
        """The hash-chained lifecycle ledger."""

    @ledger_group.command("root")
    @click.option("--day", required=True, metavar="YYYY-MM-DD", help="UTC day.")
    @click.pass_context
    def root(ctx: click.Context, day: str) -> None:
        """Print the chain head hash at the end of DAY (UTC) for external anchoring."""
        config = crypto_setup.load(ctx, "ledger.read")
        conn = catalog_connection(config.catalog.path)
        try:
            click.echo(f"{day} {ledger.daily_root(conn, day)}")
        finally:
            conn.close()

    @ledger_group.command("verify")
    @click.pass_context
    def verify_ledger(ctx: click.Context) -> None:
        """Recompute the chain; name every broken seq."""
        config = crypto_setup.load(ctx, "ledger.read")
        conn = catalog_connection(config.catalog.path)
        try:
            problems = ledger.verify_chain(conn)
            count = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        finally:
            conn.close()
        for p in problems:
            click.echo(f"BROKEN {p}")
        click.echo(f"{count} ledger entries, {len(problems)} problems")
        if problems:
            raise IntegrityError(f"ledger chain broken at seq {problems[0].seq}")
