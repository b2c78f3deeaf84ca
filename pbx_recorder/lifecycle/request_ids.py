"""The ids of the recorder's own requests and runs: ``<prefix>-`` and 12 hex digits with a letter.

Deletion requests (``DR-``), erasure requests (``ER-``), retention runs (``RT-``) and legal holds
(``H-``) are named so in audit rows, logs and receipts.  Twelve random hex digits are all digits
once in about 280 draws, and such an id read like a phone number to the masking of free text (an
audit row's target showed ``DR-136*****6023``): a new id always holds a letter, and the masking
keeps the older all-digit ones of these prefixes (``core.masking``).
"""

from __future__ import annotations

import secrets

HEX_DIGITS = 12


def new_id(prefix: str) -> str:
    """``<prefix>-`` and 12 random hex digits, at least one of them a letter."""
    while True:
        tail = secrets.token_hex(HEX_DIGITS // 2)
        if not tail.isdigit():
            return f"{prefix}-{tail}"
