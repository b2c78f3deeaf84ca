"""Masking of phone numbers and hostile strings for every output and log line.

Pure: no I/O.  Caller IDs and dialed digits are attacker-influenced, so everything
shown is stripped of control characters and bounded in length before masking.
"""

from __future__ import annotations

import unicodedata

MAX_SHOWN = 64  # longest string we ever echo back


def sanitize(value: object, limit: int = MAX_SHOWN) -> str:
    """Printable form of ``value``: control/format characters removed, at most ``limit`` chars."""
    text = "" if value is None else str(value)
    cleaned = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    if len(cleaned) > limit:
        return cleaned[: max(limit - 1, 0)] + "…"
    return cleaned


def mask_number(number: object) -> str:
    """``"13812345678" -> "138****5678"``; short numbers keep less in clear.

    * 8+ characters: first 3 and last 4 shown, the middle masked.
    * 5-7 characters: last 2 shown.
    * 1-4 characters (extensions, short codes): first one shown.
    A leading ``+`` is kept.  Non-digit junk is masked like digits.
    """
    text = sanitize(number, limit=32).strip()
    if not text:
        return ""
    prefix = ""
    if text.startswith("+"):
        prefix, text = "+", text[1:]
    n = len(text)
    if n >= 8:
        shown = text[:3] + "*" * (n - 7) + text[-4:]
    elif n >= 5:
        shown = "*" * (n - 2) + text[-2:]
    else:
        shown = text[:1] + "*" * (n - 1)
    return prefix + shown


def last4(number: object) -> str:
    """The last four digits of ``number`` ('' when it has none)."""
    digits = "".join(ch for ch in sanitize(number, limit=64) if ch.isdigit())
    return digits[-4:]
