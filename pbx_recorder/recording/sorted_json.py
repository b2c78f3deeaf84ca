"""Sorted, compact JSON text: byte for byte what the standard library's ``json.JSONEncoder`` makes
with the same options, made by orjson where that is provably the same text.

The catalog's write path encodes about ten JSON texts per call (the manifest and the call row it
signs, the ledger entries it chains, the JSON columns it stores); orjson makes them several times
faster.  What is signed, sealed and chained must stay the bytes ``json`` made when it was signed,
so orjson's text is used only where it cannot differ.  The two differ on:

- a float ``json`` writes with an exponent, as ``repr`` does (``1e-05``, ``1e-07``, ``1e+16``):
  orjson writes ``0.00001``, ``1e-7``; any text with ``e+``, ``e-`` (orjson's exponents are
  signed) or ``0.0000`` in it goes to ``json``;
- NaN and the infinities (orjson writes ``null``; ``json`` refuses them, or writes ``NaN``): a text
  with ``null`` in it is orjson's only when the value holds no float that is not finite
  (``_all_finite``: a None and a NaN look the same in orjson's text);
- ``ensure_ascii`` (orjson writes UTF-8; ``json`` escapes all but printable ASCII): any other
  byte goes to ``json``;
- integers beyond 64 bits, keys that are not text, recursion past orjson's depth, subclasses of
  the built-in types (``json`` writes a ``str`` subclass as text; with the pass-through options
  orjson hands it to ``default``), dataclasses and dates: orjson refuses them (``default`` is
  asked only for a value ``json`` would have asked it for) and ``json`` makes the text.

A false alarm (a string that looks like a number token, a None) costs the slower encoder, never
other bytes.  orjson alone writes an ``Enum`` member's value and a ``UUID``'s text where ``json``
refuses them: texts no catalog row or signature holds, as ``json`` could not have written them.
Strings are escaped alike (``test_sorted_json`` checks every code point).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson

_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_DATETIME)
#: what orjson writes in a float with an exponent (always signed: ``1e+16``, ``2.5e-10``), found
#: by a plain search (a string with the same two letters, ``one-way``, is a false alarm)
_EXPONENT = (b"e+", b"e-")
#: what orjson writes for a float below 1e-4, which ``json`` writes with an exponent
_SMALL_FLOAT = b"0.0000"
#: types ``json`` writes itself, subclasses included: never handed to ``default``
_BUILT_IN = (str, int, float, dict, list, tuple)


#: values whose text the two encoders are known to write alike today (each sort of number, the
#: escapes, key order): an orjson release that writes one of them otherwise is not used at all
_AGREED: tuple[Any, ...] = (
    {"b": [1, -1, 2**63, 0.1, -0.0, 344.0, 1733354049.3244855, 0.0001, 1e15, 9.999999999999998e15],
     "a": {"\u00e9": "\x00\x1f\"\\/\u2028\U0001f600", "Z": True}},
    [12345678901234567890, 0.5, 1e300], "\ud7ff\ue000",
)


def _orjson_agrees() -> bool:
    """Whether this orjson writes :data:`_AGREED` byte for byte as ``json`` does (checked once,
    at import): the guards above are what is known of orjson's text, not a promise of it."""
    stdlib = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return all(orjson.dumps(v, option=_OPTIONS) == stdlib.encode(v).encode("utf-8") for v in _AGREED)
    except (TypeError, ValueError):
        return False


_ORJSON_AGREES = _orjson_agrees()
if not _ORJSON_AGREES:
    logging.getLogger(__name__).warning(
        "orjson %s writes JSON unlike the standard library: the catalog's JSON texts are made by json",
        getattr(orjson, "__version__", "?"))


_PLAIN = (str, int, bool)


def _all_finite(data: Any) -> bool:
    """Every float in ``data`` is finite, and it holds only what orjson writes as ``json`` does
    (dicts, lists, tuples, text, numbers, booleans, None); False when unsure (a set, a subclass,
    anything ``default`` would be asked for: its values are not looked into)."""
    todo = [data]
    while todo:
        value = todo.pop()
        kind = type(value)
        if kind is dict:
            todo.extend(value.values())
        elif kind is list or kind is tuple:
            todo.extend(value)
        elif kind is float:
            if value - value != 0.0:  # NaN and the infinities (inf - inf is NaN)
                return False
        elif value is not None and kind not in _PLAIN:
            return False
    return True


class _NotSame(TypeError):
    """Raised inside orjson's ``default``: this value is ``json``'s to write."""


class SortedJson:
    """``json.JSONEncoder(sort_keys=True, separators=(",", ":"), ...)``'s text, faster."""

    def __init__(self, *, ensure_ascii: bool = True, allow_nan: bool = True,
                 default: Callable[[Any], Any] | None = None) -> None:
        self.stdlib = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii,
                                       allow_nan=allow_nan, default=default)
        self._ensure_ascii = ensure_ascii
        self._user_default = default

    def _default(self, value: Any) -> Any:
        if isinstance(value, _BUILT_IN) or self._user_default is None:
            raise _NotSame(type(value).__name__)
        return self._user_default(value)

    def _fast(self, data: Any) -> bytes | None:
        if not _ORJSON_AGREES:
            return None
        try:
            raw = orjson.dumps(data, default=self._default, option=_OPTIONS)
        except TypeError:  # (orjson.JSONEncodeError is one)
            return None
        if _SMALL_FLOAT in raw or _EXPONENT[0] in raw or _EXPONENT[1] in raw:
            return None
        if b"null" in raw and not _all_finite(data):
            return None
        if self._ensure_ascii and (not raw.isascii() or b"\x7f" in raw):
            return None
        return raw

    def encode_bytes(self, data: Any) -> bytes:
        """The text as UTF-8 bytes."""
        raw = self._fast(data)
        return raw if raw is not None else self.stdlib.encode(data).encode("utf-8")

    def encode(self, data: Any) -> str:
        """The text (as ``json.JSONEncoder.encode``)."""
        raw = self._fast(data)
        return raw.decode("utf-8") if raw is not None else self.stdlib.encode(data)
