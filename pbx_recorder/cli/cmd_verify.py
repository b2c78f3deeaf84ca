"""``pbx-recorder verify [--recording ID] [--deep]``: files vs catalog vs ledger.

Prints one line per mismatch (recording id, what, expected vs found) and a summary; any
mismatch exits with IntegrityError's exit code.  ``--deep`` re-reads every object (and
decrypts it when the key ring is configured).  The manifest signature is checked when the
signing public key (``<signing.key_file>.pub`` or the private key) is readable.
"""

from __future__ import annotations

import click

from pbx_recorder.cli import crypto_setup
from pbx_recorder.errors import IntegrityError, StorageRefused
from pbx_recorder.signing import load_public_key, public_key_path
from pbx_recorder.verify import Verifier, catalog_connection
from storage.factory import build_tiers


def register(group: click.Group) -> None:
    @group.command("verify")
    @click.option("--recording", "recording_id", default=None, help="Check only this recording.")
    @click.option("--deep", is_flag=True, help="Re-read and re-hash every object (decrypt when possible).")
    @click.pass_context
    def verify(ctx: click.Context, recording_id: str | None, deep: bool) -> None:
        """Check stored objects against the catalog and the ledger; non-zero exit on any mismatch."""
        config = crypto_setup.load(ctx, "verify.run", recording_id or "")
        tiers = build_tiers(config.storage)
        keyring = crypto_setup.keyring_of(config, required=False)
        key_file = config.signing.key_file
        public_key = None
        if public_key_path(key_file).is_file() or key_file.is_file():
            public_key = load_public_key(key_file)
        conn = catalog_connection(config.catalog.path)
        try:
            verifier = Verifier(conn, tiers, keyring=keyring, public_key=public_key, deep=deep)
            report = verifier.run(recording_id)
        finally:
            conn.close()
        for note in report.notes:
            click.echo(f"note: {note}")
        if public_key is None:
            click.echo("note: no signing key found: manifest signatures not checked")
        for m in report.mismatches:
            click.echo(f"MISMATCH {m}")
        for line in report.refused:
            click.echo(f"REFUSED {line}")
        click.echo(f"checked {report.checked} recordings{' (deep)' if deep else ''}: "
                   f"{len(report.mismatches)} mismatches"
                   + (f", {len(report.refused)} refused by the storage server" if report.refused else ""))
        if report.mismatches:
            raise IntegrityError(f"verification found {len(report.mismatches)} mismatches")
        if report.refused:
            raise StorageRefused(f"{len(report.refused)} recording(s) refused by the storage server: "
                                 "fix the tier (check-config --probe), then restart the daemon")
