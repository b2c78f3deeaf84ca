"""``pbx-recorder keys init | generate | rotate --to NEW_ID | list``: master keys and the signing key.

``init`` (at install; the daemon does the same at its first start) creates every missing key of
the configuration, owner-only: the master key, the signing key, the privacy HMAC key and the
first backup key.

Key bytes are never printed.  ``rotate`` re-wraps data keys in the catalog only; the stored
audio objects are not read or rewritten.  ``rotate --retire-old`` is the second step of a
rotation: it is refused until the configuration names NEW as the current key (else the recorders
would go on writing under a key just retired), runs under the ``keys-rotate`` job lease, and
retires the other keys only when a fresh count finds no recording or number token left under them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from pbx_recorder.cli import crypto_setup
from pbx_recorder.errors import ConfigError, CryptoError
from pbx_recorder.recording.signing import generate_signing_key, public_key_path
from pbx_recorder.recording.verify import catalog_connection
from storage.keyring import KeyRing


def register(group: click.Group) -> None:
    @group.group("keys")
    def keys() -> None:
        """Encryption master keys (AES-256 key ring) and the manifest signing key (Ed25519)."""

    @keys.command("init")
    @click.pass_context
    def init(ctx: click.Context) -> None:
        """Create every missing key of the configuration (0600, directories 0700); never overwrites."""
        config = crypto_setup.load(ctx, "keys.manage")
        made = crypto_setup.ensure_keys(config, time.time())
        for line in made:
            click.echo(f"created {line}")
        if not made:
            click.echo("every configured key exists; nothing created")
        if not config.encryption.enabled:
            click.echo("warning: encryption.enabled is false: audio, sidecars and numbers are stored in "
                       "clear on every tier (see README, Security)", err=True)

    @keys.command("generate")
    @click.option("--id", "key_id", default=None, help="Master key id (default: encryption.key_id).")
    @click.option("--signing", is_flag=True, help="Also create the Ed25519 signing key (signing.key_file).")
    @click.option("--signing-only", is_flag=True, help="Only create the signing key.")
    @click.pass_context
    def generate(ctx: click.Context, key_id: str | None, signing: bool, signing_only: bool) -> None:
        """Create a new master key file (0600); refuses to overwrite an existing key."""
        config = crypto_setup.load(ctx, "keys.manage")
        if not signing_only:
            ring = crypto_setup.keyring_of(config, required=True)
            assert ring is not None
            kid = key_id or crypto_setup.current_key_id(config)
            path = ring.generate(kid)
            click.echo(f"master key {kid} written to {path}")
        if signing or signing_only:
            key_file = config.signing.key_file
            generate_signing_key(key_file)
            click.echo(f"signing key written to {key_file}; public key {public_key_path(key_file)}")

    @keys.command("rotate")
    @click.option("--to", "new_id", required=True, help="New master key id (generated if missing).")
    @click.option("--batch", "batch_size", default=200, show_default=True, type=click.IntRange(1, 100000))
    @click.option("--retire-old", is_flag=True,
                  help="Move the old keys to retired/ when every data key was re-wrapped.")
    @click.pass_context
    def rotate(ctx: click.Context, new_id: str, batch_size: int, retire_old: bool) -> None:
        """Re-wrap every recording's data key under NEW_ID (audio untouched); ledger 'rekeyed'."""
        from pbx_recorder.lifecycle.job_lease import exclusive_job

        config = crypto_setup.load(ctx, "keys.manage")
        ring = crypto_setup.keyring_of(config, required=True)
        assert ring is not None
        if retire_old:
            _require_configured(config, ring.path_for(new_id), new_id)
        with exclusive_job(config, "keys-rotate") as busy:
            if busy:
                click.echo(busy)
                return
            _rotate(config, ring, new_id, batch_size, retire_old)
        if crypto_setup.current_key_id(config) != new_id:
            click.echo(f"now set encryption.master_key_file: {ring.path_for(new_id)} "
                       "so new recordings use it")

    from pbx_recorder.cli.keys_index_command import register_rotate_index

    register_rotate_index(keys)

    @keys.command("list")
    @click.pass_context
    def list_keys(ctx: click.Context) -> None:
        """Master key ids (current marked *), how many recordings each wraps, the signing key."""
        config = crypto_setup.load(ctx, "keys.manage")
        ring = crypto_setup.keyring_of(config, required=False)
        counts: dict[str, int] = {}
        # a PostgreSQL catalog is its URL (catalog.path then only anchors the node's folder)
        if config.catalog.url or config.catalog.path.is_file():
            conn = catalog_connection(config.catalog.target)
            try:
                counts = dict(conn.execute("SELECT key_id, COUNT(*) FROM recordings WHERE encrypted = 1 "
                                           "GROUP BY key_id").fetchall())
            finally:
                conn.close()
        current = config.encryption.key_id or ""
        try:
            current = crypto_setup.current_key_id(config)
        except ConfigError:
            pass  # listing must work with a half-set config
        ids = ring.ids() if ring else []
        for kid in sorted(set(ids) | set(counts)):
            mark = "*" if kid == current else " "
            state = "present" if kid in ids else "MISSING"
            click.echo(f"{mark} {kid}  {state}  recordings={counts.get(kid, 0)}")
        if not ids and not counts:
            click.echo("no master keys")
        signing = config.signing.key_file
        click.echo(f"signing key: {signing} ({'present' if signing.is_file() else 'missing'})")


def _require_configured(config: Any, new_path: Path, new_id: str) -> None:
    """Retiring the keys but the one the daemons write under is safe only when that one is NEW:
    otherwise every new recording and number would be written under a key just retired."""
    try:
        current = crypto_setup.current_key_id(config)
    except ConfigError:
        current = ""
    if current != new_id:
        raise ConfigError(f"--retire-old refused: the configuration's current master key is "
                          f"{current or 'unset'}, not {new_id}; set encryption.master_key_file: "
                          f"{new_path}, restart the recorders, then run keys rotate --to {new_id} "
                          "--retire-old again",
                          key="encryption.master_key_file")


def _rotate(config: Any, ring: KeyRing, new_id: str, batch_size: int, retire_old: bool) -> None:
    """Re-wrap, re-encrypt the numbers, and (``retire_old``) retire the other keys only when a
    fresh count finds no value left under them: rows another node stored during the pass can
    sort behind its cursor."""
    from pbx_recorder.recording.rekey import rotate as do_rotate
    from pbx_recorder.recording.rekey import still_under_other_keys

    conn = catalog_connection(config.catalog.target, read_only=False)
    try:
        report = do_rotate(conn, ring, new_id, now=time.time(), batch_size=batch_size)
    finally:
        conn.close()
    if report.generated:
        click.echo(f"generated master key {new_id}")
    olds = ", ".join(f"{k}: {n}" for k, n in sorted(report.by_old_key.items())) or "none"
    click.echo(f"re-wrapped {report.rewrapped} data keys (from {olds}); "
               f"{report.already} already under {new_id}; {len(report.failed)} failed")
    for rid, reason in report.failed:
        click.echo(f"  {rid}: {reason}", err=True)
    if report.failed:
        raise CryptoError(f"{len(report.failed)} recordings could not be re-wrapped; old keys kept")
    _reencrypt_numbers(config, new_id)
    if not retire_old:
        return
    conn = catalog_connection(config.catalog.target, read_only=False)
    try:
        left = still_under_other_keys(conn, new_id)
    finally:
        conn.close()
    if left:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(left.items()))
        raise CryptoError(f"{sum(left.values())} catalog values are still under other keys than {new_id} "
                          f"({what}), written while the rotation ran; old keys kept: run keys rotate "
                          f"--to {new_id} --retire-old again")
    retired = [kid for kid in ring.ids() if kid != new_id]
    for kid in retired:
        click.echo(f"retired master key {kid} -> {ring.retire(kid)}")
    if retired:
        _recount_after_retiring(config, ring, new_id, retired)


def _recount_after_retiring(config: Any, ring: KeyRing, new_id: str, retired: list[str]) -> None:
    """A recorder that has not reloaded its configuration notices a retired key within
    ``RECHECK_S`` (its number cipher fails closed); a value it wrote between the count and that
    moment would be stranded, so wait that long, count again, and put the keys back if any."""
    from pbx_recorder.catalog.number_protection import RECHECK_S
    from pbx_recorder.recording.rekey import still_under_other_keys

    time.sleep(2 * RECHECK_S)
    conn = catalog_connection(config.catalog.target, read_only=False)
    try:
        left = still_under_other_keys(conn, new_id)
    finally:
        conn.close()
    if not left:
        return
    for kid in retired:
        ring.unretire(kid)
    raise CryptoError(f"{sum(left.values())} catalog values were written under other keys than {new_id} "
                      f"while retiring; {', '.join(retired)} put back in the ring: restart the recorders "
                      f"with {new_id} configured and run keys rotate --to {new_id} --retire-old again")


def _reencrypt_numbers(config: object, new_id: str) -> None:
    """The catalog's encrypted numbers (``catalog.protected_rows``) under ``new_id`` before any old
    key may be retired.  The blind-index key (privacy HMAC key) is not rotated here."""
    from pbx_recorder.catalog import query_holds_sealed_pass, stored_filters_pass
    from pbx_recorder.catalog.number_keys import protection_under
    from pbx_recorder.catalog.number_migration import protect
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(config.catalog.target)  # type: ignore[attr-defined]
    try:
        done = protect(conn, protection_under(config, new_id), force=True)
        holds = query_holds_sealed_pass.run(conn, protection_under(config, new_id))  # + hold_rekeyed
        searches = stored_filters_pass.seal_saved_searches(conn, protection_under(config, new_id))
    finally:
        conn.close()
    saved = stored_filters_pass.SAVED
    click.echo(f"re-encrypted the numbers of {done.calls} calls, {done.manifests} manifests, "
               f"{done.live_calls} live calls and {done.extra_numbers} calls' extra numbers under {new_id}"
               f"; query holds sealed again {holds.sealed + holds.resealed} of {holds.read}; saved searches "
               f"{searches.masked.get(saved, 0)} of {searches.read.get(saved, 0)}")
    if done.errors:
        raise CryptoError(f"{len(done.errors)} catalog rows could not be re-encrypted ({done.errors[0]}); "
                          "old keys kept")
    if searches.errors:
        raise CryptoError(f"{len(searches.errors)} saved searches could not be sealed again "
                          f"({searches.errors[0]}); old keys kept")
