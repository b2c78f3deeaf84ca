"""``pbx-recorder users seal [--check] [--include-broken [--table NAME ...]]``: seal the operator
service's access rows (accounts, teams, tokens, QA assignments, replay grants) and the QA rows
that grade people (scorecards, reviews) with ``web.secret_key_file``, once an admin has checked
them (after the upgrade to schema 21 or 23, or after turning the key on), and list the rows that
have no seal or fail it (``--check`` only lists).  See ``service/access_rows.py``.

Exit 0 when every row holds its seal afterwards; 6 (CatalogError) when rows stay unsealed
(``--check``); 4 (IntegrityError) when a row fails its seal, or a QA row without one is not what
the audit log wrote (``service/qa_evidence.py``), and ``--include-broken`` was not given for its
table (``--table`` narrows it to the tables named), or when a row holds what the recorder never
writes and cannot be sealed.
"""

from __future__ import annotations

import time
from typing import Any

import click

from pbx_recorder.cli import cmd_users
from pbx_recorder.errors import CatalogError, ConfigError, IntegrityError
from pbx_recorder.service.access_seal import FIELDS

_SHOWN = 50  #: rows named per table on the terminal (all are counted)


def _print(title: str, rows: dict[str, list[str]]) -> None:
    for table, names in sorted(rows.items()):
        if names:
            more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
            click.echo(f"{title} {table}: {len(names)}: {', '.join(names[:_SHOWN])}{more}")


def _evidence(config: Any) -> Any:
    """What QA rows without a seal are checked against: the audit chain with its signed head, and
    the call seal's public key (``service/qa_evidence.py``)."""
    from pbx_recorder.catalog.number_keys import protection_for
    from pbx_recorder.service import qa_evidence
    from pbx_recorder.service.context import seal_key_of

    def gathered(conn: Any) -> Any:
        try:
            public_key = seal_key_of(config)
        except ConfigError:  # (four-eyes on, the key unreadable): the call seals are not checked
            public_key = None
        return qa_evidence.gather(conn, config, public_key, lambda: protection_for(config))

    return gathered


@click.command("seal")
@click.option("--check", is_flag=True, help="Only list the rows without a seal or failing it.")
@click.option("--include-broken", is_flag=True,
              help="Also re-seal rows whose seal fails (after checking them: they were changed outside "
                   "the recorder).")
@click.option("--table", "tables", multiple=True, type=click.Choice(sorted(set(FIELDS) - {"sessions"})),
              help="With --include-broken: re-seal failing rows of this table only (repeat for more); "
                   "the others stay as they are.")
@click.pass_context
def seal_cmd(ctx: click.Context, check: bool, include_broken: bool, tables: tuple[str, ...]) -> None:
    """Seal the access rows with web.secret_key_file (rows an admin has checked)."""
    from pbx_recorder.service import access_rows

    if tables and not include_broken:
        raise click.UsageError("--table narrows --include-broken: give both")
    if check and include_broken:
        raise click.UsageError("--check only lists: it seals nothing (leave out --include-broken)")
    chosen = frozenset(tables) if tables else None

    with cmd_users.admin_session_config(ctx) as (config, accounts, who):
        if accounts.seal is None:
            raise ConfigError("is required to seal access rows (set it, run "
                              "`pbx-recorder users totp-key init`, then this)", key="web.secret_key_file")
        evidence = _evidence(config)
        if check:
            report = access_rows.survey(accounts.conn, accounts.seal, evidence)
        else:
            report = access_rows.seal_rows(accounts.conn, accounts.seal, include_broken=include_broken,
                                           actor=who.actor, role=who.role, now=time.time(), evidence=evidence,
                                           broken_tables=chosen)
    after = report.sealed_tables
    _print("without a seal (written after the table was sealed: not by the recorder):",
           {t: names for t, names in report.unsealed.items() if t in after})
    _print("without a seal:", {t: names for t, names in report.unsealed.items() if t not in after})
    _print("failing their seal:", report.broken)
    _print("without a seal and not what the audit log wrote (changed outside the recorder?):", report.differs)
    for table, count in sorted(report.sealed.items()):
        click.echo(f"sealed {table}: {count}")
    if report.sessions_ended:
        click.echo(f"sessions ended: {report.sessions_ended} (their users log in again)")
    left = {t: report.broken.get(t, []) + report.differs.get(t, [])
            + (report.unsealed.get(t, []) if t in after else [])
            for t in {*report.broken, *report.unsealed, *report.differs}}
    if check and not report.clean:
        if any(left.values()):
            raise IntegrityError("access rows fail their seal or have none in a sealed catalog: they were "
                                 "written outside the recorder")
        raise CatalogError("access rows have no seal: check them, then run `pbx-recorder users seal`")
    _print("left failing their seal (values the recorder never writes: delete them):", report.unsealable)
    _print("left as they were (added or changed while this ran: run it again):", report.moved)
    if any(report.moved.values()):
        raise IntegrityError("rows were added or changed while users seal ran (not by the recorder?): "
                             "check them with `pbx-recorder users seal --check`")
    if any(report.unsealable.values()):
        raise IntegrityError("rows hold values the recorder never writes and cannot be sealed: check and "
                             "delete them")
    resealed = {t for t in left if include_broken and (chosen is None or t in chosen)}
    kept = any(names for table, names in left.items() if table not in ("sessions", *resealed))
    if not check and kept:
        raise IntegrityError("access rows fail their seal and were left as they are (not honoured by the "
                             "service): check them, then `pbx-recorder users seal --include-broken`")
    click.echo("every access row holds its seal" if check else "done")
