"""Reading panoramisk's replies: one header as text, and whether a listed reply is whole."""

from __future__ import annotations

from typing import Any


def header(reply: Any, key: str) -> str:
    """One header of a reply as text; a repeated one (a caller's data in a ``Value``) is its first
    value, the one Asterisk wrote before the caller's line break."""
    if isinstance(reply, list):
        reply = reply[0] if reply else {}
    try:
        value = reply.get(key, "")
    except AttributeError:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def list_complete(items: list[Any]) -> bool:
    """A CoreShowChannels reply that ended with its ``CoreShowChannelsComplete`` and holds as many
    channels as that says."""
    last = items[-1] if items else {}
    count = sum(1 for m in items if header(m, "Event") == "CoreShowChannel")
    return header(last, "Event") == "CoreShowChannelsComplete" and header(last, "ListItems") == str(count)
