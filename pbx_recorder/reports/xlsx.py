"""A report as an XLSX workbook (xlsxwriter, in memory: a report is a few dozen cells): a summary
sheet, recordings per tier, top tags and QA by agent, each list with a native Excel bar chart."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import xlsxwriter

from pbx_recorder.reports.charts import CONSENT_KEYS
from pbx_recorder.reports.figures import Figures


def _safe(text: str) -> str:
    """A cell text never read as a formula (tag and agent names come from users)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def workbook(fig: Figures, t: Callable[[str], str]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False,
                                     "strings_to_urls": False})
    bold = book.add_format({"bold": True})
    pct = book.add_format({"num_format": "0.0%"})
    summary = book.add_worksheet(t("reports.xlsx.summary"))
    summary.set_column(0, 0, 34)
    summary.set_column(1, 1, 18)
    totals = fig.totals
    rows: list[tuple[str, Any, Any]] = [
        (t("reports.period"), fig.period, None), (t("reports.team"), fig.team or t("reports.overall"), None),
        (t("reports.calls"), totals.calls, None), (t("reports.answered"), totals.answered, None),
        (t("reports.answer_rate"), fig.answer_rate, pct), (t("reports.talk_total"), totals.talk_s, None),
        (t("reports.talk_avg"), fig.talk_avg_s, None),
        (t("reports.consent_asked"), totals.consent_asked, None),
        *[(t(f"reports.consent.{k}"), fig.consent_rates[k], pct) for k in CONSENT_KEYS],
        (t("reports.refusals_routed"), totals.refusals_routed, None),
        (t("reports.recordings"), fig.recordings, None), (t("reports.bytes"), fig.bytes, None),
    ]
    if fig.late_erasures is not None:
        rows.append((t("reports.late_erasures"), fig.late_erasures, None))
    if fig.qa_refused:
        rows.append((t("reports.qa_refused"), fig.qa_refused, None))
    for i, (label, value, style) in enumerate(rows):
        summary.write_string(i, 0, label, bold)
        if isinstance(value, str):
            summary.write_string(i, 1, _safe(value))
        elif value is None:
            summary.write_blank(i, 1, None)
        else:
            summary.write_number(i, 1, float(value), style)
    _list(book, t("reports.xlsx.tiers"), [t("reports.tier"), t("reports.recordings"), t("reports.bytes")],
          [(r.tier, r.recordings, r.bytes) for r in fig.tiers], 2, t("reports.chart.tiers"), bold)
    _list(book, t("reports.xlsx.tags"), [t("reports.tag"), t("reports.calls")],
          [(r.tag, r.calls) for r in fig.tags], 1, t("reports.chart.tags"), bold)
    _list(book, t("reports.xlsx.qa"), [t("reports.rank"), t("reports.agent"), t("reports.qa_average"),
                                       t("reports.qa_reviews")],
          [(r.rank, r.agent, round(r.average, 2), r.reviews) for r in fig.qa], 2, t("reports.chart.qa"),
          bold, label_col=1)
    book.close()
    return out.getvalue()


def _list(book: Any, name: str, header: list[str], rows: list[tuple[Any, ...]], value_col: int,
          title: str, bold: Any, label_col: int = 0) -> None:
    sheet = book.add_worksheet(name)
    sheet.set_column(0, len(header) - 1, 18)
    for c, text in enumerate(header):
        sheet.write_string(0, c, text, bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(r, c, _safe(value))
            else:
                sheet.write_number(r, c, float(value))
    if not rows:
        return
    chart = book.add_chart({"type": "bar"})
    chart.add_series({"name": title, "categories": [name, 1, label_col, len(rows), label_col],
                      "values": [name, 1, value_col, len(rows), value_col]})
    chart.set_title({"name": title})
    chart.set_legend({"none": True})
    sheet.insert_chart(1, len(header) + 1, chart)
