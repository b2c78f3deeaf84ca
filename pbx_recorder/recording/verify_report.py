"""What ``verify`` found: one :class:`Mismatch` per integrity finding, gathered in a
:class:`VerifyReport` with the tiers it could not reach and the recordings still on their way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Mismatch:
    recording_id: str
    what: str
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        text = f"{self.recording_id or '-'}: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


@dataclass
class VerifyReport:
    """``mismatches``: integrity findings; ``unreachable``: tiers that could not be asked (an
    outage says nothing about integrity); ``pending``: recordings still on their way (spool)."""

    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "rid: why" the storage server refused for good

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def status(self) -> str:
        """``mismatch`` > ``refused`` > ``unreachable`` > ``pending`` > ``ok``."""
        if self.mismatches:
            return "mismatch"
        if self.refused:
            return "refused"
        if self.unreachable:
            return "unreachable"
        return "pending" if self.pending else "ok"


ObjectCheck = Callable[[VerifyReport], None]
