"""``pbx-recorder reports run`` (pbx_recorder.reports.scheduled): every due, complete period of every
schedule is produced once and mailed through an in-process SMTP server; a second run produces and
mails nothing; an owner who may no longer read the team's report gets nothing; a mail that fails
leaves the report produced and is not sent again."""

from __future__ import annotations

import email
import io
import time
from datetime import UTC
from pathlib import Path

import pytest
from click.testing import CliRunner

from pbx_recorder.cli import cli
from pbx_recorder.config.reports import SmtpConfig
from pbx_recorder.lifecycle.journal import open_catalog
from pbx_recorder.reports import periods, scheduled, store
from pbx_recorder.service.accounts import Accounts
from pbx_recorder.web import i18n
from tests.peers.service_support import CHEAP, PASSWORD
from tests.peers.smtp_sink import SmtpSink, tls_pair
from tests.unit.report_support import WEEK_START, seed_week

SAVED = WEEK_START + 2 * 86400  # Wednesday of 2026-W48: W47 was the last complete week
NOW = WEEK_START + 8 * 86400  # Tuesday 1 December (W49): weeks W47, W48 and months 10, 11 are due
T = i18n.translator("en")


def _catalog(tmp_path: Path) -> Path:
    db = tmp_path / "catalog.db"
    seed_week(db)
    conn = open_catalog(db)
    try:
        accounts = Accounts(conn, hasher=CHEAP)
        accounts.add("boss", "admin", PASSWORD, actor="root", actor_role="host-admin", now=SAVED)
        accounts.add("lead", "supervisor", PASSWORD, teams=("red",), actor="root", actor_role="host-admin",
                     now=SAVED)
        store.add_schedule(conn, "lead", "red weekly", "week", "red", "lead@example.com", SAVED)
        store.add_schedule(conn, "lead", "everything", "week", "", "", SAVED)  # a lead may not: refused
        store.add_schedule(conn, "boss", "monthly", "month", "", "", SAVED)
    finally:
        conn.close()
    return db


def _run(db: Path, smtp: SmtpConfig | None, now: float = NOW) -> list[scheduled.Outcome]:
    conn = open_catalog(db)
    try:
        return scheduled.run(conn, UTC, now, smtp, T, actor="pbx-recorder", role="host-admin")
    finally:
        conn.close()


def test_due_periods_produced_once_and_mailed(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    with SmtpSink() as sink:
        smtp = SmtpConfig("127.0.0.1", "reports@example.com", sink.port, starttls=False)
        first = _run(db, smtp)
        produced = [(o.schedule_id, o.period) for o in first if o.report_id is not None]
        # monthly: October was the month complete when it was saved; November has ended since
        assert produced == [(1, "2026-W47"), (1, "2026-W48"), (3, "2026-10"), (3, "2026-11")]
        assert [o.note for o in first if o.schedule_id == 2] == ["owner lead may no longer read this report"]
        assert [o.mailed for o in first if o.schedule_id == 1] == ["lead@example.com"] * 2
        assert len(sink.messages) == 2
        again = _run(db, smtp)
        assert [o for o in again if o.report_id is not None] == []
        assert len(sink.messages) == 2  # nothing mailed twice
    mail = email.message_from_bytes(sink.messages[1].data)
    assert sink.messages[1].recipients == ["lead@example.com"] and mail["From"] == "reports@example.com"
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    lines = text.decode().splitlines()
    assert "red weekly: 2026-W48 · red" in lines and "Calls: 4" in lines and "Refusals routed: 1" in lines
    attachment = next(p for p in mail.walk() if p.get_filename())
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(attachment.get_payload(decode=True)))
    assert book["Summary"]["B3"].value == 4  # calls of team red in W48
    assert b"8613800000000" not in sink.messages[1].data  # no caller number in the mail
    conn = open_catalog(db)
    try:
        rows = conn.execute("SELECT schedule_id, period_key, team FROM reports ORDER BY id").fetchall()
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 'pbx-recorder'")]
    finally:
        conn.close()
    assert [tuple(r) for r in rows] == [(1, "2026-W47", "red"), (1, "2026-W48", "red"), (3, "2026-10", ""),
                                        (3, "2026-11", "")]
    assert actions.count("reports.produce") == 4 and actions.count("reports.mail") == 2


def test_credentials_go_only_over_starttls_with_a_checked_certificate(tmp_path: Path) -> None:
    import functools

    from pbx_recorder.config.secret import Secret
    from pbx_recorder.reports import mail

    db = _catalog(tmp_path)
    server_tls, client_tls = tls_pair(tmp_path)
    with SmtpSink(tls=server_tls) as sink:
        smtp = SmtpConfig("127.0.0.1", "reports@example.com", sink.port, starttls=True, user="rep",
                          password=Secret("pw"))
        untrusted = _run(db, smtp)  # the default context does not trust the self-signed certificate
        assert [o.note != "" and not o.mailed for o in untrusted if o.schedule_id == 1] == [True, True]
        assert sink.logins == [] and sink.messages == []
        db2 = _catalog(tmp_path / "again")
        conn = open_catalog(db2)
        try:
            sent = scheduled.run(conn, UTC, NOW, smtp, T, actor="pbx-recorder", role="host-admin",
                                 sender=functools.partial(mail.send, context=client_tls))
        finally:
            conn.close()
        assert [o.mailed for o in sent if o.schedule_id == 1] == ["lead@example.com"] * 2
        assert sink.logins == [("rep", "pw", True)] * 2 and len(sink.messages) == 2


def test_a_period_claimed_by_another_run_is_not_produced_twice(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    conn = open_catalog(db)
    try:
        schedule = store.schedules(conn, "lead")[0]
        from pbx_recorder.reports import queries

        fig = queries.figures(conn, periods.parse("week", "2026-W47", UTC), "red", NOW)
        assert store.produce(conn, schedule, "", fig, NOW) is not None
        assert store.produce(conn, schedule, "", fig, NOW) is None  # the same step, raced: refused
        count = conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
    finally:
        conn.close()
    assert count == 1


def test_a_failed_mail_keeps_the_report_and_is_not_resent(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    with SmtpSink() as closed:
        port = closed.port
    smtp = SmtpConfig("127.0.0.1", "reports@example.com", port, starttls=False)  # nothing listens
    first = _run(db, smtp)
    failed = [o for o in first if o.schedule_id == 1]
    assert [o.report_id is not None for o in failed] == [True, True]
    assert all("failed" in o.note and not o.mailed for o in failed)
    assert [o for o in _run(db, smtp) if o.report_id is not None] == []


def test_without_smtp_reports_are_produced_for_the_console(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    outcomes = _run(db, None)
    assert [o.period for o in outcomes if o.report_id] == ["2026-W47", "2026-W48", "2026-10", "2026-11"]
    assert all(not o.mailed and not o.note for o in outcomes if o.report_id)


def test_the_cli_runs_the_schedules_and_mails(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    seed_week(db)
    now = time.time()
    conn = open_catalog(db)
    try:
        Accounts(conn, hasher=CHEAP).add("boss", "admin", PASSWORD, actor="root", actor_role="host-admin",
                                         now=now)
        store.add_schedule(conn, "boss", "weekly", "week", "", "boss@example.com", now - 20 * 86400)
    finally:
        conn.close()
    due = periods.due("week", "", now - 20 * 86400, now, UTC)
    with SmtpSink() as sink:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"catalog: {{path: {db}}}\ntimezone: UTC\nweb:\n  reports:\n    smtp:\n"
                       f"      host: 127.0.0.1\n      port: {sink.port}\n      starttls: false\n"
                       f"      from: reports@example.com\n")
        result = CliRunner().invoke(cli, ["--config", str(cfg), "reports", "run"])
        assert result.exit_code == 0, result.output
        assert f"{len(due)} report(s) produced" in result.output
        assert len(sink.messages) == len(due) >= 2
        again = CliRunner().invoke(cli, ["--config", str(cfg), "reports", "run"])
        assert again.exit_code == 0 and "0 report(s) produced" in again.output
        assert len(sink.messages) == len(due)


@pytest.mark.parametrize("smtp,key,words", [
    ("{host: mail.example, from: 'not an address'}", "web.reports.smtp.from", "plain mail address"),
    ("{host: mail.example, from: a@b.example, password: x}", "web.reports.smtp.user", "is required"),
    ("{host: mail.example, from: a@b.example, user: u, password: x, starttls: false}",
     "web.reports.smtp.starttls", "must be true"),
    ("{from: a@b.example}", "web.reports.smtp.host", "is required"),
    ("{host: mail.example, from: a@b.example, port: 70000}", "web.reports.smtp.port", ""),
    ("{host: mail.example, from: a@b.example, sender: x}", "web.reports.smtp", "sender"),
])
def test_smtp_config_errors_name_the_key(tmp_path: Path, smtp: str, key: str, words: str) -> None:
    from pbx_recorder.config import load_config
    from pbx_recorder.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path / 'x.db'}}}\nweb:\n  reports:\n    smtp: {smtp}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(cfg))
    assert key in str(caught.value) and words in str(caught.value)


def test_smtp_config_read_with_the_password_from_a_file(tmp_path: Path) -> None:
    from pbx_recorder.config import load_config

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"catalog: {{path: {tmp_path / 'x.db'}}}\nweb:\n  reports:\n    smtp:\n"
                   f"      host: mail.example\n      user: rep\n      password_file: {secret}\n"
                   f"      from: reports@example.com\n")
    smtp = load_config(str(cfg)).web.reports.smtp
    assert smtp is not None and smtp.port == 587 and smtp.starttls and smtp.password is not None
    assert smtp.password.reveal() == "s3cret" and "s3cret" not in repr(smtp)
