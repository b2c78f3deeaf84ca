"""What goes wrong in the AMI stream while the link stays up, reported by the client's protocol
(:mod:`ami.protocol`) and the framing guard: an envelope a caller ID repeated (repaired, the
message goes on), blocks the guard dropped (a resync), a block that failed, events that may have
been lost on their way to the core (:class:`pbx_recorder.core.events.PbxEventsLost`: a
MixMonitorStart among them would leave the core's MixMonitor count wrong).  A mixin of
:class:`ami.client.AmiClient`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ami.envelope import block_context
from ami.frames import parse_block
from ami.replies import header
from pbx_recorder.core import events as ev

if TYPE_CHECKING:
    from ami.normalize import Normalizer
    from ami.resync_pacer import ResyncPacer

log = logging.getLogger("ami.client")  # the client's log lines, as before the split
WARNED_MAX = 10_000  # channels already reported for a repaired envelope (then debug lines)


class StreamFaults:
    """Needs the client's counters, queue, normalizer, pacer and clock (set by its constructor)."""

    if TYPE_CHECKING:
        normalizer: Normalizer
        resync_pacer: ResyncPacer
        clock: Callable[[], float]
        _queue: asyncio.Queue[Any]
        _envelope_warned: dict[str, None]
        envelopes_repaired: int
        resyncs_asked: int
        events_lost: int
        blocks_failed: int
        cut_since: float | None

    def envelope_repaired(self, message: Any, repaired: tuple[str, ...]) -> None:
        """A caller ID repeated envelope headers (ami.envelope); the message goes on with the
        genuine ones.  WARNING once per channel (bounded), then debug."""
        self.envelopes_repaired += 1
        where = self._context(message)
        channel = str(header(message, "Channel"))[:80]
        if channel not in self._envelope_warned:
            if len(self._envelope_warned) >= WARNED_MAX:
                self._envelope_warned.pop(next(iter(self._envelope_warned)))
            self._envelope_warned[channel] = None
            log.warning("AMI header injection: %s repeated or out of place (%s); Asterisk's first "
                        "value kept, the message handled", ",".join(repaired), where)
        else:
            log.debug("AMI header injection again: %s (%s)", ",".join(repaired), where)

    def request_resync(self) -> None:
        """The framing guard dropped blocks that may have held genuine events (a caller forged a
        remainder, a cut's remainder never came, an event had no Timestamp): read the live channels
        again (CoreShowChannels), as after a reconnect.  Paced (:mod:`ami.resync_pacer`): a caller
        decides when this is asked, so asks are coalesced, at most one resync per interval."""
        self.resyncs_asked += 1
        self.lost_events("the framing guard dropped blocks", resync=False)
        self.resync_pacer.ask()

    def lost_events(self, reason: str, *, resync: bool = True, since: float | None = None) -> None:
        """Events may have been lost on their way to the core (the link stayed up): tell the core
        where in the stream (:class:`events.PbxEventsLost`: a MixMonitorStart among them would
        leave its MixMonitor count wrong) and from when (the read a cut the framing guard still
        holds opened in, else now or ``since``), and ask for a resync (paced), whose completion
        makes the core's view whole again for the calls that begin after it."""
        self.events_lost += 1
        now = self.clock()
        earliest = min(t for t in (now, since, self.cut_since) if t is not None)
        self._queue.put_nowait(ev.PbxEventsLost(at=now, reason=reason, since=earliest))
        if resync:
            self.resync_pacer.ask()

    def block_failed(self, block: str) -> None:
        """Handling one block raised: log it with its call's ids (numbers masked), skip it; it may
        have been an event (:meth:`lost_events`)."""
        self.blocks_failed += 1
        try:
            where = self._context(parse_block(block.strip()) or {})
        except Exception:  # the log line must not fail in its turn
            where = "unparsable block"
        log.exception("AMI block skipped, the connection goes on (%s)", where)
        self.lost_events("a block failed to parse")

    def _context(self, headers: Any) -> str:
        try:
            return block_context(headers, self.normalizer.node, self.normalizer.boot)
        except Exception:  # a log line's context only: never fails the line itself
            return "ids unreadable"

