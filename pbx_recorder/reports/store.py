"""The ``report_schedules`` and ``reports`` tables: saving a schedule, producing a period once
(compare-and-set on ``last_period``, so two runs at once cannot both produce it), listing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.reports.figures import Figures

MAX_NAME = 100
MAX_SCHEDULES_PER_OWNER = 50


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    owner: str
    name: str
    period: str
    team: str
    mail_to: str
    created_at: float
    last_period: str


@dataclass(frozen=True, slots=True)
class Produced:
    id: int
    schedule_id: int | None
    owner: str
    period: str
    period_key: str
    team: str
    created_at: float


_SCHEDULE = "id, owner, name, period, team, mail_to, created_at, last_period"
_PRODUCED = "id, schedule_id, owner, period, period_key, team, created_at"


def _schedule(r: Any) -> Schedule:
    return Schedule(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), float(r[6]), str(r[7]))


def _produced(r: Any) -> Produced:
    return Produced(int(r[0]), None if r[1] is None else int(r[1]), str(r[2]), str(r[3]), str(r[4]),
                    str(r[5]), float(r[6]))


def add_schedule(conn: Any, owner: str, name: str, period: str, team: str, mail_to: str, now: float) -> int:
    with Tx(conn):
        row = conn.execute("INSERT INTO report_schedules (owner, name, period, team, filter, mail_to,"
                           " created_at, last_period) VALUES (?, ?, ?, ?, '{}', ?, ?, '') RETURNING id",
                           (owner, name, period, team, mail_to, now)).fetchone()
    return int(row[0])


def count_schedules(conn: Any, owner: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM report_schedules WHERE owner = ?", (owner,)).fetchone()[0])


def schedules(conn: Any, owner: str | None = None) -> list[Schedule]:
    sql = f"SELECT {_SCHEDULE} FROM report_schedules"
    rows = conn.execute(sql + (" WHERE owner = ?" if owner else "") + " ORDER BY id",
                        (owner,) if owner else ()).fetchall()
    return [_schedule(r) for r in rows]


def delete_schedule(conn: Any, schedule_id: int, owner: str | None) -> bool:
    """Delete (``owner`` None: any owner's); False when there is none to delete."""
    with Tx(conn):
        if owner is None:
            cur = conn.execute("DELETE FROM report_schedules WHERE id = ?", (schedule_id,))
        else:
            cur = conn.execute("DELETE FROM report_schedules WHERE id = ? AND owner = ?",
                               (schedule_id, owner))
    return bool(cur.rowcount == 1)


def produce(conn: Any, schedule: Schedule, before: str, fig: Figures, now: float) -> int | None:
    """Store ``fig`` as the schedule's report of its period, once: the schedule's ``last_period``
    moves from ``before`` to the period in the same transaction; None when another run did first."""
    with Tx(conn):
        cur = conn.execute("UPDATE report_schedules SET last_period = ? WHERE id = ? AND last_period = ?",
                           (fig.period, schedule.id, before))
        if cur.rowcount != 1:
            return None
        row = conn.execute("INSERT INTO reports (schedule_id, owner, period, period_key, team, data,"
                           " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                           (schedule.id, schedule.owner, schedule.period, fig.period, schedule.team,
                            json.dumps(fig.to_dict(), sort_keys=True), now)).fetchone()
    return int(row[0])


def produced(conn: Any, owner: str | None, limit: int = 200) -> list[Produced]:
    sql = f"SELECT {_PRODUCED} FROM reports"
    rows = conn.execute(sql + (" WHERE owner = ?" if owner else "") + f" ORDER BY created_at DESC, id DESC"
                        f" LIMIT {int(limit)}", (owner,) if owner else ()).fetchall()
    return [_produced(r) for r in rows]


def produced_one(conn: Any, report_id: int) -> tuple[Produced, dict[str, Any]] | None:
    row = conn.execute(f"SELECT {_PRODUCED}, data FROM reports WHERE id = ?", (report_id,)).fetchone()
    if row is None:
        return None
    return _produced(row), json.loads(row[7])
