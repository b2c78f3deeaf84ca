"""The recorder's own request ids in audit rows and logs: ``DR-``, ``ER-``, ``RT-``, ``H-`` and 12
random hex digits.  About one in 280 came out all digits, and the free-text masking took it for a
phone number: the audit row of viewing deletion request ``DR-136386146023`` named
``DR-136*****6023`` (found by a CI run of ``tests/peers/test_service_list_audit_remaining.py``),
so "who looked at this request" found nothing.  New ids always hold a letter; the masking keeps
the older all-digit ones of these prefixes, and only those."""

from __future__ import annotations

import pytest

from pbx_recorder.audit_trail import scrub
from pbx_recorder.core.masking import mask_text
from pbx_recorder.lifecycle import request_ids


@pytest.mark.parametrize("request_id", ["DR-136386146023", "ER-000000000001", "RT-999999999999",
                                        "H-123456789012"])
def test_an_all_digit_request_id_of_ours_is_kept_whole(request_id: str) -> None:
    assert mask_text(f"viewed {request_id}.") == f"viewed {request_id}."
    assert scrub(request_id, "target") == request_id  # an audit row's target


@pytest.mark.parametrize("text", ["XDR-136386146023", "DR-1363861460231", "DR-13638614602",
                                  "call me on 491511234567", "TEL-136386146023"])
def test_a_number_in_another_shape_is_still_masked(text: str) -> None:
    assert mask_text(text) != text


def test_a_new_id_always_holds_a_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["136386146023", "000000000001", "13638614602a"])
    monkeypatch.setattr(request_ids.secrets, "token_hex", lambda n: next(draws))
    assert request_ids.new_id("DR") == "DR-13638614602a"
    monkeypatch.undo()
    made = {request_ids.new_id("H") for _ in range(300)}
    assert all(len(i) == 2 + 12 and not i[2:].isdigit() for i in made)
