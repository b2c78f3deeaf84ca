"""The calls ticked on the search page, as the exports page reads them from ``?calls=``."""

from __future__ import annotations

from pbx_recorder.exports.audio_job import MAX_CALLS
from pbx_recorder.web.exports_page import selected_calls


def test_distinct_in_order_blank_and_overlong_ids_dropped() -> None:
    assert selected_calls("b, a,,b ,  ," + "x" * 129 + ",c") == ["b", "a", "c"]
    assert selected_calls("") == []


def test_at_most_the_audio_exports_limit() -> None:
    many = ",".join(f"c-{n}" for n in range(MAX_CALLS + 50))
    picked = selected_calls(many)
    assert len(picked) == MAX_CALLS and picked[0] == "c-0"
