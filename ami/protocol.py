"""panoramisk's AMI protocol with our framing, guard and per-block containment in front of it.

The client (:class:`ami.client.AmiClient`) is the protocol's factory; this class is what
``loop.create_connection`` builds for it.  Every read is framed on bytes
(:mod:`ami.block_framer`), passed through the framing guard (:mod:`ami.framing_guard`: the blocks a
caller forged with a blank line in its caller ID go no further) and then handed to panoramisk one
block at a time, so one bad block never closes the connection.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from panoramisk.ami_protocol import AMIProtocol

from ami.block_framer import BlockFramer
from ami.envelope import parse_message

if TYPE_CHECKING:
    from ami.client import AmiClient

log = logging.getLogger("ami.client")


class GuardedProtocol(AMIProtocol):
    """panoramisk's protocol, wired to our client before the first byte is read."""

    def __init__(self, client: AmiClient) -> None:
        super().__init__()
        self._client = client

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.factory = self._client
        self.encoding = "utf8"
        self.log = log
        self._framer = BlockFramer(self.encoding)

    def data_received(self, data: bytes) -> None:
        """panoramisk's framing, on bytes (:mod:`ami.block_framer`: a character split between
        two reads survives), with :func:`parse_message` as the parser.

        Each block is handled on its own: an exception out of here would make asyncio close the
        transport (the other blocks of this read lost, every pending action failed), so a block
        that fails is logged with its call's ids and skipped."""
        self._client.last_data_at = time.monotonic()
        self._client.last_data_wall = now = self._client.clock()
        blocks = self._framer.feed(data)
        if self.version is None:
            self.version = self._framer.version
        guard = self._client.framing
        cuts = guard.cuts
        # the caller's blocks after a cut-short event or without Asterisk's envelope go no further
        blocks = guard.filter(blocks, more=self._framer.pending > 0, failed=self._client.block_failed)
        if guard.cuts > cuts and self._client.cut_since is None:
            self._client.cut_since = now  # what the guard may drop from now on arrived from here
        for block in blocks:
            try:
                self._handle_block(block)
            except Exception:  # per-block containment: the connection serves every other call
                self._client.block_failed(block)
        if guard.take_resync():
            self._client.request_resync()
        if guard.quiet:
            self._client.cut_since = None

    def _handle_block(self, block: str) -> None:
        message, repaired = parse_message(block.strip())
        if message is None:
            return
        if repaired:
            self._client.envelope_repaired(message, repaired)
        self.handle_message(message)
