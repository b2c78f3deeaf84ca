"""``Secret``: a string that never shows itself in a repr, a log line or an error message.

Config fields that hold passwords or keys are ``Secret | None``; the code that needs
the value calls ``.reveal()`` at the last moment (e.g. when logging in to the AMI).
"""

from __future__ import annotations

import hmac

REDACTED = "**********"


class Secret:
    """An opaque secret value.  ``repr``/``str`` are redacted; ``reveal()`` returns it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        #: where the value came from ("inline", "file /etc/...", "env ..."): safe to show
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:  # refuse to pickle by accident into a log/queue
        raise TypeError("Secret values are not picklable")
