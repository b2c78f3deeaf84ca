"""``pbx-recorder keys rotate-index``: a new blind-index key (privacy HMAC key), every keyed
number hash of the catalog re-made under it (``catalog.index_rotation``); resumable, audited."""

from __future__ import annotations

import time

import click

from pbx_recorder.progress import reporter


def register_rotate_index(keys: click.Group) -> None:
    @keys.command("rotate-index")
    @click.option("--batch", "batch_size", default=500, show_default=True, type=click.IntRange(1, 100000),
                  help="Calls re-indexed per transaction.")
    @click.option("--keep-old", is_flag=True,
                  help="Move the old index key to retired-index-keys/<id>.key instead of deleting it.")
    @click.option("--reindex", "reindex_only", is_flag=True,
                  help="No new key: re-make every call's indexes under the current key (a catalog "
                       "restored from a backup taken before a rotation).")
    @click.option("--status", "show_status", is_flag=True, help="Show the rotation's state; change nothing.")
    @click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
    @click.pass_context
    def rotate_index(ctx: click.Context, batch_size: int, keep_old: bool, reindex_only: bool,
                     show_status: bool, show_progress: bool) -> None:
        """Replace the privacy HMAC key and re-index every number under the new one (an interrupted
        run resumes where it stopped; searches find every call under either key meanwhile)."""
        from pbx_recorder.catalog import manifest_numbers
        from pbx_recorder.catalog.index_rotation import IndexRotation, load_state
        from pbx_recorder.lifecycle.job_lease import exclusive_job
        from pbx_recorder.lifecycle.runtime import Runtime

        rt = Runtime.load(ctx.obj["config_path"], "keys.manage", "index-key")
        try:
            state = load_state(rt.conn)
            if show_status:
                click.echo(_describe(state))
                waiting = manifest_numbers.pending(rt.conn)
                if waiting:  # schema 12's data step: a rotation would drop indexes it has not sealed yet
                    click.echo(f"{waiting}: run `pbx-recorder catalog migrate` before a rotation")
                return
            bars: dict[str, object] = {}

            def progress(phase: str, n: int) -> None:
                bar = bars.get(phase)
                if bar is None:
                    for old in bars.values():
                        old.close()  # type: ignore[attr-defined]
                    bar = bars[phase] = reporter(f"index key rotation: {phase}", force=show_progress)
                bar.advance(n)  # type: ignore[attr-defined]

            with exclusive_job(rt.config, "index-key-rotation") as busy:
                if busy:
                    click.echo(busy)
                    return
                rotation = IndexRotation(rt.conn, rt.config.privacy.hash_key_file, rt.numbers.cipher,
                                         batch=batch_size, progress=progress)
                try:
                    report = rotation.reindex() if reindex_only else rotation.run(keep_old=keep_old)
                finally:
                    for bar in bars.values():
                        bar.close()  # type: ignore[attr-defined]
                    r = rotation.report
                    rt.audit("keys.rotate_index", r.new or "index-key", {
                        "old_key": r.old, "new_key": r.new, "resumed": r.resumed, "finished": r.finished,
                        "calls_read": r.calls_read, "calls_reindexed": r.calls_reindexed,
                        "holds_rekeyed": r.holds_rekeyed, "requests_rekeyed": r.requests_rekeyed,
                        "errors": len(r.errors), "retired": r.retired, "at": time.time()})
        finally:
            rt.conn.close()
        if reindex_only:
            click.echo(f"re-indexed under index key {report.new}: {report.calls_read} call rows read, "
                       f"{report.calls_reindexed} re-indexed")
            return
        verb = "resumed" if report.resumed else "rotated"
        click.echo(f"{verb} index key {report.old} -> {report.new}: {report.calls_read} call rows read, "
                   f"{report.calls_reindexed} re-indexed, {report.holds_rekeyed} caller hold(s) and "
                   f"{report.requests_rekeyed} erasure request(s) re-keyed")
        click.echo(f"old index key {report.old}: " + (
            "deleted" if report.retired == "deleted" else f"kept at {report.retired}"))


def _describe(state: dict[str, object] | None) -> str:
    if state is None:
        return "no index key rotation has run on this catalog"
    if state.get("phase") == "done":
        return f"last rotation {state['old'] or '(re-index)'} -> {state['new']}: done"
    return (f"rotation {state['old']} -> {state['new']} in progress: phase {state['phase']}, "
            f"{state.get('done', 0)} call rows of this phase done (run `keys rotate-index` to resume; "
            "searches find calls under either key meanwhile)")
