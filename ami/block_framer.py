"""Sans-IO: AMI bytes -> message blocks (text), framed on bytes, decoded after framing.

TCP hands the live connection arbitrary chunks: a caller name ``张三`` (6 UTF-8 bytes) can be
split between two reads.  Decoding each chunk on its own (panoramisk's ``data_received``
decodes with ``"ignore"``) drops the cut character's bytes on both sides, so ``张三`` arrived
as ``三``.  Here bytes are buffered until a whole block (ended by ``\\r\\n\\r\\n``) is there,
and only that block is decoded, so no split point can lose or mangle a character.

Bytes that are not valid UTF-8 inside a complete block become U+FFFD (``"replace"``): a
hostile caller ID is shown as damaged, never silently shortened.

The banner ``Asterisk Call Manager/<version>\\r\\n`` has no blank line after it; it stays at
the head of the first block (as panoramisk does), and :attr:`BlockFramer.version` remembers it.
A block without its end is held back; :data:`MAX_PENDING` bounds what is held (a peer that
never sends a blank line cannot grow memory without end): past it the held bytes are passed
on as one block, and the count of such cuts is in :attr:`BlockFramer.oversized`.
"""

from __future__ import annotations

BANNER = b"Asterisk Call Manager/"
END = b"\r\n\r\n"
#: the largest block held while waiting for its end (a CoreShowChannel event is about 1 KiB)
MAX_PENDING = 1 << 20


class BlockFramer:
    """``feed(bytes) -> [block text, ...]`` (blocks without their closing blank line)."""

    def __init__(self, encoding: str = "utf-8", max_pending: int = MAX_PENDING) -> None:
        self.encoding = encoding
        self.max_pending = max_pending
        self.version: str | None = None
        self.oversized = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        if self.version is None and self._buf.startswith(BANNER):
            line, nl, _ = bytes(self._buf).partition(b"\r\n")
            if nl:
                self.version = line[len(BANNER):].decode(self.encoding, "replace").strip()
        blocks: list[str] = []
        start = 0
        while True:
            end = self._buf.find(END, start)
            if end < 0:
                break
            blocks.append(self._decode(self._buf[start:end]))
            start = end + len(END)
        del self._buf[:start]
        if len(self._buf) > self.max_pending:
            self.oversized += 1
            blocks.append(self._decode(self._buf))
            self._buf.clear()
        return blocks

    @property
    def pending(self) -> int:
        """Bytes held back (an unfinished block)."""
        return len(self._buf)

    def _decode(self, raw: bytes | bytearray) -> str:
        return bytes(raw).decode(self.encoding, "replace")
