"""The charts of a report page (pure): one SVG per figure group, titles in the reader's language."""

from __future__ import annotations

from collections.abc import Callable

from pbx_recorder.core.planner import human
from pbx_recorder.reports.figures import Figures
from pbx_recorder.reports.svg import bar_chart, percent

CONSENT_KEYS = ("notified", "granted", "refused", "timeout")


def charts(fig: Figures, t: Callable[[str], str]) -> list[str]:
    """SVG markup (labels escaped by :func:`bar_chart`), in the page's order."""
    totals = fig.totals
    out = [bar_chart("chart-calls", t("reports.chart.calls"),
                     [(t("reports.calls"), totals.calls), (t("reports.answered"), totals.answered),
                      (t("reports.unanswered"), totals.calls - totals.answered)])]
    out.append(bar_chart("chart-consent", t("reports.chart.consent"),
                         [(t(f"reports.consent.{k}"), fig.consent_rates[k] or 0.0) for k in CONSENT_KEYS],
                         percent))
    out.append(bar_chart("chart-tiers", t("reports.chart.tiers"),
                         [(row.tier, row.bytes) for row in fig.tiers], human))
    out.append(bar_chart("chart-tags", t("reports.chart.tags"), [(row.tag, row.calls) for row in fig.tags]))
    out.append(bar_chart("chart-qa", t("reports.chart.qa"), [(row.agent, row.average) for row in fig.qa],
                         lambda v: f"{v:.1f}"))
    return out
