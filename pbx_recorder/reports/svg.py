"""Charts drawn server-side as SVG (pure): horizontal bars, one per item, with its label and value.

The page's Content-Security-Policy allows no inline style, so the SVG carries only classes (styled
by ``static/reports.css``) and SVG presentation attributes (``fill``, ``x``, ``width`` ...).  Every
label is XML-escaped here: a tag or agent name carrying markup is drawn as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

WIDTH = 640
BAR_H = 22
GAP = 6
LABEL_W = 180
VALUE_W = 110
TOP = 30
MAX_LABEL = 40
PALETTE = ("#2f6db5", "#e08a1e", "#3a9a5b", "#b53f3f", "#7a5bb5", "#4aa3a3", "#9a7b3a", "#5b6b7a")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def bar_chart(chart_id: str, title: str, items: Sequence[tuple[str, float]],
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> str:
    """An ``<svg>`` element (a string of markup, every text escaped) of ``items`` as bars."""
    height = TOP + max(len(items), 1) * (BAR_H + GAP) + GAP
    top = max((v for _, v in items), default=0.0)
    span = WIDTH - LABEL_W - VALUE_W
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id={quoteattr(chart_id)} '
             f'role="img" aria-label={quoteattr(title)} viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}">',
             f'<text class="chart-title" x="0" y="18" font-size="14" font-weight="bold">'
             f'{escape(title)}</text>']
    if not items:
        parts.append(f'<text class="chart-empty" x="0" y="{TOP + 14}" font-size="12" fill="#666">–</text>')
    for i, (label, value) in enumerate(items):
        y = TOP + i * (BAR_H + GAP)
        w = 0.0 if top <= 0 else max(value, 0.0) / top * span
        parts.append(f'<g class="bar" data-label={quoteattr(label)} data-value="{value:g}">'
                     f'<text class="bar-label" x="{LABEL_W - 6}" y="{y + 15}" font-size="12" '
                     f'text-anchor="end">{escape(_clip(label))}</text>'
                     f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text class="bar-value" x="{LABEL_W + w + 6:.1f}" y="{y + 15}" '
                     f'font-size="12">{escape(fmt(value))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"

