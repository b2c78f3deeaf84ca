"""Loads ``tests/fixtures/reports/week.yaml`` (a readable week of calls, recordings, QA reviews
and erasure requests) into a catalog: SQLite, or PostgreSQL under ``PBXR_TEST_CATALOG``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pbx_recorder.catalog import Catalog
from pbx_recorder.lifecycle.journal import Tx, open_catalog

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "week.yaml"
WEEK_START = 1795392000.0  #: Monday 2026-11-23 00:00 UTC, ISO week 2026-W48


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    return data


def seed_week(db: Path, base: float = WEEK_START) -> dict[str, Any]:
    data = load()
    catalog = Catalog(db, clock=lambda: base)
    for c in data["calls"]:
        catalog.upsert_call({"call_id": c["id"], "agent": c["agent"], "caller_num": "+8613800000000",
                             "status": c["status"], "billsec": c["billsec"], "started_at": base + c["at"],
                             "consent_decision": c["consent"], "record_decision": c["record"],
                             "tags": c["tags"], "queue": "sales"})
    for n, r in enumerate(data["recordings"]):
        call = next(c for c in data["calls"] if c["id"] == r["call"])
        catalog.upsert_recording({"recording_id": f"r{n}", "call_id": r["call"], "state": "stored",
                                  "size": r["size"], "tier": r["tier"], "format": "wav", "duration_s": 60.0,
                                  "storage_key": f"k/{n}", "created_at": base + call["at"]})
    catalog.close()
    conn = open_catalog(db)
    try:
        with Tx(conn):
            for team, agents in data["teams"].items():
                for agent in agents:
                    conn.execute("INSERT INTO team_agents (team, agent) VALUES (?, ?)", (team, agent))
            for q in data["qa_reviews"]:
                conn.execute("INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score,"
                             " created_at, updated_at) VALUES (?, ?, ?, 1, '{}', ?, ?, ?)",
                             (q["call"], q["reviewer"], q["agent"], q["score"], base + q["at"],
                              base + q["at"]))
            for e in data["erasure_requests"]:
                conn.execute("INSERT INTO erasure_requests (request_id, subject, received_at, deadline,"
                             " completed_at, status, receipt) VALUES (?, 'h', ?, ?, ?, ?, ?)",
                             (e["id"], base + e["received"], base + e["deadline"],
                              None if e["completed"] is None else base + e["completed"],
                              "open" if e["completed"] is None else "done", json.dumps({})))
    finally:
        conn.close()
    return data
