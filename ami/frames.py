"""Sans-IO parser: raw AMI bytes -> header dicts.

Used for transcripts, fixtures and the benchmark (the live connection uses panoramisk's
own framing, and :mod:`ami.normalize` accepts both).  No sockets, no clock.

Framing rules (AMI over TCP):
  * a message is a block of ``Key: Value`` lines ended by an empty line (``\\r\\n\\r\\n``);
    bare ``\\n`` line ends are tolerated (hand-written fixtures, some proxies);
  * the first thing a server sends is the banner ``Asterisk Call Manager/<version>``
    without a blank line after it: it is remembered as :attr:`FrameParser.version`;
  * ``Response: Follows`` (old ``Command`` output) carries a free-text body that ends with
    ``--END COMMAND--``; its body lines go to the ``_body`` key;
  * any other line without ``": "`` is kept in ``_body`` rather than dropped or raised on;
  * a repeated header (``ChanVariable``, ``Output``) becomes a list of values.

Keys are lower-cased (AMI header names are case-insensitive) so lookups need no folding.
Data arrive in arbitrary chunks: :meth:`FrameParser.feed` keeps the incomplete tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Frame(dict[str, "str | list[str]"]):
    """A parsed block: keys are already lower-case, a repeated header is a list (in order)."""

BANNER_PREFIX = "Asterisk Call Manager/"
END_COMMAND = "--END COMMAND--"
BODY_KEY = "_body"


def parse_block(block: str) -> Frame | None:
    """One message block (``\n`` line ends, no trailing blank line) -> header dict, or None."""
    if "\r" in block:
        block = block.replace("\r\n", "\n")
    lines = block.split("\n")
    # Fast path, the shape of nearly every event: "Key: value" lines, no key repeated.
    try:
        frame = Frame([(key.lower(), value) for key, value in (line.split(": ", 1) for line in lines)])
    except ValueError:  # a line without ": " (empty value, body, blank line): the full rules
        return _parse_lines(lines)
    if len(frame) != len(lines) or "response" in frame:  # repeats, or a possible Follows body
        return _parse_lines(lines)
    return frame


def _parse_lines(lines: list[str]) -> Frame | None:
    frame = Frame()
    body: list[str] = []
    follows = False
    for index, line in enumerate(lines):
        key, sep, value = line.partition(": ")
        if not sep:  # the rare cases: "Key:" with an empty value, a bare line, a body
            if not line or line == "\r":
                continue
            if line.endswith(":") and " " not in line:
                key, value = line[:-1], ""
            else:
                rest = lines[index:] if follows else [line]
                body.extend(x for x in rest if x.strip() != END_COMMAND and x)
                if follows:
                    break
                continue
        key = key.lower()
        if key in frame:
            old = frame[key]
            if isinstance(old, list):
                old.append(value)
            else:
                frame[key] = [old, value]
        else:
            frame[key] = value
            if key == "response" and value == "Follows":
                follows = True
    if body:
        frame[BODY_KEY] = "\n".join(body)
    return frame or None


class FrameParser:
    """Incremental parser.  ``feed(bytes) -> [frame, ...]``; ``version`` after the banner."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding
        self.version: str | None = None
        self._tail = ""
        self._bytes_tail = b""

    def _decode(self, data: bytes) -> str:
        data = self._bytes_tail + data
        # keep an incomplete multi-byte sequence for the next chunk
        try:
            text = data.decode(self.encoding)
            self._bytes_tail = b""
        except UnicodeDecodeError as exc:
            if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
                self._bytes_tail = data[exc.start :]
                text = data[: exc.start].decode(self.encoding, "replace")
            else:
                self._bytes_tail = b""
                text = data.decode(self.encoding, "replace")
        return text

    def feed(self, data: bytes) -> list[Frame]:
        text = (self._tail + self._decode(data)).replace("\r\n", "\n")  # a CRLF may straddle chunks
        if self.version is None and text.startswith(BANNER_PREFIX):
            line, nl, rest = text.partition("\n")
            if not nl:
                self._tail = text
                return []
            self.version = line[len(BANNER_PREFIX) :].strip()
            text = rest
        parts = text.split("\n\n")
        self._tail = parts.pop()
        frames = []
        for block in parts:
            frame = parse_block(block)
            if frame is not None:
                frames.append(frame)
        return frames

    def close(self) -> list[Frame]:
        """End of stream: whatever complete-looking block is left."""
        rest, self._tail = self._tail, ""
        frame = parse_block(rest) if rest.strip() else None
        return [frame] if frame is not None else []


def iter_frames(chunks: Iterable[bytes]) -> Iterator[Frame]:
    parser = FrameParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


def parse_transcript(data: bytes) -> list[Frame]:
    """A whole transcript (fixture file) -> frames."""
    return list(iter_frames([data]))


def render_frame(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header pairs -> wire bytes (used by the peer and the benchmark generator)."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"
