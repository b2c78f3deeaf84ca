"""Four-eyes replay (table ``replay_grants``): a sensitive call is played or downloaded only with
a grant that a second person gave.

A call is sensitive when it carries one of ``web.four_eyes.tags``, or its recording rule set one
of them, or it was recorded under one of ``web.four_eyes.rules`` (:func:`is_sensitive`, pure).
``calls.tags`` is editable through the tag API, so it is not trusted alone: the rule's own tags
come from the call's ``rule_tags`` column, the tags the rule set *when the call was recorded*
(written by the recorder, sealed, never written by the tag API; :func:`set_by_rule`), so editing,
renaming or removing a rule in the configuration changes no older call's sensitivity.  A row
written before schema 20 has none recorded: for it they come from the signed manifests of its
recordings, as the catalog holds them (:func:`manifest_tags_of`: a manifest's ``tags`` are the
rule's tags when it was recorded), and only when no copy holds any, from its ``rule`` column and
the rule as configured now (:func:`rule_tags`).  The tags that make a call sensitive are removed
only by an approver (:func:`guarded_tags`, checked by ``api_tags``).

The listener asks (a request with a reason); an approver (a role with ``calls.replay_approve``:
admin, auditor), never the requester, grants or refuses; a grant opens that one call to that one
requester for ``web.four_eyes.grant_minutes``.
Decisions are compare-and-set on the row's state, so two approvers cannot both decide.  With
``web.secret_key_file`` each request and decision is sealed (:mod:`~pbx_recorder.service.access_seal`):
a grant written into the catalog by hand is never honoured, whoever it names as approver.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pbx_recorder.catalog.number_protection import is_token
from pbx_recorder.catalog.protected_rows import MANIFEST_TOKEN, NumberProtection
from pbx_recorder.core.masking import redact_card_numbers
from pbx_recorder.errors import AccessDenied, CryptoError, NotFound
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.recording import manifest_copy
from pbx_recorder.service import access_seal, provisioning
from pbx_recorder.service.access_seal import AccessSeal

MAX_REASON = 500
#: call ids per ``IN (...)`` of :func:`manifest_tags_of` (SQLite's default limit is 999 parameters)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    call_id: str
    requester: str
    reason: str
    requested_at: float
    state: str
    approver: str
    decided_at: float | None
    expires_at: float | None


_COLUMNS = "id, call_id, requester, reason, requested_at, state, approver, decided_at, expires_at, seal"


#: the verb that may decide replay requests, and so may also remove a tag that makes a call sensitive
APPROVE = "calls.replay_approve"


def rule_tags(rules: Iterable[Any], rule_name: object) -> frozenset[str]:
    """The tags the recording rule ``rule_name`` sets (``rules``: the config's rules, each with a
    ``name`` and an ``action.tags``); empty for the default decision or a rule no longer configured."""
    if not rule_name:
        return frozenset()
    for rule in rules:
        if getattr(rule, "name", None) == rule_name:
            return frozenset(str(t) for t in (getattr(getattr(rule, "action", None), "tags", None) or ()))
    return frozenset()


def recorded_rule_tags(call: Mapping[str, Any]) -> frozenset[str] | None:
    """The tags the call's recording rule set, as recorded (and sealed) with the call: its
    ``rule_tags`` column, decoded (a list) or as stored (JSON text).  None when the row records
    none (written before schema 20: ``''``) or the cell is not a JSON list (``verify`` reports
    that row's seal broken)."""
    value = call.get("rule_tags")
    if isinstance(value, str):
        if not value:
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list):
        return None
    return frozenset(str(t) for t in value)


def set_by_rule(call: Mapping[str, Any], rules: Iterable[Any],
                from_manifests: frozenset[str] | None = None) -> frozenset[str]:
    """The tags the call's recording rule set: those recorded with the call (schema 20 on); for a
    call that records none, ``from_manifests``, the tags its recordings' manifests record
    (:func:`manifest_tags_of`; the rule's tags when they were recorded, so a tag a rule gained
    since does not count either, as for a call that records them); and only when no manifest copy
    holds tags, those its rule sets in the configuration ``rules`` today (:func:`rule_tags`).

    That last fallback is harmless for a call without recordings (nothing to play, download or
    export; only the tags a non-approver may remove follow the configuration).  It is NOT for a
    call whose recordings were written from schema 11 to 19: their catalog copies keep no tags
    (``manifest_copy.COPY_KEYS``), only the signed manifest in storage does, and an admin who edits
    the rule still changes whether such a call needs a grant until its tags are recorded."""
    recorded = recorded_rule_tags(call)
    if recorded is not None:
        return recorded
    return from_manifests if from_manifests is not None else rule_tags(rules, call.get("rule"))


def needs_manifests(call: Mapping[str, Any]) -> bool:
    """True when the call records no rule tags: :func:`set_by_rule` wants its manifests' tags."""
    return recorded_rule_tags(call) is None


def tags_in_copies(copies: Iterable[tuple[str, Any]], numbers: NumberProtection | None = None
                   ) -> frozenset[str] | None:
    """The union of the ``tags`` of the manifest copies ``(recording_id, cell)`` that hold them;
    None when none does.  A copy written before schema 11 is the whole signed manifest (``verify``
    checks it against its signature), its ``tags`` in clear even when its numbers are sealed
    (:data:`MANIFEST_TOKEN` holds only ``protected_rows.MANIFEST_FIELDS``); a token is opened with
    ``numbers`` only for a copy that shows no tags.  A copy from schema 11 on keeps no tags (a copy
    edited to show some contradicts the signed manifest: ``verify`` reports it)."""
    found: frozenset[str] | None = None
    for recording_id, cell in copies:
        copy = manifest_copy.parse(cell)
        if "tags" not in copy and numbers is not None and is_token(copy.get(MANIFEST_TOKEN)):
            try:
                copy = manifest_copy.parse(numbers.open_manifest(recording_id, copy))
            except (CryptoError, ValueError):
                continue  # a token that does not open (verify reports it): no tags from it
        tags = copy.get("tags")
        if isinstance(tags, list):
            found = (found or frozenset()) | frozenset(str(t) for t in tags if t is not None)
    return found


def manifest_tags_of(conn: sqlite3.Connection, call_ids: Iterable[str],
                     numbers: NumberProtection | None = None) -> dict[str, frozenset[str] | None]:
    """Each call's :func:`tags_in_copies` over its recordings' manifest copies in the catalog (None:
    no recording, or no copy holds tags).  One query per 500 calls, no storage read: four-eyes is
    checked on every play, download and export."""
    ids = list(dict.fromkeys(str(c) for c in call_ids))
    copies: dict[str, list[tuple[str, Any]]] = {c: [] for c in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = ("SELECT call_id, recording_id, manifest FROM recordings "
               f"WHERE call_id IN ({marks}) ORDER BY call_id, recording_id")
        for row in conn.execute(sql, tuple(chunk)).fetchall():
            copies[str(row[0])].append((str(row[1]), row[2]))
    return {c: tags_in_copies(copies[c], numbers) for c in ids}


def call_set_by_rule(conn: sqlite3.Connection, numbers: NumberProtection | None, call: Mapping[str, Any],
                     rules: Iterable[Any], known: Mapping[str, frozenset[str] | None] | None = None
                     ) -> frozenset[str]:
    """:func:`set_by_rule` for one stored call; its manifests' tags from ``known`` (a batch of
    :func:`manifest_tags_of`) or one query, and only for a call that records no rule tags."""
    found: frozenset[str] | None = None
    if needs_manifests(call):
        call_id = str(call.get("call_id") or "")
        if known is not None and call_id in known:
            found = known[call_id]
        else:
            found = manifest_tags_of(conn, [call_id], numbers).get(call_id)
    return set_by_rule(call, rules, found)


def is_sensitive(call: Mapping[str, Any], tags: tuple[str, ...], rules: tuple[str, ...],
                 set_by_rule: Iterable[str] = ()) -> bool:
    """``set_by_rule``: the tags the call's recording rule set (:func:`set_by_rule`); they count
    even when someone removed them from ``calls.tags``."""
    carried = set(call.get("tags") or ()) | set(set_by_rule)
    return bool(carried & set(tags)) or (bool(call.get("rule")) and call["rule"] in rules)


def guarded_tags(sensitive_tags: Iterable[str], set_by_rule: Iterable[str]) -> frozenset[str]:
    """The tags of a call that only a role holding :data:`APPROVE` may remove: the four-eyes tags
    (removing one would open the call without a grant) and the tags its recording rule set."""
    return frozenset(sensitive_tags) | frozenset(set_by_rule)


def _grant(row: Any) -> Grant:
    return Grant(int(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]), str(row[5]), str(row[6]),
                 None if row[7] is None else float(row[7]), None if row[8] is None else float(row[8]))


def _sealed(row: Any, seal: AccessSeal | None) -> bool:
    """True when the row (read with :data:`_COLUMNS`) holds its seal, or none is configured."""
    return access_seal.valid(seal, "replay_grants", {
        "id": row[0], "call_id": row[1], "requester": row[2], "state": row[5], "approver": row[6],
        "decided_at": row[7], "expires_at": row[8], "seal": row[9]})


def ask(conn: sqlite3.Connection, call_id: str, requester: str, reason: str, now: float,
        seal: AccessSeal | None = None) -> int:
    with Tx(conn):
        row = access_seal.insert(conn, seal, "replay_grants", {
            "call_id": call_id, "requester": requester, "reason": redact_card_numbers(reason[:MAX_REASON]),
            "requested_at": now, "state": "requested", "approver": "", "decided_at": None,
            "expires_at": None},
            suffix="RETURNING id")
    return int(row[0])


def get(conn: sqlite3.Connection, grant_id: int, seal: AccessSeal | None = None) -> Grant:
    """The request ``grant_id``; NotFound when there is none or its row fails its seal."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM replay_grants WHERE id = ?", (grant_id,)).fetchone()
    if row is None or not _sealed(row, seal):
        raise NotFound(f"no replay request {grant_id}")
    return _grant(row)


def decide(conn: sqlite3.Connection, grant_id: int, approver: str, grant: bool, now: float,
           minutes: int, seal: AccessSeal | None = None) -> Grant:
    """Grant (for ``minutes``) or refuse the pending request ``grant_id``; AccessDenied for the
    requester themself, an account either holds (:mod:`pbx_recorder.service.provisioning`) or a
    request already decided."""
    found = get(conn, grant_id, seal)
    provisioning.require_independent(conn, found.requester, approver, "a replay request")
    with Tx(conn):
        changed = access_seal.update(
            conn, seal, "replay_grants", {"id": grant_id},
            {"state": "granted" if grant else "refused", "approver": approver, "decided_at": now,
             "expires_at": now + minutes * 60.0 if grant else None},
            where="state = 'requested' AND requester <> ?", params=(approver,))
        if changed != 1:
            raise AccessDenied(f"replay request {grant_id} is already {found.state}")
    return get(conn, grant_id, seal)


def open_grant(conn: sqlite3.Connection, call_id: str, user: str, now: float,
               seal: AccessSeal | None = None) -> Grant | None:
    """The live grant of ``user`` for ``call_id``, if any: given by someone else (a row that names
    no approver, or the requester as approver, was not written by :func:`decide`: never honoured;
    with ``seal``, neither is a row that fails its seal)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM replay_grants WHERE call_id = ? AND requester = ? "
                        "AND state = 'granted' AND expires_at > ? AND approver != '' "
                        "AND approver != requester ORDER BY expires_at DESC LIMIT 20",
                        (call_id, user, now)).fetchall()
    return next((_grant(r) for r in rows if _sealed(r, seal)), None)


def pending(conn: sqlite3.Connection, requester: str | None = None, limit: int = 200,
            seal: AccessSeal | None = None) -> list[Grant]:
    """Requests awaiting a decision (of ``requester`` only, when given), oldest first (a row that
    fails its seal is none)."""
    sql = f"SELECT {_COLUMNS} FROM replay_grants WHERE state = 'requested'"
    params: tuple[Any, ...] = ()
    if requester is not None:
        sql, params = sql + " AND requester = ?", (requester,)
    rows = conn.execute(sql + " ORDER BY requested_at, id LIMIT ?", (*params, limit)).fetchall()
    return [_grant(r) for r in rows if _sealed(r, seal)]
