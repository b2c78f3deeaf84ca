"""Live calls as the daemon last saved them (catalog ``live_calls``): what an operator needs to
act on a call that is still going on (``calls live``, ``calls pause --channel``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbx_recorder.errors import NotFound

ACTIVE_RECORDING = ("recording", "paused")


@dataclass(frozen=True)
class LiveCall:
    call_id: str
    started_at: float
    state: str
    caller_num: str
    agent: str
    queue: str
    channels: tuple[str, ...]  # live legs, creation order
    recording: str  # "recording" | "paused" | ""

    @classmethod
    def from_snapshot(cls, call_id: str, snap: dict[str, Any]) -> LiveCall:
        legs = snap.get("legs", {}) or {}
        channels = tuple(c for c in (legs.get(u, "") for u in snap.get("live", [])) if c)
        states = [r.get("state", "") for r in snap.get("recordings", [])
                  if r.get("state") in ACTIVE_RECORDING]
        return cls(call_id, float(snap.get("created_at") or 0.0), str(snap.get("state", "")),
                   str(snap.get("caller_num", "")), str(snap.get("agent", "")), str(snap.get("queue", "")),
                   channels, "paused" if "paused" in states else ("recording" if states else ""))


def live_calls(snapshots: dict[str, Any]) -> list[LiveCall]:
    calls = [LiveCall.from_snapshot(cid, s) for cid, s in snapshots.items() if isinstance(s, dict)]
    return sorted((c for c in calls if c.channels), key=lambda c: c.started_at)


def channel_matches(channel: str, wanted: str) -> bool:
    """``PJSIP/1001`` matches the channel ``PJSIP/1001-0000002a`` (an endpoint's calls);
    a full channel name matches itself."""
    return channel == wanted or channel.startswith(wanted + "-")


def call_on_channel(snapshots: dict[str, Any], wanted: str) -> str:
    """The one live call with a leg on ``wanted``; NotFound when none or ambiguous."""
    found = [c.call_id for c in live_calls(snapshots)
             if any(channel_matches(ch, wanted) for ch in c.channels)]
    if not found:
        raise NotFound(f"no live call on channel {wanted!r}")
    if len(found) > 1:
        raise NotFound(f"{len(found)} live calls on {wanted!r} ({', '.join(found)}): name the call id")
    return found[0]
