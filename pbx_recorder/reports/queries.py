"""The aggregate SQL behind a report and the storage page (SQLite and PostgreSQL alike).

Every query is a GROUP BY / SUM over a time range on an indexed column (``calls_time``,
``call_tags_tag`` ... the planner picks), so a month of millions of calls comes back as a handful
of rows: no call row is ever loaded into Python.  A team's report narrows every query by
``agent IN (SELECT agent FROM team_agents WHERE team = ?)``, or, with sealed access rows, by the
list of the team's agents whose rows hold their seal (:func:`team_narrowing`); with sealed QA rows
the reviews are checked one by one (:func:`qa`).  No query selects a number column.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pbx_recorder.reports import figures as F
from pbx_recorder.reports.periods import Period

ASKED = "c.consent_decision NOT IN ('', 'not_required')"
#: a report's team narrowing: (SQL with ``{col}`` for the agent column, its arguments)
Team = tuple[str, tuple[Any, ...]]
EVERYONE: Team = ("", ())


def team_narrowing(conn: Any, team: str, seal: Any = None) -> Team:
    """How a report of ``team`` ('' = overall) narrows its queries.  ``seal``: the access rows'
    seal (``service.access_seal``): the team's agents are then read and checked here, and a row
    that fails its seal is not one of them."""
    if not team:
        return EVERYONE
    if seal is None:
        return " AND {col} IN (SELECT agent FROM team_agents WHERE team = ?)", (team,)
    from pbx_recorder.service.accounts import Accounts

    agents = sorted(Accounts(conn, seal=seal).agents_of([team]))
    if not agents:
        return " AND 1 = 0", ()
    return " AND {col} IN (" + ", ".join("?" for _ in agents) + ")", tuple(agents)


def _narrow(team: Team, col: str) -> Team:
    return team[0].replace("{col}", col), team[1]


def _where(period: Period, team: Team) -> tuple[str, tuple[Any, ...]]:
    sql, args = _narrow(team, "c.agent")
    return "c.started_at >= ? AND c.started_at < ?" + sql, (period.start, period.end, *args)


def call_totals(conn: Any, period: Period, team: Team) -> F.CallTotals:
    where, args = _where(period, team)
    row = conn.execute(
        "SELECT COUNT(*),"
        " SUM(CASE WHEN c.status = 'answered' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.status = 'answered' THEN COALESCE(c.billsec, 0) ELSE 0 END),"
        f" SUM(CASE WHEN {ASKED} THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.consent_decision = 'notified' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.consent_decision = 'granted' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.consent_decision = 'refused' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN c.consent_decision = 'timeout' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {ASKED} AND c.record_decision = 'refused' THEN 1 ELSE 0 END)"
        f" FROM calls c WHERE {where}", args).fetchone()
    n = [0 if v is None else v for v in row]
    return F.CallTotals(int(n[0]), int(n[1]), float(n[2]), int(n[3]), int(n[4]), int(n[5]), int(n[6]),
                        int(n[7]), int(n[8]))


def tiers(conn: Any, period: Period, team: Team) -> list[F.TierRow]:
    where, args = _where(period, team)
    rows = conn.execute(
        "SELECT r.tier, COUNT(*), SUM(COALESCE(r.size, 0)) FROM calls c"
        " JOIN recordings r ON r.call_id = c.call_id"
        f" WHERE {where} AND r.tier <> '' GROUP BY r.tier", args).fetchall()
    return [F.TierRow(str(r[0]), int(r[1]), int(r[2] or 0)) for r in rows]


def tags(conn: Any, period: Period, team: Team) -> list[F.TagRow]:
    narrow, extra = _narrow(team, "c.agent")
    sql = ("SELECT t.tag, COUNT(*) FROM call_tags t JOIN calls c ON c.call_id = t.call_id"
           " WHERE t.started_at >= ? AND t.started_at < ?" + narrow)
    args: tuple[Any, ...] = (period.start, period.end, *extra)
    rows = conn.execute(sql + f" GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag LIMIT {F.TOP_TAGS}",
                        args).fetchall()
    return [F.TagRow(str(r[0]), int(r[1])) for r in rows]


def qa(conn: Any, period: Period, team: Team, seal: Any = None) -> tuple[list[F.QaRow], int]:
    """Reviews by agent, and how many reviews of the period were left out because they fail their
    seal (``seal``: the service's, schema 23; without one nothing is checked and the database
    averages).  With a seal each review of the period is read (its sealed columns only: a few
    hundred bytes; reviews are a sample of the calls) and checked here."""
    narrow, extra = _narrow(team, "q.agent")
    where = " WHERE q.created_at >= ? AND q.created_at < ? AND q.agent <> ''" + narrow
    args: tuple[Any, ...] = (period.start, period.end, *extra)
    if seal is None:
        rows = conn.execute("SELECT q.agent, COUNT(*), AVG(q.score) FROM qa_reviews q" + where
                            + " GROUP BY q.agent", args).fetchall()
        return [F.QaRow(str(r[0]), int(r[1]), float(r[2])) for r in rows], 0
    from pbx_recorder.service import access_seal

    table = "qa_reviews"
    cols = ", ".join(f"q.{c}" for c in (*access_seal.FIELDS[table], "seal"))
    sums: dict[str, list[float]] = {}
    refused = 0
    for values in conn.execute(f"SELECT {cols} FROM qa_reviews q" + where, args):
        row = access_seal.as_row(table, values)
        if not access_seal.valid(seal, table, row):
            refused += 1
            continue
        total = sums.setdefault(str(row["agent"]), [0, 0.0])
        total[0] += 1
        total[1] += float(row["score"])
    return [F.QaRow(agent, int(n), total / n) for agent, (n, total) in sums.items()], refused


def late_erasures(conn: Any, period: Period, now: float) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM erasure_requests WHERE received_at >= ? AND received_at < ?"
        " AND ((completed_at IS NOT NULL AND completed_at > deadline)"
        " OR (completed_at IS NULL AND deadline < ?))", (period.start, period.end, now)).fetchone()
    return int(row[0])


def figures(conn: Any, period: Period, team: str, now: float, seal: Any = None) -> F.Figures:
    """The report of ``period`` for ``team`` ('' = overall); ``seal``: see :func:`team_narrowing`."""
    narrowing = team_narrowing(conn, team, seal)
    reviews, refused = qa(conn, period, narrowing, seal)
    fig = F.compute(period.key, team, period.start, period.end, call_totals(conn, period, narrowing),
                    tiers(conn, period, narrowing), tags(conn, period, narrowing), reviews,
                    None if team else late_erasures(conn, period, now))
    return replace(fig, extra={**fig.extra, "qa_refused": refused}) if refused else fig


def teams(conn: Any) -> list[str]:
    """Every team that has agents (the page's team picker for admin and auditor)."""
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT team FROM team_agents ORDER BY team")]


def stored_by_month(conn: Any, bounds: list[tuple[str, float, float]]) -> list[tuple[str, str, int, int]]:
    """(month, tier, recordings, bytes) of the recordings stored now, by the month they were made
    in (``bounds``: (month key, start, end) in the installation's zone, oldest first): one query,
    the month picked by a CASE over the bounds (portable; no engine's date functions)."""
    if not bounds:
        return []
    cases = " ".join("WHEN created_at >= ? AND created_at < ? THEN ?" for _ in bounds)
    args: list[Any] = []
    for key, start, end in bounds:
        args += [start, end, key]
    rows = conn.execute(
        f"SELECT m, tier, COUNT(*), SUM(COALESCE(size, 0)) FROM (SELECT CASE {cases} END AS m, tier, size"
        " FROM recordings WHERE created_at >= ? AND created_at < ? AND tier <> '') x"
        " WHERE m IS NOT NULL GROUP BY m, tier ORDER BY m, tier",
        (*args, bounds[0][1], bounds[-1][2])).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0)) for r in rows]


def storage_before(conn: Any, start: float) -> list[tuple[str, int]]:
    """(tier, bytes) of the recordings made before ``start`` (the stock the months add to)."""
    rows = conn.execute("SELECT tier, SUM(COALESCE(size, 0)) FROM recordings WHERE created_at < ?"
                        " AND tier <> '' GROUP BY tier ORDER BY tier", (start,)).fetchall()
    return [(str(r[0]), int(r[1] or 0)) for r in rows]


def recent_rate(conn: Any, start: float, end: float) -> tuple[float, float, str]:
    """(recorded calls per day, average recorded minutes per call, most stored format) over [start, end):
    the inputs of the ``plan`` forecast taken from what the installation actually records."""
    days = max((end - start) / 86400.0, 1.0)
    rec = conn.execute("SELECT COUNT(DISTINCT call_id), SUM(COALESCE(duration_s, 0)) FROM recordings"
                       " WHERE created_at >= ? AND created_at < ? AND kind = 'call'", (start, end)).fetchone()
    fmt = conn.execute("SELECT format, COUNT(*) FROM recordings WHERE created_at >= ? AND created_at < ?"
                       " GROUP BY format ORDER BY COUNT(*) DESC, format LIMIT 1", (start, end)).fetchone()
    recorded_calls = int(rec[0] or 0)
    minutes = float(rec[1] or 0) / 60.0 / recorded_calls if recorded_calls else 0.0
    return recorded_calls / days, minutes, str(fmt[0]) if fmt else "wav"


def class_counts(conn: Any, start: float, end: float) -> dict[str, int]:
    """Recordings made in [start, end) per retention class (the forecast's class shares)."""
    rows = conn.execute("SELECT retention_class, COUNT(*) FROM recordings WHERE created_at >= ?"
                        " AND created_at < ? AND kind = 'call' GROUP BY retention_class",
                        (start, end)).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
