"""A report's figures (pure): computed from the aggregate rows the catalog returns
(:mod:`pbx_recorder.reports.queries`), never from individual calls; no caller number ever enters.

Definitions (README "Reports and the storage page"):

* answer rate = answered calls / calls; talk time = the answered calls' billed seconds (total and
  the average per answered call);
* consent rates are over the calls that went through consent (a consent decision other than
  none / ``not_required``): notified, granted, refused, timeout; *refusals routed*: calls whose
  refusal was routed (``record_decision = refused``: sent to the rule's refusal route or hung up,
  rather than continued unrecorded);
* recordings stored per tier: count and bytes of the period's calls' recordings, by tier;
* top tags: the 10 most frequent tags of the period's calls (ties by name);
* QA: reviews written in the period, per agent: average score, count, rank (best average first;
  ties share a rank).  The agent is shown masked as the call API shows it (``mask_channel``): a
  remote agent is named by its dial string (``Local/4915112345678@from-queue/n``), a mobile number,
  and a report is mailed to any address a supervisor types;
* late erasure requests (overall only: a request names a number, not a team): requests received
  in the period and completed after their deadline, or still open past it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pbx_recorder.core.masking import mask_channel

TOP_TAGS = 10


@dataclass(frozen=True, slots=True)
class CallTotals:
    calls: int = 0
    answered: int = 0
    talk_s: float = 0.0
    consent_asked: int = 0  #: calls with a consent decision other than '' / not_required
    notified: int = 0
    granted: int = 0
    refused: int = 0
    timeout: int = 0
    refusals_routed: int = 0


@dataclass(frozen=True, slots=True)
class TierRow:
    tier: str
    recordings: int
    bytes: int


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: str
    calls: int


@dataclass(frozen=True, slots=True)
class QaRow:
    agent: str
    reviews: int
    average: float
    rank: int = 0


@dataclass(frozen=True)
class Figures:
    period: str  #: 2026-W48 | 2026-11
    team: str  #: '' = overall
    start: float
    end: float
    totals: CallTotals
    answer_rate: float | None
    talk_avg_s: float | None
    consent_rates: Mapping[str, float | None]  #: notified, granted, refused, timeout
    tiers: tuple[TierRow, ...]
    tags: tuple[TagRow, ...]
    qa: tuple[QaRow, ...]
    late_erasures: int | None  #: None in a team's report
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["consent_rates"] = dict(self.consent_rates)
        data["extra"] = dict(self.extra)
        return data

    @property
    def qa_refused(self) -> int:
        """Reviews of the period left out because they fail their seal (``queries.qa``)."""
        try:
            return int(self.extra.get("qa_refused", 0) or 0)
        except (TypeError, ValueError):  # a stored report edited by hand
            return 0

    @property
    def recordings(self) -> int:
        return sum(t.recordings for t in self.tiers)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tiers)


def file_name(fig: Figures, ext: str) -> str:
    """``report-<period>-<team or overall>.<ext>``, the team reduced to safe characters (it comes
    from the request: never a quote or a line break in a header or an attachment name)."""
    team = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in fig.team) or "overall"
    return f"report-{fig.period}-{team[:64]}.{ext}"


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide (never a misleading 0 %)."""
    return part / whole if whole else None


def rank_qa(rows: Iterable[QaRow]) -> tuple[QaRow, ...]:
    """Best average first (then more reviews, then name); equal averages share a rank.  The agent
    leaves here masked (every output: JSON, XLSX, PDF, charts, mail is built from these rows)."""
    ordered = sorted(rows, key=lambda r: (-round(r.average, 6), -r.reviews, r.agent))
    out: list[QaRow] = []
    for i, row in enumerate(ordered):
        same = out and round(out[-1].average, 6) == round(row.average, 6)
        out.append(QaRow(mask_channel(row.agent), row.reviews, row.average, out[-1].rank if same else i + 1))
    return tuple(out)


def top_tags(rows: Iterable[TagRow], limit: int = TOP_TAGS) -> tuple[TagRow, ...]:
    return tuple(sorted(rows, key=lambda r: (-r.calls, r.tag))[:limit])


def compute(period: str, team: str, start: float, end: float, totals: CallTotals,
            tiers: Iterable[TierRow], tags: Iterable[TagRow], qa: Iterable[QaRow],
            late_erasures: int | None) -> Figures:
    asked = totals.consent_asked
    rates = {"notified": ratio(totals.notified, asked), "granted": ratio(totals.granted, asked),
             "refused": ratio(totals.refused, asked), "timeout": ratio(totals.timeout, asked)}
    return Figures(period, team, start, end, totals, ratio(totals.answered, totals.calls),
                   ratio(totals.talk_s, totals.answered), rates,
                   tuple(sorted(tiers, key=lambda t: t.tier)), top_tags(tags), rank_qa(qa),
                   None if team else late_erasures)


def from_dict(data: Mapping[str, Any]) -> Figures:
    """A stored report's figures back (``reports.data``), as :meth:`Figures.to_dict` wrote them
    (the agent masked again: a report stored before agents were masked shows no number either;
    masking is idempotent)."""
    return Figures(str(data["period"]), str(data["team"]), float(data["start"]), float(data["end"]),
                   CallTotals(**data["totals"]), data["answer_rate"], data["talk_avg_s"],
                   dict(data["consent_rates"]), tuple(TierRow(**t) for t in data["tiers"]),
                   tuple(TagRow(**t) for t in data["tags"]),
                   tuple(QaRow(**{**q, "agent": mask_channel(q["agent"])}) for q in data["qa"]),
                   data["late_erasures"], dict(data.get("extra") or {}))


def masked_at_rest(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored report's data (``reports.data``) with every QA agent masked as :func:`rank_qa` masks
    it now: what ``catalog migrate`` rewrites a report stored before agents were masked with
    (``catalog.stored_filters_pass``; :func:`from_dict` only masks what it reads, the row kept
    the number).  ``mask_channel`` of a masked agent is that agent: a second run changes nothing."""
    qa = data.get("qa")
    if not isinstance(qa, list):
        return dict(data)
    return {**data, "qa": [{**q, "agent": mask_channel(q["agent"])}
                           if isinstance(q, Mapping) and isinstance(q.get("agent"), str) else q for q in qa]}
