"""Review finding: the free-text masker (every log line, error, audit detail, hold reason) left
most of a number with a bracketed area code in clear (``(021) 5555-1234`` -> ``(021) 555*1234``)
and kept a number in dotted groups whole, taking it for an IPv4 address (``030.123.456.78``).
Real addresses stay readable."""

from __future__ import annotations

import pytest

from pbx_recorder.audit_trail import scrub
from pbx_recorder.core.masking import mask_text


@pytest.mark.parametrize("text", [
    "(021) 5555-1234",
    "(0151) 1234-5678",
    "030.123.456.78",
    "Rückruf (0151)1234-5678 bitte",
    "客户(021) 5555-1234投诉",
    "call 0151 (123) 45678 back",
    "ip-like 300.123.45.678",
    "dotted 01.02.03.04",
])
def test_bracketed_and_dotted_numbers_keep_only_a_prefix_and_the_last_four(text: str) -> None:
    digits = "".join(ch for ch in text if ch.isdigit())
    for out in (mask_text(text), scrub({"reason": text})["reason"]):
        shown = "".join(ch for ch in out if ch.isdigit())
        # at most a 3-digit prefix and the last 4 digits, as mask_number keeps them
        assert len(shown) <= 7 and shown.endswith(digits[-4:]) and "*" in out, (text, out)


def test_the_bracketed_number_of_the_review_reads_masked() -> None:
    assert mask_text("(021) 5555-1234") == "021****1234"
    assert mask_text("(0151) 1234-5678") == "015*****5678"
    assert mask_text("030.123.456.78") == "030****5678"


@pytest.mark.parametrize("text", [
    "ami 10.0.0.1:5038 from 192.168.100.200",
    "from 192.168.100.200.",  # an address ending a sentence
    "allow 10.0.0.0/8 and 255.255.255.0",
    "calls (12) 3 of 40, ext (1001)",
    "v1.2.3.4 retry (5 s)",
])
def test_addresses_and_short_bracketed_figures_stay_readable(text: str) -> None:
    assert mask_text(text) == text


def test_a_recording_file_names_compact_utc_time_stays_readable() -> None:
    # log lines name recording files (``<call id>_call001_20251201T150000Z-tx.wav``): the time is
    # not a number; a number glued to such a tail still is
    name = "n1_20261201150000-1700000000.1_call001_20251201T150000Z-tx.wav"
    assert mask_text(f"{name} kept for an operator") == f"{name} kept for an operator"
    assert "13800138000" not in mask_text("ref 13800138000T123456Z")
