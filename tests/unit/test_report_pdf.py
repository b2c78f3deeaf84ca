"""The PDF of a report (fpdf2, Noto Sans CJK SC from Debian's fonts-noto-cjk): Chinese labels and
names print, every figure is in it, a name carrying markup is plain text."""

from __future__ import annotations

import io

from pypdf import PdfReader

from pbx_recorder.reports import figures as F
from pbx_recorder.reports import pdf
from pbx_recorder.web import i18n


def test_the_pdf_holds_the_figures_in_chinese() -> None:
    assert pdf.available()  # .ci/install-system.sh installs fonts-noto-cjk
    totals = F.CallTotals(calls=10, answered=8, talk_s=900, consent_asked=5, granted=3, refused=1, timeout=1,
                          refusals_routed=1)
    fig = F.compute("2026-W48", "红队", 0, 1, totals,
                    [F.TierRow("hot", 3, 12345)], [F.TagRow("投诉", 4), F.TagRow("<b>x</b>", 1)],
                    [F.QaRow("张三", 2, 88.5)], None)
    data = pdf.document(fig, i18n.translator("zh"))
    assert data.startswith(b"%PDF-")
    raw = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    text = "".join(raw.replace("\x00", "").split())  # pypdf spaces out (and NUL-pads) the CID glyphs
    for expected in ("报表:2026-W48·红队", "通话10", "接听率80.0%", "同意60.0%", "拒绝后转接1", "hot12.3kB",
                     "投诉4", "<b>x</b>1", "1.张三(2)88.5"):
        assert expected in text, (expected, text)
    assert "逾期删除请求" not in text  # a team's report has no erasure figure
