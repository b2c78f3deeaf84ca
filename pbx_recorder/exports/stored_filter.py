"""What an export job keeps of its search filter (``export_jobs.filter``): every value masked.

The row outlives an erasure, and a number can be typed in any field (a keyword, an agent's dial
string, a call id), so each field is masked: numbers as numbers (``mask_field``), the agent as a
channel (``mask_channel``), the rest as free text (``mask_text``).  This copy is only shown (the
job's page, the audit row); the job runs on the filter parsed from the request
(``service.api_calls.filters_of``), held in memory by its thread, so nothing ever needs the number
back from the row: a mask, not a blind index, is the right form at rest.

:func:`masked` is what the service writes.  :func:`masked_again` is what ``catalog migrate``
rewrites a row written before every field was masked with (``catalog.stored_filters_pass``): a
value that shows no number is left as it is, so a value masked already is never masked twice
(``mask_field`` of ``138****8000`` would hide its last digits too) and a second run changes
nothing.  Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pbx_recorder.core.masking import mask_channel, mask_field, mask_text

#: the search form's fields an export keeps (anything else in the request is not kept)
FILTER_KEYS = ("from", "to", "preset", "status", "caller", "callee", "call_id", "agent", "queue", "tag",
               "consent", "keyword", "sort")
NUMBER_KEYS = ("caller", "callee")
CHANNEL_KEYS = ("agent",)  # a remote agent is named by its dial string (``Local/4915112345678@...``)
MAX_VALUE = 256
_MAX_ROUNDS = 8


def masked_value(key: str, value: str) -> str:
    """One field's value as it is kept: what it shows of a number is masked until it shows none.
    (A dial string's number in groups, ``Local/0151 1234 5678@x``, is caught by ``mask_text``
    after ``mask_channel``; ``mask_field`` of ``SIP/<number>-00000001`` leaves ``5678-000*0001``,
    which reads as a number in groups: masked once more.)"""
    value = value[:MAX_VALUE]
    if key in NUMBER_KEYS:
        out = mask_field(value)
    else:
        out = mask_text(mask_channel(value) if key in CHANNEL_KEYS else value)
    for _ in range(_MAX_ROUNDS):  # (each round leaves fewer digits: it ends)
        if not shows_a_number(out):
            break
        out = mask_text(mask_channel(out))
    return out


def masked(values: Mapping[str, Any]) -> dict[str, str]:
    """The filter to keep, from the request's values (the form's fields only, empty ones dropped)."""
    out: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = values.get(key)
        if value:
            out[key] = masked_value(key, str(value))
    return out


def shows_a_number(value: str) -> bool:
    """Does ``value`` hold something the masks would hide (a run of 5+ digits in a dial string,
    6+ anywhere, a number written in groups)?  Masked output holds none."""
    return mask_text(mask_channel(value)) != value


def masked_again(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored filter with every value that still shows a number masked as :func:`masked` masks
    it; values that show none (masked already, a date, a status) are kept as they are.  A value
    that is not text (never written so, but a row is only data) is masked as its JSON text."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        if shows_a_number(text):
            out[key] = masked_value(str(key), text)
        else:
            out[key] = value
    return out
