"""The tag vocabulary (``tag_vocabulary``) and the tags of a call (``calls.tags``; the triggers keep
the ``call_tags`` index in step on both engines, so nothing here writes ``call_tags``).

A tag is a short key (letters of any script, digits, ``_ . -``; at most 40 characters) with a kind
(``intent`` or ``topic``) and a label per console language.  A retired tag stays on the calls that
carry it and stays searchable, but can no longer be set.  Labels are stored as typed and shown as
text (autoescaped pages, ``textContent`` in scripts)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

KINDS = ("intent", "topic")
TAG_RE = re.compile(r"[\w.-]{1,40}")
MAX_LABEL = 80
MAX_TAGS_PER_CALL = 20
MAX_VOCABULARY = 1000
FIELDS = ("tag", "kind", "label_en", "label_zh", "created_by", "created_at", "retired")


class TagRefused(ValueError):
    """A tag or a change of a call's tags that cannot be stored (the message names the field)."""


def check_tag(value: Any, where: str = "tag") -> str:
    if not isinstance(value, str) or not TAG_RE.fullmatch(value):
        raise TagRefused(f"{where}: letters, digits, _ . - (1-40 characters)")
    return value


def check_label(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TagRefused(f"{where}: required (text)")
    if len(value) > MAX_LABEL or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise TagRefused(f"{where}: at most {MAX_LABEL} characters, no control characters")
    return value.strip()


def vocabulary(conn: sqlite3.Connection, *, include_retired: bool = True) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(FIELDS)} FROM tag_vocabulary"
    rows = conn.execute(
        sql + ("" if include_retired else " WHERE retired = 0") + " ORDER BY kind, tag"
    ).fetchall()
    out = [dict(zip(FIELDS, r, strict=True)) for r in rows]
    for item in out:
        item["retired"] = bool(item["retired"])
    return out


def get(conn: sqlite3.Connection, tag: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {', '.join(FIELDS)} FROM tag_vocabulary WHERE tag = ?", (tag,)).fetchone()
    if row is None:
        return None
    item = dict(zip(FIELDS, row, strict=True))
    item["retired"] = bool(item["retired"])
    return item


def add(
    conn: sqlite3.Connection, tag: str, kind: str, label_en: str, label_zh: str, by: str, now: float
) -> bool:
    """False when the tag exists already (retired or not)."""
    count = int(conn.execute("SELECT COUNT(*) FROM tag_vocabulary").fetchone()[0])
    if count >= MAX_VOCABULARY:
        raise TagRefused(f"tag: the vocabulary holds at most {MAX_VOCABULARY} tags")
    row = conn.execute(
        "INSERT INTO tag_vocabulary (tag, kind, label_en, label_zh, created_by, created_at, "
        "retired) VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (tag) DO NOTHING RETURNING tag",
        (tag, kind, label_en, label_zh, by, now),
    ).fetchone()
    return row is not None


def retire(conn: sqlite3.Connection, tag: str) -> None:
    conn.execute("UPDATE tag_vocabulary SET retired = 1 WHERE tag = ?", (tag,))


def usable(conn: sqlite3.Connection, tags: Iterable[str]) -> set[str]:
    """Those of ``tags`` that are in the vocabulary and not retired."""
    wanted = sorted(set(tags))
    if not wanted:
        return set()
    rows = conn.execute(
        f"SELECT tag FROM tag_vocabulary WHERE retired = 0 AND tag IN ({', '.join('?' for _ in wanted)})",
        wanted,
    ).fetchall()
    return {str(r[0]) for r in rows}


def check_change(conn: sqlite3.Connection, add_tags: Any, remove_tags: Any) -> tuple[list[str], list[str]]:
    """The tags to add (vocabulary, not retired) and to remove (any key), validated.  Whether the
    actor may remove them (a four-eyes or rule-set tag needs an approver) is ``api_tags``' check."""
    lists = []
    for where, value in (("add", add_tags), ("remove", remove_tags)):
        if value is None:
            value = []
        if not isinstance(value, list) or len(value) > MAX_TAGS_PER_CALL:
            raise TagRefused(f"{where}: a list of at most {MAX_TAGS_PER_CALL} tags")
        lists.append(sorted({check_tag(t, f"{where}[{i}]") for i, t in enumerate(value)}))
    adding, removing = lists
    if not adding and not removing:
        raise TagRefused("add: give tags to add or to remove")
    unknown = sorted(set(adding) - usable(conn, adding))
    if unknown:
        raise TagRefused(f"add: {unknown[0]!r} is not a tag of the vocabulary (or it is retired)")
    if set(adding) & set(removing):
        raise TagRefused("remove: a tag cannot be added and removed at once")
    return adding, removing


def tags_of(value: Any) -> list[str]:
    try:
        tags = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def apply(conn: sqlite3.Connection, call_id: str, adding: list[str], removing: list[str]) -> list[str] | None:
    """The call's new tags, written (None: absent call; TagRefused past the per-call limit).  Tags
    the call had that are not in the vocabulary (set by a recording rule) are kept."""
    row = conn.execute("SELECT tags FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    before = tags_of(row[0])
    after = [t for t in before if t not in removing] + [t for t in adding if t not in before]
    if len(after) > MAX_TAGS_PER_CALL and len(after) > len(before):
        raise TagRefused(f"add: a call carries at most {MAX_TAGS_PER_CALL} tags")
    if after != before:
        conn.execute(
            "UPDATE calls SET tags = ? WHERE call_id = ?", (json.dumps(after, ensure_ascii=False), call_id)
        )
    return after


def labels(conn: sqlite3.Connection, lang: str) -> dict[str, str]:
    """{tag: its label in ``lang`` (English when that one is empty)}."""
    return {
        v["tag"]: (v["label_zh"] if lang == "zh" and v["label_zh"] else v["label_en"]) or v["tag"]
        for v in vocabulary(conn)
    }
