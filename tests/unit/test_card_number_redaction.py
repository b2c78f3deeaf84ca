"""``core.masking.redact_card_numbers`` (free text as it may be stored: a payment card number
never) and ``shown_text`` (free text as shown: numbers masked unless unmasked)."""

from __future__ import annotations

import pytest

from pbx_recorder.core.masking import redact_card_numbers, shown_text


@pytest.mark.parametrize(("typed", "stored"), [
    ("4111111111111111", "[card ****1111]"),
    ("card 4111 1111 1111 1111 exp 12/27", "card [card ****1111] exp 12/27"),
    ("5500-0055-5555-5559 and 378282246310005", "[card ****5559] and [card ****0005]"),  # Amex: 15
    ("卡号6011111111111117谢谢", "卡号[card ****1117]谢谢"),
])
def test_luhn_valid_card_numbers_are_redacted(typed: str, stored: str) -> None:
    assert redact_card_numbers(typed) == stored


@pytest.mark.parametrize("typed", [
    "4111 1111 1111 1112",  # fails the Luhn check: not a card number, kept (shown masked)
    "call back on 13812345678",  # a phone number: 11 digits
    "+4111111111111111",  # a + before it: a phone number in international form
    "ticket 2026-12-06 10:00, ext 2201",
    "uniqueid 1732200000.42",
    "",
])
def test_other_text_is_kept_as_typed(typed: str) -> None:
    assert redact_card_numbers(typed) == typed


def test_shown_text_masks_numbers_unless_unmasked() -> None:
    note = "call back on 13812345678, ext 2201"
    assert shown_text(note, False) == "call back on 138****5678, ext 2201"
    assert shown_text(note, True) == note
    assert shown_text(None, False) == ""
