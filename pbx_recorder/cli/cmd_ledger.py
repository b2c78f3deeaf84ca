"""``pbx-recorder ledger root --day YYYY-MM-DD``, ``ledger verify`` and ``ledger checkpoint``.

The root is the chain head hash at the end of that UTC day (see ``pbx_recorder.recording.ledger``):
publish it somewhere you do not control (mail, RFC 3161 timestamp) to anchor the ledger.
"""

from __future__ import annotations

import time
from typing import Any

import click

from pbx_recorder import audit_trail
from pbx_recorder.cli import crypto_setup
from pbx_recorder.errors import IntegrityError
from pbx_recorder.recording import call_seal, chain_head, ledger
from pbx_recorder.recording.signing import load_public_key, load_signing_key, public_key_path
from pbx_recorder.recording.verify import catalog_connection


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
        conn = catalog_connection(config.catalog.target)
        try:
            click.echo(f"{day} {ledger.daily_root(conn, day)}")
        finally:
            conn.close()

    @ledger_group.command("verify")
    @click.option("--since-last", "since_last", is_flag=True,
                  help="Recompute only the entries after the last pass that found nothing wrong.")
    @click.option("--resume", is_flag=True, help="Continue an interrupted pass where it stopped.")
    @click.option("--progress", "show_progress", is_flag=True, help="Show progress on stderr even when it "
                  "is not a terminal.")
    @click.pass_context
    def verify_ledger(ctx: click.Context, since_last: bool, resume: bool, show_progress: bool) -> None:
        """Recompute the chain, hold it to its signed head and the catalog; name every problem."""
        from pbx_recorder.progress import reporter
        from pbx_recorder.recording.ledger_pass import run_ledger_pass
        from pbx_recorder.recording.verify_state import VerifyState

        config = crypto_setup.load(ctx, "ledger.read")
        public_key = _public_key(config)
        conn = catalog_connection(config.catalog.target)
        try:
            total = int(conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0] or 0)
            result = run_ledger_pass(conn, VerifyState.beside(config.catalog.path, "ledger-verify"),
                                     since_last=since_last, resume=resume, public_key=public_key,
                                     checkpoints=chain_head.store_for(config) if public_key else None,
                                     progress=reporter("ledger verify", total, show_progress))
        finally:
            conn.close()
        for note in result.notes:
            click.echo(f"note: {note}")
        if public_key is None:
            click.echo("note: no signing key found: the signed chain head is not checked")
        for line in result.problems:
            click.echo(f"BROKEN {line}")
        click.echo(f"{result.count} ledger entries, {result.checked} recomputed, "
                   f"{len(result.problems)} problems")
        if result.problems:
            raise IntegrityError(f"ledger check failed: {result.problems[0]}")

    @ledger_group.command("checkpoint")
    @click.option("--init", is_flag=True, help="Sign chains that have rows but no checkpoint yet (first "
                  "start after an upgrade, or checkpoints lost): only after checking them.")
    @click.pass_context
    def checkpoint(ctx: click.Context, init: bool) -> None:
        """Sign the ledger's and the audit log's current heads into signing.checkpoint_dir
        (the daemon and the lifecycle jobs do this themselves; run it from a timer too)."""
        config = crypto_setup.load(ctx, "ledger.checkpoint")
        key = load_signing_key(config.signing.key_file)
        store = chain_head.store_for(config)
        conn = catalog_connection(config.catalog.target, read_only=False)
        try:
            failed = []
            broken = [str(p) for p in ledger.verify_chain(conn)]
            broken += [str(p) for p in audit_trail.verify_chain(conn)[0]]
            if init and broken:  # never bless a chain that does not even recompute
                raise IntegrityError(f"not initializing checkpoints over a broken chain: {broken[0]}")
            if init:
                from pbx_recorder.catalog.number_keys import protection_for

                opened = call_seal.seal_unsealed(conn, key, protection_for(config).open_call)
                click.echo(f"sealed {opened} call row(s) written before sealing")
            for chain in chain_head.CHAINS:
                try:
                    cp = store.write(conn, chain, key, now=time.time(), node=config.node, init=init)
                except IntegrityError as exc:
                    failed.append(str(exc))
                    continue
                seq, head = chain_head.db_head(conn, chain)
                click.echo(f"{chain}: head {seq} {head}" + ("" if cp else " (already signed)"))
        finally:
            conn.close()
        for line in failed:
            click.echo(f"REFUSED {line}")
        if failed:
            raise IntegrityError(failed[0])


def _public_key(config: Any) -> Any:
    key_file = config.signing.key_file
    if public_key_path(key_file).is_file() or key_file.is_file():
        return load_public_key(key_file)
    return None
