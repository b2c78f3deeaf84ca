"""The data steps of ``pbx-recorder catalog migrate`` after the numbers are sealed, in order.

Each step skips itself once done (its ``pending``); one that cannot finish raises, and the next
run of ``catalog migrate`` goes on from it.  Every step runs holding the catalog-migrate job lease
(:func:`_exclusively`), writes one audit row and says what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from pbx_recorder.errors import CryptoError, IntegrityError, RecorderError
from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime

T = TypeVar("T")


def _exclusively(rt: Runtime, run: Callable[[], T]) -> T | None:
    """``run()`` holding the catalog-migrate job lease; None, and who holds it echoed, when another
    run of a migrate step holds it (that run goes on; this one stops here)."""
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return None
        return run()


def progress(what: str, n: int) -> None:
    if n % 10000 == 0:
        click.echo(f"{what}: {n}", err=True)


def _signing_key(rt: Runtime, missing: str, *, private: bool = False) -> Path | None:
    """The signing key file a step checks manifests (or seals rows) with; None, and ``missing``
    echoed, without one (the public half is enough unless ``private``)."""
    from pbx_recorder.recording.signing import public_key_path

    key_file = rt.config.signing.key_file
    if key_file is None or not (key_file.is_file() or (not private and public_key_path(key_file).is_file())):
        click.echo(missing)
        return None
    return Path(key_file)


def _finish(rt: Runtime, target: str, detail: dict[str, Any], said: str, label: str, problems: Iterable[str],
            failure: RecorderError | None) -> None:
    """The end of a step: its audit row, what it did, each problem (``label: line``, on stderr),
    then ``failure`` raised (the step is not done: the next ``catalog migrate`` goes on from it)."""
    rt.audit("catalog.migrate", target, detail)
    click.echo(said)
    for line in problems:
        click.echo(f"  {label}: {line}", err=True)
    if failure is not None:
        raise failure


def data_steps(rt: Runtime, batch_size: int, force: bool) -> None:
    """The data steps after the numbers are sealed, in order (each skips itself once done; one
    that cannot finish raises, and the next run of ``catalog migrate`` goes on from it)."""
    _sealed_entries(rt, batch_size, force)  # (first: it needs no other step, and guards replay)
    _stored_filters(rt, batch_size, force)
    _query_holds_sealed(rt)
    _named_numbers(rt, batch_size, force)
    _manifest_numbers(rt)
    _manifest_named(rt, force)
    _shrink_manifests(rt, batch_size)
    _rule_tags(rt, batch_size, force)  # (after the shrink: every stored manifest is read back)


def _stored_filters(rt: Runtime, batch_size: int, force: bool) -> None:
    """Export jobs' and report schedules' stored filters, and stored reports' QA agents, written
    before every field was masked: masked as they are masked when written now, once."""
    from pbx_recorder.catalog import stored_filters_pass

    if not force and not stored_filters_pass.pending(rt.conn, rt.numbers):
        return
    done = _exclusively(rt, lambda: stored_filters_pass.run(rt.conn, batch=batch_size, force=force,
                                                           numbers=rt.numbers, actor=rt.actor, role=rt.role,
                                                           progress=progress))
    if done is None:
        return
    rt.audit("catalog.migrate", "stored-filters", {"read": done.read, "masked": done.masked,
                                                   "done": done.done, "saved_searches_renamed": done.renamed,
                                                   "saved_search_names_unreadable": done.names_unreadable})
    click.echo("masked the stored filters and reports older versions kept in clear: "
               + ", ".join(f"{table} {done.masked.get(table, 0)} of {done.read.get(table, 0)}"
                           for table in ("export_jobs", "report_schedules", "reports"))
               + f"; saved searches sealed {done.masked.get('saved_searches', 0)} of "
                 f"{done.read.get('saved_searches', 0)}")
    for what, counts in (("renamed to their masked form", done.renamed),
                         ("left (the query does not open: delete them)", done.names_unreadable)):
        if counts:
            click.echo(f"saved searches whose name held a number, {what}: "
                       + ", ".join(f"{user} {n}" for user, n in sorted(counts.items())))


def _query_holds_sealed(rt: Runtime) -> None:
    """Query holds kept in clear by older versions sealed under the catalog key, each with its
    ``hold_rekeyed`` ledger entry (``catalog.query_holds_sealed_pass``), once."""
    from pbx_recorder.catalog import query_holds_sealed_pass as p

    if not p.pending(rt.conn, rt.numbers):
        return
    done = _exclusively(rt, lambda: p.run(rt.conn, rt.numbers))
    if done is None:
        return
    rt.audit("catalog.migrate", "query-holds", {"read": done.read, "sealed": done.sealed,
                                                "resealed": done.resealed, "left": done.left})
    click.echo(f"query holds sealed {done.sealed + done.resealed} of {done.read}"
               + "".join(f"\n  left as it is: {why}" for why in done.left))


def _named_numbers(rt: Runtime, batch_size: int, force: bool) -> None:
    """The index rows of the numbers older versions left out of ``call_numbers`` (a number inside
    a channel name or a dial string), re-derived from each call's sealed numbers, once."""
    from pbx_recorder.catalog import named_numbers_pass

    if not force and not named_numbers_pass.pending(rt.conn):
        return
    done = _exclusively(rt, lambda: named_numbers_pass.run(rt.conn, rt.numbers, batch=batch_size, force=force,
                                                          progress=progress))
    if done is None:
        return
    _finish(rt, "call-numbers", {"calls": done.calls, "indexed": done.indexed, "rows": done.rows,
                                 "failed": done.failed, "done": done.done},
            f"re-derived the numbers of {done.calls} calls: {done.indexed} calls got {done.rows} index "
            "rows they lacked" + ("" if done.done else "; not finished"), "not opened", done.errors,
            None if done.done else CryptoError(
                f"{done.failed} calls could not be opened; fix them (see `pbx-recorder verify`) and run "
                "`pbx-recorder catalog migrate` again"))


def _manifest_numbers(rt: Runtime) -> None:
    """Schema 12's data step: the numbers of manifests stored under schema 11 before it, read back
    from storage (each verified first) and sealed, so ``keys rotate-index`` re-indexes them."""
    from pbx_recorder.catalog import manifest_numbers
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.signing import load_public_key

    if not manifest_numbers.pending(rt.conn):
        return
    key_file = _signing_key(rt, "numbers of manifests stored under schema 11 not read back: no signing key "
                                "to check them with (`keys rotate-index` waits for this step)")
    if key_file is None:
        return
    done = _exclusively(rt, lambda: manifest_numbers.run(rt.conn, rt.numbers, rt.tiers,
                                                        keyring_of(rt.config, required=False),
                                                        load_public_key(key_file)))
    if done is None:
        return
    _finish(rt, "manifest-numbers", {"read": done.read, "sealed": done.sealed, "unread": len(done.unread),
                                     "done": done.done},
            f"read back {done.read} signed manifests stored under schema 11: {done.sealed} calls got "
            "sealed numbers their row does not hold" + ("" if done.done else "; not finished"),
            "not read", done.unread[:50],
            None if done.done else IntegrityError(
                f"{len(done.unread)} signed manifests could not be read back or verified (restore archived "
                "ones, fix the others: see `pbx-recorder verify`), then run `pbx-recorder catalog migrate` "
                "again; `keys rotate-index` waits for this step"))


def _manifest_named(rt: Runtime, force: bool) -> None:
    """The numbers only a signed manifest names, re-derived from the manifests of the calls that
    keep extra numbers (read back from storage, each verified first), once."""
    from pbx_recorder.catalog import manifest_named_pass
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.signing import load_public_key

    if not force and not manifest_named_pass.pending(rt.conn):
        return
    key_file = _signing_key(rt, "numbers only a signed manifest names not re-derived: no signing key to "
                                "check the manifests with")
    if key_file is None:
        return
    done = _exclusively(rt, lambda: manifest_named_pass.run(rt.conn, rt.numbers, rt.tiers,
                                                           keyring_of(rt.config, required=False),
                                                           load_public_key(key_file), force=force))
    if done is None:
        return
    _finish(rt, "manifest-named-numbers", {"calls": done.calls, "read": done.read, "indexed": done.indexed,
                                           "rows": done.rows, "unread": done.unread, "failed": done.failed,
                                           "done": done.done},
            f"read back {done.read} signed manifests of {done.calls} calls that keep extra numbers: "
            f"{done.indexed} calls got {done.rows} index rows they lacked"
            + ("" if done.done else "; not finished"),
            "not read", done.errors,
            None if done.done else IntegrityError(
                f"{done.unread} signed manifests could not be read back or verified and {done.failed} calls "
                "could not be opened (restore archived ones, fix the others: see `pbx-recorder verify`), "
                "then run `pbx-recorder catalog migrate` again"))


def _shrink_manifests(rt: Runtime, batch_size: int) -> None:
    """Schema 11's data step: rows written before keep only the copy and hash of their manifest."""
    from pbx_recorder.catalog.manifest_shrink import shrink
    from pbx_recorder.recording.signing import load_public_key

    key_file = _signing_key(rt, "manifest copies of older rows kept whole: no signing key to check them with")
    if key_file is None:
        return
    done = _exclusively(rt, lambda: shrink(rt.conn, rt.numbers, load_public_key(key_file), batch=batch_size))
    if done is None:
        return
    _finish(rt, "manifests", {"shrunk": done.shrunk, "kept_whole": len(done.kept)},
            f"kept the copy and hash of {done.shrunk} older rows' signed manifests"
            + ("; file vacuumed" if done.vacuumed else ""), "kept whole", done.kept,
            IntegrityError(f"{len(done.kept)} manifest copies do not verify against their signature: kept "
                           "whole, see `pbx-recorder verify`") if done.kept else None)


def _rule_tags(rt: Runtime, batch_size: int, force: bool) -> None:
    """The tags older calls' recording rules set, read back from their signed manifests (each
    verified first), recorded in ``calls.rule_tags`` and sealed (v2), once."""
    from pbx_recorder.catalog import rule_tags_pass
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.call_seal import CallSealer
    from pbx_recorder.recording.signing import load_public_key, load_signing_key

    if not force and not rule_tags_pass.pending(rt.conn):
        return
    key_file = _signing_key(rt, "rule tags of older calls not recorded: no signing key to check their "
                                "manifests and seal their rows with (four-eyes replay follows today's rules "
                                "for them)", private=True)
    if key_file is None:
        return
    key = load_signing_key(key_file)
    sealer = CallSealer(key, reveal=rt.numbers.open_call)  # as the daemon seals (app.py)
    done = _exclusively(rt, lambda: rule_tags_pass.run(rt.conn, rt.numbers, sealer, rt.tiers,
                                                      keyring_of(rt.config, required=False),
                                                      load_public_key(key), batch=batch_size, force=force))
    if done is None:
        return
    _finish(rt, "rule-tags", {"calls": done.calls, "read": done.read, "recorded": done.recorded,
                              "bare": done.bare, "unread": done.unread, "broken": done.broken,
                              "changed": done.changed, "done": done.done},
            f"recorded the rule tags of {done.recorded} of {done.calls} older calls from {done.read} "
            f"signed manifests ({done.bare} without a stored recording left as they are)"
            + ("" if done.done else "; not finished"), "not recorded", done.errors,
            None if done.done else IntegrityError(
                f"{done.unread} calls' manifests could not be read back or verified, {done.broken} calls' "
                f"seals do not verify and {done.changed} changed during the walk (restore archived ones, fix "
                "the others: see `pbx-recorder verify`), then run `pbx-recorder catalog migrate` again; "
                "until then four-eyes replay follows today's rules for them"))


def _sealed_entries(rt: Runtime, batch_size: int, force: bool) -> None:
    """The ``call_sealed`` ledger entry of each sealed call row older versions wrote without one
    (each row's seal verified first), once: the service's stand-in check and ``verify``'s check of
    deleted rows stand on it."""
    from pbx_recorder.catalog import sealed_entries_pass
    from pbx_recorder.recording.signing import load_public_key

    if not force and not sealed_entries_pass.pending(rt.conn):
        return
    key_file = _signing_key(rt, "older sealed calls not entered in the ledger: no signing key to check "
                                "their seals with (a bare row put in place of one is not told from a call "
                                "that was never sealed)")
    if key_file is None:
        return
    done = _exclusively(rt, lambda: sealed_entries_pass.run(rt.conn, rt.numbers, load_public_key(key_file),
                                                           batch=batch_size, force=force, progress=progress))
    if done is None:
        return
    _finish(rt, "call-sealed-entries", {"calls": done.calls, "recorded": done.recorded, "broken": done.broken,
                                        "resurrected": done.resurrected, "changed": done.changed,
                                        "done": done.done},
            f"entered {done.recorded} of {done.calls} sealed calls in the ledger as sealed (older rows "
            "sealed before the ledger recorded seals)" + ("" if done.done else "; not finished"),
            "not entered", done.errors,
            None if done.done else IntegrityError(
                f"{done.broken} calls' seals do not verify, {done.resurrected} sealed rows are present after "
                f"the ledger recorded their removal and {done.changed} changed during the walk (see "
                "`pbx-recorder verify`), then run `pbx-recorder catalog migrate` again"))
