"""A report as a PDF (fpdf2): the summary table and the same bar charts as the page, drawn with
PDF rectangles and text (no SVG conversion), in Noto Sans CJK SC (Debian ``fonts-noto-cjk``) so
Chinese labels and names print; fpdf2 embeds only the glyphs used (a report is ~100 kB).

Without the font file the PDF is not offered (:func:`available`); the XLSX always is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pbx_recorder.core.planner import human
from pbx_recorder.reports.charts import CONSENT_KEYS
from pbx_recorder.reports.figures import Figures
from pbx_recorder.reports.svg import PALETTE, percent

FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FONT_INDEX = 2  #: Noto Sans CJK SC in the collection (0 JP, 1 KR, 2 SC, 3 TC, 4 HK)
FAMILY = "NotoSansCJK"
LABEL_W, BAR_MAX, ROW_H = 55.0, 95.0, 6.0  # mm
MAX_LABEL = 30


def available(font: Path = FONT) -> bool:
    return font.is_file()


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _pct(value: float | None) -> str:
    return "-" if value is None else percent(value)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def document(fig: Figures, t: Callable[[str], str], font: Path = FONT) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font(FAMILY, fname=str(font), collection_font_number=FONT_INDEX)
    pdf.set_title(f"{t('reports.title')} {fig.period}")
    pdf.add_page()
    pdf.set_font(FAMILY, size=16)
    pdf.cell(0, 10, f"{t('reports.title')}: {fig.period} · {fig.team or t('reports.overall')}",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, size=10)
    totals = fig.totals
    rows = [(t("reports.calls"), str(totals.calls)), (t("reports.answered"), str(totals.answered)),
            (t("reports.answer_rate"), _pct(fig.answer_rate)),
            (t("reports.talk_total"), f"{totals.talk_s:,.0f} s"),
            (t("reports.talk_avg"), "-" if fig.talk_avg_s is None else f"{fig.talk_avg_s:,.0f} s"),
            (t("reports.consent_asked"), str(totals.consent_asked)),
            *[(t(f"reports.consent.{k}"), _pct(fig.consent_rates[k])) for k in CONSENT_KEYS],
            (t("reports.refusals_routed"), str(totals.refusals_routed)),
            (t("reports.recordings"), str(fig.recordings)), (t("reports.bytes"), human(fig.bytes))]
    if fig.late_erasures is not None:
        rows.append((t("reports.late_erasures"), str(fig.late_erasures)))
    if fig.qa_refused:
        rows.append((t("reports.qa_refused"), str(fig.qa_refused)))
    with pdf.table(col_widths=(70, 40), width=110, align="LEFT", first_row_as_headings=False) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label)
            row.cell(value)
    pdf.ln(4)
    _bars(pdf, t("reports.chart.calls"), [(t("reports.calls"), float(totals.calls)),
                                          (t("reports.answered"), float(totals.answered)),
                                          (t("reports.unanswered"), float(totals.calls - totals.answered))],
          lambda v: f"{v:,.0f}")
    _bars(pdf, t("reports.chart.consent"), [(t(f"reports.consent.{k}"), fig.consent_rates[k] or 0.0)
                                            for k in CONSENT_KEYS], percent)
    _bars(pdf, t("reports.chart.tiers"), [(r.tier, float(r.bytes)) for r in fig.tiers], human)
    _bars(pdf, t("reports.chart.tags"), [(r.tag, float(r.calls)) for r in fig.tags], lambda v: f"{v:,.0f}")
    _bars(pdf, t("reports.chart.qa"), [(f"{r.rank}. {r.agent} ({r.reviews})", r.average) for r in fig.qa],
          lambda v: f"{v:.1f}")
    return bytes(pdf.output())


def _bars(pdf: object, title: str, items: Sequence[tuple[str, float]], fmt: Callable[[float], str]) -> None:
    from fpdf import FPDF

    assert isinstance(pdf, FPDF)
    if pdf.get_y() + 12 + ROW_H * max(len(items), 1) > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.set_font(FAMILY, size=12)
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, size=9)
    top = max((v for _, v in items), default=0.0)
    if not items:
        pdf.cell(0, ROW_H, "–", new_x="LMARGIN", new_y="NEXT")
    for i, (label, value) in enumerate(items):
        y = pdf.get_y()
        pdf.cell(LABEL_W, ROW_H, _clip(label), align="R")
        width = 0.0 if top <= 0 else max(value, 0.0) / top * BAR_MAX
        pdf.set_fill_color(*_rgb(PALETTE[i % len(PALETTE)]))
        if width > 0:
            pdf.rect(pdf.l_margin + LABEL_W + 2, y + 1, width, ROW_H - 2, style="F")
        pdf.set_xy(pdf.l_margin + LABEL_W + 4 + width, y)
        pdf.cell(30, ROW_H, fmt(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
