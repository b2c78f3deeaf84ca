"""``pbx-recorder verify [--recording ID] [--deep]``: files vs catalog vs ledger vs signed heads.

Prints one line per finding and a summary with the overall status; the exit code tells the
three situations apart:

    0  ok (recordings still waiting in the spool are listed as PENDING: not an error)
    4  MISMATCH: something was changed, removed or replaced (IntegrityError)
    9  UNREACHABLE: no mismatch, but a tier could not be reached, so not everything was
       checked (VerifyIncomplete); run it again when the tier is back

``--deep`` also decrypts every object (when the key ring is configured) and re-reads objects
whose server keeps its own checksum.  Signatures (manifests, call seals, chain heads) are
checked when the signing public key (``<signing.key_file>.pub`` or the private key) is readable.

The whole-catalog check streams in keyset batches (``--batch``) with the storage checks on a
thread pool (``--jobs``), records its progress beside the catalog (``--resume`` continues an
interrupted pass) and, with ``--since-last``, checks only what changed since the last pass that
found nothing wrong.  Progress goes to stderr on a terminal (``--progress``: always).
"""

from __future__ import annotations

from typing import Any

import click

from pbx_recorder.cli import crypto_setup
from pbx_recorder.errors import IntegrityError, StorageRefused, VerifyIncomplete
from pbx_recorder.recording import chain_head
from pbx_recorder.recording.signing import load_public_key, public_key_path
from pbx_recorder.recording.verify import Verifier, catalog_connection
from storage.factory import build_tiers


def spooled_ids(config: Any) -> tuple[list[str], str]:
    """Recording ids waiting in the spool folder (complete entries), without creating it; and a
    note when the folder cannot be read by this account."""
    root = config.spool.dir
    try:
        if not root.is_dir():
            return [], ""
        from pbx_recorder.recording.spool import Spool

        return [e.recording_id for e in Spool(root).pending()], ""
    except OSError as exc:
        return [], f"spool {root} not readable here ({exc.strerror}): pending recordings not listed"


def register(group: click.Group) -> None:
    @group.command("verify")
    @click.option("--recording", "recording_id", default=None, help="Check only this recording.")
    @click.option("--deep", is_flag=True, help="Re-read and re-hash every object (decrypt when possible).")
    @click.option("--since-last", "since_last", is_flag=True,
                  help="Check only what changed since the last pass that found nothing wrong.")
    @click.option("--resume", is_flag=True, help="Continue an interrupted pass where it stopped.")
    @click.option("--jobs", type=click.IntRange(1, 64), default=4, show_default=True,
                  help="Storage checks run in parallel.")
    @click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
                  help="Recordings read per catalog query.")
    @click.option("--progress", "show_progress", is_flag=True, help="Show progress on stderr even when it "
                  "is not a terminal.")
    @click.pass_context
    def verify(ctx: click.Context, recording_id: str | None, deep: bool, since_last: bool, resume: bool,
               jobs: int, batch: int, show_progress: bool) -> None:
        """Check stored objects against the catalog, the ledger and the signed chain heads."""
        if recording_id and (since_last or resume):
            raise click.UsageError("--since-last and --resume are for the whole catalog, not --recording")
        config = crypto_setup.load(ctx, "verify.run", recording_id or "")
        tiers = build_tiers(config.storage)
        keyring = crypto_setup.keyring_of(config, required=False)
        key_file = config.signing.key_file
        public_key = None
        if public_key_path(key_file).is_file() or key_file.is_file():
            public_key = load_public_key(key_file)
        spooled, spool_note = spooled_ids(config)
        from pbx_recorder.catalog.number_keys import protection_for

        numbers = protection_for(config)
        conn = catalog_connection(config.catalog.target)
        try:
            verifier = Verifier(conn, tiers, keyring=keyring, public_key=public_key, deep=deep,
                                checkpoints=chain_head.store_for(config, tiers), spooled=spooled,
                                numbers=numbers)
            options = None
            if recording_id is None:
                from pbx_recorder import scan
                from pbx_recorder.progress import reporter
                from pbx_recorder.recording.verify_state import VerifyState
                from pbx_recorder.recording.verify_stream import PassOptions

                total = None if since_last else scan.count(conn, "recordings")
                options = PassOptions(batch=batch, jobs=jobs, since_last=since_last, resume=resume,
                                      state=VerifyState.beside(config.catalog.path),
                                      progress=reporter("verify", total, show_progress))
            report = verifier.run(recording_id, options=options)
        finally:
            conn.close()
        if spool_note:
            report.notes.append(spool_note)
        if options is not None and options.state is not None and options.state.problem:
            report.notes.append(options.state.problem)
        for note in report.notes:
            click.echo(f"note: {note}")
        if public_key is None:
            click.echo("note: no signing key found: signatures, call seals and chain heads not checked")
        for line in report.pending:
            click.echo(f"PENDING {line}")
        for line in report.unreachable:
            click.echo(f"UNREACHABLE {line}")
        for m in report.mismatches:
            click.echo(f"MISMATCH {m}")
        for line in report.refused:
            click.echo(f"REFUSED {line}")
        click.echo(f"checked {report.checked} recordings{' (deep)' if deep else ''}: "
                   f"{len(report.mismatches)} mismatches, {len(report.unreachable)} unreachable, "
                   f"{len(report.pending)} pending"
                   + (f", {len(report.refused)} refused by the storage server" if report.refused else "")
                   + f": status {report.status}")
        if report.mismatches:
            raise IntegrityError(f"verification found {len(report.mismatches)} mismatches")
        if report.refused:
            raise StorageRefused(f"{len(report.refused)} recording(s) refused by the storage server: "
                                 "fix the tier (check-config --probe), then restart the daemon")
        if report.unreachable:
            raise VerifyIncomplete("a storage tier could not be reached: verification incomplete")
