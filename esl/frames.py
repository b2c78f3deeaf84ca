"""Sans-IO ESL framing: bytes in, :class:`EslFrame` out.  No sockets, no clock.

The wire (mod_event_socket, see ../shared/freeswitch-facts.md)::

    Content-Type: text/event-plain\\n
    Content-Length: 512\\n
    \\n
    <512 bytes>

* a frame is a block of ``Name: value`` lines ended by an empty line; ``\\r\\n`` is tolerated;
* ``Content-Length`` (outer) says how many body bytes follow the blank line, counted in BYTES
  (a UTF-8 caller name makes it differ from the character count);
* ``text/event-plain`` bodies are themselves a header block, and may carry a second
  ``Content-Length`` whose bytes follow that block (e.g. a BACKGROUND_JOB's result);
* header VALUES are percent-encoded (``Caller-Caller-ID-Name: Jane%20Doe``).  Lines are split
  BEFORE values are decoded, so a ``%0D%0A`` in a caller name becomes a CR/LF inside one value
  and can never start another header or frame;
* a header repeated keeps its first value (FreeSWITCH never repeats one; an attacker might).

Bounded: a header block over ``max_head`` bytes or a Content-Length over ``max_body`` raises
:class:`EslError` (the connection is then dropped: the stream cannot be re-synchronized).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from pbx_recorder.errors import EslError

MAX_HEAD = 256 * 1024
MAX_BODY = 64 * 1024 * 1024

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"


def decode_value(raw: str) -> str:
    """Percent-decoding exactly as ``urllib.parse.unquote(raw, errors="replace")``, ~5x faster.

    FreeSWITCH percent-encodes every value, so the common case is ASCII with ``%XX`` escapes:
    those become ``\\xXX`` escapes decoded by the ``unicode_escape`` codec in C (each to one
    latin-1 character, i.e. one byte), then the bytes as UTF-8.  Only ``\\x`` escapes made here
    can be met: a value with a backslash of its own, a non-ASCII value, or a ``%`` not followed
    by two hex digits (the codec raises) takes ``unquote``, which keeps such a ``%`` as it is.
    The result is the same string either way (tests/unit/test_esl_fast_paths.py compares them).
    """
    if "%" not in raw:
        return raw
    if raw.isascii() and "\\" not in raw:
        try:
            octets = raw.replace("%", "\\x").encode("ascii").decode("unicode_escape")
        except UnicodeDecodeError:  # "%" without two hex digits after it
            return unquote(raw, errors="replace")
        return octets.encode("latin-1").decode("utf-8", "replace")
    return unquote(raw, errors="replace")


def parse_head(block: str, *, decode: bool = True) -> dict[str, str]:
    """``Name: value`` lines -> dict (values percent-decoded); lines without ``:`` are ignored."""
    raw = split_head(block)
    if decode and "%" in block:  # most blocks (Content-Type, Content-Length) carry no escape
        return {k: decode_value(v) for k, v in raw.items()}
    return raw


def split_head(block: str) -> dict[str, str]:
    """``Name: value`` lines -> dict of RAW (still percent-encoded) values, the first one wins."""
    lines = block.split("\n")
    try:  # the shape of every FreeSWITCH block: "Name: value" lines, no name repeated
        headers: dict[str, str] = dict(line.split(": ", 1) for line in lines)  # type: ignore[misc,unused-ignore]
        if len(headers) == len(lines) and "\r" not in block:
            return headers
    except ValueError:
        pass
    headers = {}
    for line in lines:  # the full rules: empty values, stray lines, CR, repeats
        name, sep, value = line.partition(":")
        name = name.strip()
        if sep and name and name not in headers:  # a repeat never overrides the first value
            headers[name] = value.strip(" \r")
    return headers


class HeaderSet:
    """A fixed set of header names for :meth:`Headers.pick` (e.g. the CDR's ``variable_*``):
    one compiled pattern ``\\n<prefix>(<rest>|...):( <value>)?`` ending at the line's end."""

    __slots__ = ("names", "prefix", "pattern")

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(dict.fromkeys(names))
        if not self.names or any(not n or "\n" in n or ":" in n for n in self.names):
            raise ValueError("header names must be non-empty, without ':' or a newline")
        self.prefix = os.path.commonprefix(list(self.names))
        rests = sorted((n[len(self.prefix) :] for n in self.names), key=len, reverse=True)
        self.pattern = re.compile(
            "\n" + re.escape(self.prefix) + "(" + "|".join(map(re.escape, rests)) + "):(?: ([^\n]*))?(?=\n)"
        )


def pick(headers: Mapping[str, str], names: HeaderSet) -> dict[str, str]:
    """:meth:`Headers.pick` for any mapping (a plain dict: one look-up per name)."""
    if isinstance(headers, Headers):
        return headers.pick(names)
    return {k: v for k in names.names if (v := headers.get(k)) is not None}


class Headers(Mapping[str, str]):
    """Event headers, found and percent-decoded on access (a lazy view over the event's text).

    An event carries ~80 headers and a handler reads ~5-20: the block is kept as the decoded
    body text and a lookup is one ``str.find`` of ``"\n<Name>:"`` bounded to the header block
    (values are percent-encoded, so a raw newline only ever starts a header line; the first
    occurrence wins; an inner body after the block is never searched).  Only the value found is
    percent-decoded, once.  Iterating (``dict(headers)``) splits the whole block once, and
    lookups use that split from then on.

    ``Headers(block)`` takes a bare header block; :func:`parse_event_plain` passes the body text
    with a leading ``"\n"`` and the index of the blank line instead (no copy of the block).
    """

    __slots__ = ("_text", "_end", "_done", "_all")

    def __init__(self, block: str, end: int = -1) -> None:
        if end < 0:  # a bare block: "\n" + block + "\n", searched whole
            block = "\n" + block + "\n"
            end = len(block)
        self._text = block
        self._end = end  # the block is _text[:end]; _text[end - 1] is the "\n" ending its last line
        self._done: dict[str, str] = {}
        self._all: dict[str, str] | None = None

    def _raw(self, key: str) -> str | None:
        text, needle, stop = self._text, "\n" + key + ":", self._end
        start = text.find(needle, 0, stop)
        while start >= 0:  # one scan: "Name: value" or "Name:" with an empty value
            end = start + len(needle)
            if text[end] == " ":
                return text[end + 1 : text.index("\n", end)]
            if text[end] == "\n":
                return ""
            start = text.find(needle, end, stop)  # "Name-Longer:" shares the prefix: keep looking
        return None

    def __getitem__(self, key: str) -> str:
        value = self.get(key, None)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: str | None = "") -> str:  # type: ignore[override]
        value = self._done.get(key)
        if value is not None:
            return value
        if self._all is not None:  # split already (iterated): a dict lookup, not a scan
            raw = self._all.get(key)
        elif "\n" in key:
            return default  # type: ignore[return-value]
        else:  # _raw inlined for the common case (the first occurrence is the header itself)
            text, needle = self._text, "\n" + key + ":"
            at = text.find(needle, 0, self._end)
            if at < 0:
                return default  # type: ignore[return-value]
            at += len(needle)
            if text[at] == " ":
                raw = text[at + 1 : text.index("\n", at)]
            else:
                raw = self._raw(key)
            if raw is None:
                return default  # type: ignore[return-value]
        if raw is None:
            return default  # type: ignore[return-value]
        if " " in raw:
            raw = raw.strip(" ")
        value = self._done[key] = decode_value(raw) if "%" in raw else raw
        return value

    def pick(self, names: HeaderSet) -> dict[str, str]:
        """The headers of ``names`` present in the block, percent-decoded, in ONE pass (one
        regex search anchored on the names' common prefix) instead of one scan per name: what
        the CDR's ~17 ``variable_*`` look-ups cost as one.  Same values as :meth:`get`: the first
        ``Name: value`` or ``Name:`` line of each name; names absent are left out."""
        if self._all is not None:
            return {k: v for k in names.names if (v := self.get(k, None)) is not None}
        found: dict[str, str] = {}
        done = self._done
        for match in names.pattern.finditer(self._text, 0, self._end):
            key = names.prefix + match[1]
            if key in found:
                continue  # a repeat never overrides the first value
            raw = match[2] or ""
            if " " in raw:
                raw = raw.strip(" ")
            found[key] = done[key] = decode_value(raw) if "%" in raw else raw
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and "\n" not in key and self._raw(key) is not None

    def _split(self) -> dict[str, str]:
        if self._all is None:
            self._all = split_head(self._text[: self._end].strip("\n"))
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._split())

    def __len__(self) -> int:
        return len(self._split())


@dataclass(frozen=True, slots=True)
class EslFrame:
    """One wire message: its outer headers and raw body bytes."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def event(self) -> EslEvent | None:
        """The event carried (event-plain or event-json), else None."""
        if self.content_type == EVENT_PLAIN:
            return parse_event_plain(self.body)
        if self.content_type == EVENT_JSON:
            return parse_event_json(self.body)
        return None


@dataclass(frozen=True, slots=True)
class EslEvent:
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


_BLANK_LINE = re.compile("\n\n")


def parse_event_plain(body: bytes) -> EslEvent:
    """An event-plain body: a percent-encoded header block, then an optional inner body."""
    text = body.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    text = "\n" + text  # every header line, the first one too, starts with "\n"
    # as text.partition("\n\n"): a body opening with one is all body.  The regex engine's
    # literal search finds the pair ~2x faster than str.find on a 3.6 kB event
    found = _BLANK_LINE.search(text, 1)
    blank = found.start() if found is not None else -1
    if blank < 0:  # no blank line: the whole text is the block
        text += "\n"
        blank = len(text) - 1
    headers = Headers(text, blank + 1)
    inner = ""
    # only a body with something after its header block can carry an inner body: for the
    # others (nearly every event) the Content-Length lookup would scan the whole block for nothing
    length = headers.get("Content-Length", "") if len(text) > blank + 2 else ""
    if length.isdigit():
        raw = text[blank + 2 :].encode("utf-8")[: int(length)]
        inner = raw.decode("utf-8", "replace")
    return EslEvent(headers, inner)


def parse_event_json(body: bytes) -> EslEvent:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError as exc:
        raise EslError(f"malformed text/event-json body: {exc}") from exc
    if not isinstance(data, dict):
        raise EslError("text/event-json body is not an object")
    inner = str(data.pop("_body", ""))
    return EslEvent({str(k): str(v) for k, v in data.items()}, inner)


class EslParser:
    """Incremental framing.  ``feed(bytes) -> [EslFrame, ...]``; keeps any incomplete tail."""

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self.max_head, self.max_body = max_head, max_body
        self._buf = bytearray()
        self._head: dict[str, str] | None = None
        self._need = 0
        self._scanned = 0  # bytes of the buffer already searched for the blank line
        self._pos = 0  # read position within the buffer during one feed
        self._heads: dict[bytes, tuple[dict[str, str], int]] = {}  # outer block -> parsed (bounded)

    def feed(self, data: bytes) -> list[EslFrame]:
        """Frames are cut at a read position and the consumed bytes dropped once per feed (not
        once per frame: each ``del`` moved the rest of a 64 kB read)."""
        buf = self._buf
        buf += data
        frames: list[EslFrame] = []
        self._pos = 0
        try:
            while True:
                frame = self._next()
                if frame is None:
                    return frames
                frames.append(frame)
        finally:
            if self._pos:
                del buf[: self._pos]
                self._pos = 0

    def _next(self) -> EslFrame | None:
        buf, pos = self._buf, self._pos
        if self._head is None:
            while pos < len(buf) and buf[pos] in (10, 13):  # stray blank lines (LF, CR) between frames
                pos += 1
            self._pos = pos
            end, sep_len = _find_blank(buf, max(pos, pos + self._scanned - 3))
            if end < 0:
                self._scanned = len(buf) - pos
                if len(buf) - pos > self.max_head:
                    raise EslError(f"ESL header block over {self.max_head} bytes")
                return None
            raw = bytes(buf[pos:end])
            known = self._heads.get(raw)
            if known is None:
                known = self._parse_head(raw)
            head, self._need = dict(known[0]), known[1]  # each frame its own dict
            pos = self._pos = end + sep_len
            self._scanned = 0
            self._head = head
        if len(buf) - pos < self._need:
            return None
        body = bytes(buf[pos : pos + self._need])
        self._pos = pos + self._need
        frame = EslFrame(self._head, body)
        self._head, self._need = None, 0
        return frame

    def _parse_head(self, raw: bytes) -> tuple[dict[str, str], int]:
        """(headers, body length) of an outer block, remembered: an event stream's blocks differ
        only by their Content-Length (``Content-Length: 3336``, ``Content-Type: text/event-plain``)."""
        head = parse_head(raw.decode("utf-8", "replace"))
        length = head.get("Content-Length", "0")
        if not length.isdigit():
            raise EslError(f"bad ESL Content-Length {length[:20]!r}")
        need = int(length)
        if need > self.max_body:
            raise EslError(f"ESL Content-Length {need} over {self.max_body}")
        if len(raw) <= 256:  # an event's block is ~50 bytes; a long one is not kept
            if len(self._heads) >= 512:
                self._heads.clear()
            self._heads[raw] = head, need
        return head, need

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)


def _find_blank(buf: bytearray, start: int = 0) -> tuple[int, int]:
    """(index, length) of the first blank line (``\n\n`` or ``\r\n\r\n``), or (-1, 0)."""
    lf = buf.find(b"\n\n", start)
    crlf = buf.find(b"\r\n\r\n", start, lf + 2 if lf >= 0 else len(buf))  # bounded: no rescan of bodies
    if crlf >= 0:
        return crlf, 4
    return lf, 2


def iter_frames(chunks: Iterable[bytes]) -> Iterator[EslFrame]:
    parser = EslParser()
    for chunk in chunks:
        yield from parser.feed(chunk)


def render_frame(headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """Wire bytes of one frame (used by the peer, fixtures and the bench)."""
    lines = [f"{k}: {v}\n" for k, v in headers if k != "Content-Length"]
    if body:
        lines.append(f"Content-Length: {len(body)}\n")
    return "".join(lines).encode() + b"\n" + body


def render_event_plain(headers: Iterable[tuple[str, str]], inner: str = "") -> bytes:
    """An event as FreeSWITCH sends it: percent-encoded body inside a text/event-plain frame."""
    from urllib.parse import quote

    pairs = list(headers)
    inner_bytes = inner.encode()
    if inner_bytes:
        pairs = [*pairs, ("Content-Length", str(len(inner_bytes)))]
    body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in pairs).encode() + b"\n" + inner_bytes
    return render_frame([("Content-Type", EVENT_PLAIN)], body)
