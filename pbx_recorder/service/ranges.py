"""HTTP byte ranges (RFC 9110 section 14) for the audio endpoint (pure, no I/O).

One range is served (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``); a header this module does not
understand, another unit or several ranges is ignored and the whole body is sent (the RFC lets a
server ignore Range).  A range that starts past the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class RangeNotSatisfiable(ValueError):
    """The range lies outside the body (answer 416 with ``Content-Range: bytes */size``)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int  # first byte
    stop: int  # one past the last byte

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range ``header`` asks for within a body of ``size`` bytes; None: send the whole body."""
    if not header:
        return None
    match = _ONE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # a suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - n), size)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable(header)
    stop = size if not last else min(int(last) + 1, size)
    if stop <= start:
        return None  # last < first: syntactically invalid, ignored
    return ByteRange(start, stop)
