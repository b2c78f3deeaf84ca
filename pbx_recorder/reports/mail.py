"""Mailing a produced report (stdlib smtplib) where ``web.reports.smtp`` is configured: a plain-text
summary of the figures in the body and the XLSX attached.  No caller data: the figures hold none.
STARTTLS (with certificate checks) before any credential; a failure raises ``ReportMailError``."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage

from pbx_recorder.config.reports import SmtpConfig
from pbx_recorder.core.planner import human
from pbx_recorder.errors import ReportMailError
from pbx_recorder.reports.charts import CONSENT_KEYS
from pbx_recorder.reports.figures import Figures, file_name

TIMEOUT_S = 30.0
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def body(fig: Figures, name: str, t: Callable[[str], str]) -> str:
    totals = fig.totals
    lines = [f"{name}: {fig.period} · {fig.team or t('reports.overall')}", "",
             f"{t('reports.calls')}: {totals.calls}", f"{t('reports.answer_rate')}: {_pct(fig.answer_rate)}",
             f"{t('reports.talk_total')}: {totals.talk_s:,.0f} s",
             f"{t('reports.talk_avg')}: {'-' if fig.talk_avg_s is None else f'{fig.talk_avg_s:,.0f} s'}"]
    lines += [f"{t(f'reports.consent.{k}')}: {_pct(fig.consent_rates[k])}" for k in CONSENT_KEYS]
    lines.append(f"{t('reports.refusals_routed')}: {totals.refusals_routed}")
    lines += [f"{t('reports.tier')} {row.tier}: {row.recordings} / {human(row.bytes)}" for row in fig.tiers]
    lines += [f"{t('reports.tag')} {row.tag}: {row.calls}" for row in fig.tags]
    lines += [f"#{row.rank} {row.agent}: {row.average:.1f} ({row.reviews})" for row in fig.qa]
    if fig.qa_refused:
        lines.append(f"{t('reports.qa_refused')}: {fig.qa_refused}")
    if fig.late_erasures is not None:
        lines.append(f"{t('reports.late_erasures')}: {fig.late_erasures}")
    return "\n".join(lines) + "\n"


def message(smtp: SmtpConfig, to: str, fig: Figures, name: str, xlsx: bytes,
            t: Callable[[str], str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = to
    subject_name = "".join(c if c.isprintable() else " " for c in name)  # never a header break
    msg["Subject"] = f"{t('reports.mail.subject')}: {subject_name} {fig.period}"
    msg.set_content(body(fig, name, t))
    msg.add_attachment(xlsx, maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1],
                       filename=file_name(fig, "xlsx"))
    return msg


def send(smtp: SmtpConfig, msg: EmailMessage, context: ssl.SSLContext | None = None) -> None:
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_S) as conn:
            conn.ehlo()
            if smtp.starttls:
                conn.starttls(context=context or ssl.create_default_context())
                conn.ehlo()
            if smtp.user:
                conn.login(smtp.user, smtp.password.reveal() if smtp.password else "")
            conn.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise ReportMailError(f"mail to {msg['To']} via {smtp.host}:{smtp.port} failed: {exc}") from exc
