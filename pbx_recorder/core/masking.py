"""Masking of phone numbers and hostile strings for every output and log line.

Pure: no I/O.  Caller IDs and dialed digits are attacker-influenced, so everything
shown is stripped of control characters and bounded in length before masking.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

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

    * 11+ characters: first 3 and last 4 shown, the middle (4 or more) masked.
    * 8-10 characters: last 4 shown (first 3 as well would leave 1-3 digits hidden: a handful of
      throttled full-number searches would find the number).
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
    if n >= 11:
        shown = text[:3] + "*" * (n - 7) + text[-4:]
    elif n >= 8:
        shown = "*" * (n - 4) + text[-4:]
    elif n >= 5:
        shown = "*" * (n - 2) + text[-2:]
    else:
        shown = text[:1] + "*" * (n - 1)
    return prefix + shown


def last4(number: object) -> str:
    """The last four digits of ``number`` ('' when it has none)."""
    digits = "".join(ch for ch in sanitize(number, limit=64) if ch.isdigit())
    return digits[-4:]


# --- whole records: the one place that decides what an output shows of a call ---------------

#: call-row columns that hold a number
NUMBER_COLUMNS = ("caller_num", "callee_num", "did")
#: CDR fields (as ``ami.normalize`` names them) shown as they are: times, counts, outcomes,
#: Asterisk ids.  Every other CDR field (src, dst, clid, channel, dstchannel, lastdata,
#: pbxrecdnid, cdr_manager.conf extras ...) may carry a number and is masked: default deny.
CDR_PLAIN_FIELDS = frozenset({
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "lastapp", "uniqueid", "linkedid", "sequence", "queue",  # (accountcode: a PBX may bill by number)
})
#: fields of other records (audit details, live calls) that hold numbers
NUMBER_KEYS = frozenset({*NUMBER_COLUMNS, "caller", "callee", "number", "src", "dst", "clid",
                         "dnid", "pbxrecdnid", "pbxrec_dnid", "rdnis", "exten", "channel", "channels",
                         "dstchannel", "lastdata", "connectedlinenum", "calleridnum", "dialed"})

#: fields that name channels or dial strings: numbers in them are masked, extensions and the
#: channel's unique suffix (``PJSIP/1001-0000000a``) stay readable
CHANNEL_KEYS = frozenset({"channel", "channels", "dstchannel", "lastdata",
                          # a queue member is named by its interface when it has no name: a remote
                          # agent's mobile (``Local/4915112345678@from-queue/n``) is a number too
                          "agent", "membername", "interface"})

_WHOLE_NUMBER = re.compile(r"\+?[\d\s().\-/]*\d[\d\s().\-/]*")
_DIGIT_RUN = re.compile(r"\d{3,}")
# -- free text (log lines, errors, audit details, reasons typed by people) -------------------
# A number is masked wherever it stands: between letters or CJK characters (``客户13800138000投诉``),
# after a dot (``Tel.13800138000``), or written in groups (``138-0013-8000``, ``0151 1234 5678``).
# What is kept readable is named, and cut out of the text before the numbers are looked for:
# (each starts a word and with a hex digit: the guard lets every other position fail at once)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_KEPT_IN_TEXT = re.compile(
    # a call id whose Asterisk uniqueid carries the PBX's ``systemname`` (``pbx1_<systemname>-
    # 1732200000.42``): the system name is the admin's (it may hold a run of digits, as the test
    # bed's ``20261205155221-sbx17705x682886`` does); taken first, or the audit row of a call (its
    # target) and the log lines naming it would show another id than the call's.  Only a name
    # whose parts joined by ``-`` each hold a letter (the first may be all digits, as after any
    # ``_``): a number written in groups (``_0151-1234-5678-1732200000.1``) is still masked
    r"(?<=_)(?:\d+-)?(?:[0-9A-Za-z]*[A-Za-z][0-9A-Za-z]*-)+\d{10}\.\d+(?![\d.])|"
    "(?<![0-9A-Za-z])(?=[0-9A-Fa-f])(?:" + "|".join((
    # a FreeSWITCH call id: a UUID whose groups can be all digits (``...-988012347883``)
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])",
    # a date, with its time (``2026-12-01 15:59:47``, ``2026-12-01T10:00``, ``01.12.2026``)
    r"(?<![\d.\-/])\d{4}([-/.])\d{1,2}\1\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?(?![\d\-/])",
    r"(?<![\d.\-/])\d{1,2}([-/.])\d{1,2}\2\d{4}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?(?![\d\-/])",
    # a compact UTC time as recording file names carry it (``..._call001_20251201T150000Z.wav``)
    r"(?<!\d)\d{8}T\d{6}Z(?![\dA-Za-z])",
    # an IPv4 address (``10.0.0.1``, ``10.0.0.1:5038``, ``10.0.0.0/8``, one ending a sentence): a
    # valid dotted quad only (four groups, each 0-255 without a leading zero), so a number written
    # in dotted groups (``030.123.456.78``) is not taken for one
    r"(?<![\d.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?!\d|\.\d)",
    # an epoch time or an Asterisk uniqueid/linkedid (``1732200000.42``), the part of an id after
    # ``_`` (``pbx1_1732200000.42``, a PBX boot tag ``pbx1_20261201123456-...``)
    r"(?<![\d.])\d{10}\.\d+(?![\d.])",
    r"(?<=_)\d+",
    # an HTTP byte range as a play's audit row records it (``bytes=10000-99999999``)
    r"(?<![\w])bytes=\d*-\d*(?:, ?\d*-\d*)*(?![\d\-])",
    # a hex word with a letter in it: a hash, a key id, a request id (``H-3a1234567b9c``)
    r"(?<![0-9A-Za-z])(?=[0-9A-Za-z]*[A-Fa-f])[0-9A-Fa-f]{8,}(?![0-9A-Za-z])",
    # the recorder's own request ids whose 12 hex digits hold no letter (one in 280 of those made
    # before session 37: ``DR-136386146023``): deletion, erasure, retention run, hold
    r"(?:(?<=\b(?:DR|ER|RT)-)|(?<=\bH-))[0-9a-f]{12}(?![0-9A-Za-z])",
)) + ")")
#: digits, or groups of digits each joined to the next by one ``-``, ``.``, ``/`` or space, or
#: by a bracket around an area code (``(021) 5555-1234``, ``(0151)1234-5678``, ``0151 (123) 45``;
#: the opening bracket is taken with the number) (six characters at least: a shorter one holds
#: fewer than six digits, and is kept without a look)
_GROUP_JOIN = r"(?:\) ?| ?\(|[ \-./])"
_DIGIT_GROUPS = re.compile(r"(?=[\d \-./()]{6})\(?\d+(?:" + _GROUP_JOIN + r"\d+)*")
_ANY_DIGIT = re.compile(r"\d")
_SEPARATOR = re.compile(r"[ \-./()]+")
_SEPARATOR_KEPT = re.compile(r"([ \-./()]+)")
_TEXT_RUN_DIGITS = 6  # a run of this many digits is a number wherever it stands
_TEXT_GROUPED_DIGITS = 7  # groups of digits totalling this many are a number written in groups
# an Asterisk channel's own sequence suffix (``PJSIP/mallory-00000002``, 8 hex digits after the
# name's ``-``) is not a number: left readable, as ``mask_channel`` leaves it
_CHANNEL_SUFFIX = re.compile(r"-\d{8}$")
_CHANNEL_NAME = re.compile(r"[A-Za-z]+/[^/]*-$")  # what precedes a suffix: ``PJSIP/mallory-``
_CHANNEL_TECH = re.compile(r"[A-Za-z]+/$")  # what precedes a number and its suffix: ``SIP/``
# an international number written in groups (``+49 151 1234 5678``, ``tel:+49-151-1234-5678``):
# no run reaches 6 digits, but the leading ``+`` says what it is
_GROUPED_NUMBER = re.compile(r"(?<![\w+])\+\d{1,4}(?:[ \-./()]{1,2}\d{1,6}){1,6}(?![\w])")
#: a channel's own sequence suffix (``-0000000a``; a Local channel's ``;1`` or ``;2`` after it)
_CHANNEL_TAIL = re.compile(r"(?:-[0-9a-fA-F]{8})?(?:;\d)?$")
#: digits in a channel name, groups joined by ``-``, ``.`` or a space counted as one number
_CHANNEL_DIGITS = re.compile(r"\+?\d+(?:[\-. ]\d+)*")
#: digit groups that are no number: an Asterisk unique id (``1764583200.42``), an ISO date
_CHANNEL_KEPT = re.compile(r"\d{9,10}\.\d{1,6}|\d{4}-\d{2}-\d{2}")


def mask_field(value: object) -> str:
    """A value that may carry a number: a bare number masked with :func:`mask_number`; in any
    other text (``"Caller" <4915112345678>``, ``PJSIP/4915112345678@trunk``) every run of
    3+ digits is masked the same way."""
    text = sanitize(value, limit=MAX_SHOWN * 2)
    if not text:
        return ""
    if _WHOLE_NUMBER.fullmatch(text):
        return mask_number("".join(ch for ch in text if ch.isdigit() or ch == "+"))
    return _DIGIT_RUN.sub(lambda m: mask_number(m.group(0)), text)


def mask_channel(value: object) -> str:
    """A channel name or dial string: ``SIP/4915112345678-00000001`` -> ``SIP/491******5678-00000001``;
    ``PJSIP/1001-0000000a`` is left as it is (an extension, the channel's own suffix).  A number
    wherever it stands in the name (``PJSIP/trunk_13812345678-00000001``, after a ``_``, ``-`` or
    ``.``) and one written in groups (``Local/0049-151-12345678@x``: 5+ digits in all) is masked
    whole; only the channel's own sequence suffix (``-0000000a``, ``;1`` of a Local channel) stays
    readable.  (Before session 45 a number after ``_``, ``-`` or ``.`` was left in clear.)"""
    text = sanitize(value, limit=MAX_SHOWN * 2)
    tail = _CHANNEL_TAIL.search(text)
    head, end = (text[:tail.start()], tail.group(0)) if tail else (text, "")
    return _CHANNEL_DIGITS.sub(_masked_group, head) + end


def _masked_group(found: re.Match[str]) -> str:
    group = found.group(0)
    if _CHANNEL_KEPT.fullmatch(group):  # an Asterisk unique id, a date: not a number
        return group
    number = "".join(ch for ch in group if ch.isdigit() or ch == "+")
    return mask_number(number) if sum(ch.isdigit() for ch in number) >= 5 else group


def mask_text(text: str) -> str:
    """Free text (a log line, an error, an audit detail, a reason someone typed): every run of 6+
    digits masked wherever it stands (between letters or CJK characters, after a dot), and every
    number written in groups (``138-0013-8000``, ``0151 1234 5678``, ``+49 151 1234 5678``: groups
    joined by ``-``, ``.``, ``/`` or a space, 7+ digits in all).  Left readable: call ids and
    recording ids (FreeSWITCH's UUIDs, Asterisk's ``1732200000.42``, what follows ``_``), dates and
    times, IPv4 addresses, an HTTP byte range, hex words (hashes, key and request ids), a channel's
    sequence suffix, and anything shorter (extensions, durations, sizes)."""
    out: list[str] = []
    at = 0
    for kept in _KEPT_IN_TEXT.finditer(text):
        out.append(_mask_numbers(text[at:kept.start()]))
        out.append(kept.group(0))
        at = kept.end()
    out.append(_mask_numbers(text[at:]))
    return "".join(out)


def _mask_numbers(text: str) -> str:
    """:func:`mask_text` over a piece of text that holds nothing to keep."""
    if _ANY_DIGIT.search(text) is None:
        return text
    text = _GROUPED_NUMBER.sub(_mask_grouped, text)
    # (a ``+`` before a run stays where it is: ``+4930123456`` -> ``+******3456``, as mask_number)
    return _DIGIT_GROUPS.sub(lambda m: _mask_digit_groups(m, text), text)


def _mask_digit_groups(match: re.Match[str], text: str) -> str:
    found = match.group(0)
    head, suffix = found, ""
    if len(found) > 9 and found[-9] == "-" and _CHANNEL_SUFFIX.search(found) \
            and _CHANNEL_TECH.search(_word_before(text, match.start())):
        head, suffix = found[:-9], found[-9:]  # ``SIP/<number>-00000009``: the number, then the suffix
    elif len(found) == 8 and _CHANNEL_NAME.search(_word_before(text, match.start())):
        return found  # ``PJSIP/mallory-00000002``
    groups = _SEPARATOR.split(head)
    digits = "".join(groups)
    if len(groups) > 1 and len(digits) >= _TEXT_GROUPED_DIGITS:
        return mask_number(digits) + suffix
    return "".join(mask_number(part) if len(part) >= _TEXT_RUN_DIGITS else part
                   for part in _SEPARATOR_KEPT.split(head)) + suffix


def _word_before(text: str, end: int) -> str:
    """The characters before ``end`` back to the last space (where a channel's name starts)."""
    start = max(0, end - 80)
    space = text.rfind(" ", start, end)
    return text[space + 1 if space >= 0 else start:end]


def _mask_grouped(match: re.Match[str]) -> str:
    digits = "".join(ch for ch in match.group(0) if ch.isdigit())
    return mask_number("+" + digits) if len(digits) >= 8 else match.group(0)


def mask_value(key: str, value: Any) -> Any:
    """``value`` of field ``key`` for a role that may not see numbers (lists and dicts too)."""
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    if key.lower() in CHANNEL_KEYS and isinstance(value, str):
        return mask_channel(value)
    if key.lower() in NUMBER_KEYS and isinstance(value, str | int):
        return mask_field(value)
    return value


def present_call(row: Mapping[str, Any], unmask: bool) -> dict[str, Any]:
    """A call row for any output (table, JSON, export): numbers masked unless ``unmask``,
    strings sanitized.  The CDR is masked by allow-list (:data:`CDR_PLAIN_FIELDS`)."""
    out = dict(row)
    out.pop("seal", None)
    for key in NUMBER_COLUMNS:
        out[key] = sanitize(out.get(key) or "") if unmask else mask_field(out.get(key) or "")
    if not unmask and isinstance(out.get("agent"), str):
        out["agent"] = mask_channel(out["agent"])
    name = str(out.get("caller_name") or "")
    out["caller_name"] = sanitize(name) if unmask or not any(c.isdigit() for c in name) else mask_field(name)
    cdr = out.get("cdr")
    if isinstance(cdr, Mapping) and not unmask:
        out["cdr"] = {k: (v if str(k).lower() in CDR_PLAIN_FIELDS else
                          mask_channel(v) if str(k).lower() in CHANNEL_KEYS else mask_field(v))
                      for k, v in cdr.items()}
    elif isinstance(cdr, str) and not unmask:  # an unreadable JSON cell: show nothing of it
        out["cdr"] = mask_field(cdr)
    return out


def present_record(record: Mapping[str, Any], unmask: bool) -> dict[str, Any]:
    """Any other record shown to an operator (audit entries, live calls): number-bearing keys
    masked unless ``unmask``."""
    return dict(record) if unmask else {str(k): mask_value(str(k), v) for k, v in record.items()}


def mask_log_args(msg: object, args: Any) -> tuple[str, tuple[()]]:
    """A log record's final message with :func:`mask_text` applied (args folded in)."""
    text = str(msg) % args if args else str(msg)
    return mask_text(text), ()


#: a card number as people type it: 13-19 digits, in groups joined by a space or a ``-``
_CARD_LIKE = re.compile(r"(?<![\d+])\d(?:[ \-]?\d){12,18}(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact_card_numbers(text: str) -> str:
    """Free text as it may be *stored*: a payment card number (13-19 digits that pass the Luhn
    check, grouped or not) replaced for good by ``[card ****1234]``, its last 4 digits kept (PCI
    DSS: a primary account number is never stored in clear).  Anything else is left as typed."""
    def redact(found: re.Match[str]) -> str:
        digits = "".join(ch for ch in found.group(0) if ch.isdigit())
        return f"[card ****{digits[-4:]}]" if _luhn_ok(digits) else found.group(0)

    return _CARD_LIKE.sub(redact, text) if _ANY_DIGIT.search(text) else text


def shown_text(text: object, unmask: bool) -> str:
    """Free text staff typed (a mark's label or note, a QA comment) as shown: numbers masked like
    any free text (:func:`mask_text`) unless ``unmask``."""
    value = "" if text is None else str(text)
    return value if unmask else mask_text(value)
