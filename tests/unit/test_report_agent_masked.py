"""A remote agent's dial string (``Local/4915112345678@from-queue/n``, a mobile number) never
reaches a report in clear: not the figures' JSON, the workbook, the PDF, the charts nor the mail a
supervisor's schedule sends to any address."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC
from pathlib import Path

from pypdf import PdfReader

from pbx_recorder.config.reports import SmtpConfig
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from pbx_recorder.reports import charts, mail, pdf, periods, queries, xlsx
from pbx_recorder.reports import figures as F
from pbx_recorder.web import i18n
from tests.unit.report_support import WEEK_START, seed_week

AGENT = "Local/4915112345678@from-queue/n"
DIGITS = "4915112345678"
NOW = WEEK_START + 8 * 86400


def _figures(tmp_path: Path) -> F.Figures:
    db = tmp_path / "catalog.db"
    seed_week(db)
    conn = open_catalog(db)
    try:
        with Tx(conn):
            conn.execute("INSERT INTO team_agents (team, agent) VALUES ('red', ?)", (AGENT,))
            conn.execute("INSERT INTO qa_reviews (call_id, reviewer, agent, scorecard_id, answers, score,"
                         " created_at, updated_at) VALUES ('c1', 'qa', ?, 1, '{}', 70, ?, ?)",
                         (AGENT, WEEK_START + 3600, WEEK_START + 3600))
        return queries.figures(conn, periods.parse("week", "2026-W48", UTC), "red", NOW)
    finally:
        conn.close()


def test_a_dial_string_agent_is_masked_in_every_report_output(tmp_path: Path) -> None:
    fig = _figures(tmp_path)
    t = i18n.translator("en")
    agents = [row.agent for row in fig.qa]
    assert "Local/491******5678@from-queue/n" in agents and "alice" in agents  # masked, names as they are
    assert DIGITS not in json.dumps(fig.to_dict())
    book = xlsx.workbook(fig, t)
    with zipfile.ZipFile(io.BytesIO(book)) as z:
        assert not any(DIGITS.encode() in z.read(n) for n in z.namelist())
    assert all(DIGITS not in svg for svg in charts.charts(fig, t))
    msg = mail.message(SmtpConfig("h", "r@example.com"), "out@example.com", fig, "weekly", book, t)
    body = msg.get_body()
    assert body is not None and DIGITS not in body.get_content()
    assert "491******5678" in body.get_content()
    data = pdf.document(fig, t)
    assert DIGITS.encode() not in data
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert DIGITS not in "".join(text.replace("\x00", "").split())


def test_a_report_stored_before_masking_is_masked_when_read_back() -> None:
    stored = F.compute("2026-W48", "red", 0, 1, F.CallTotals(), [], [], [], None).to_dict()
    # as a release before the fix stored it
    stored["qa"] = [{"agent": AGENT, "reviews": 1, "average": 70.0, "rank": 1}]
    fig = F.from_dict(json.loads(json.dumps(stored)))
    assert [row.agent for row in fig.qa] == ["Local/491******5678@from-queue/n"]
