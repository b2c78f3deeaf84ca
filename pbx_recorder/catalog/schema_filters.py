"""The catalog's SQLite migration 16: each filter index carries the other filters' columns, so a
combined filter (30 days + queue + answered + consent refused) is checked inside one index range
and its count reads that index alone.

Why: a search combining filters walks the index of its most selective one (the planner's seeded
statistics pick it) in the result's order and, before this migration, read each call row of that
range to test the other conditions.  At 10 million calls one queue's 30 days are about 20,000
calls: a first page stops after 50 matches, but the count (up to ``COUNT_CAP`` matches) read all
20,000 rows, 40 ms from memory and 1.3 s at p95 with the pages on disk (issue 11, session 22).
With the other filter columns a search led by the index can still need (status, consent decision)
as the index's last columns, the conditions are tested on the index entry and a row is read only
for a match that is shown; a count is a covering-index read (``SEARCH ... USING COVERING INDEX``).
The queue's index carries status and consent, the consent's the status (the planner leads with the
queue when one is given, then the consent: see :data:`FILTER_COLUMNS`), and the agent-led indexes
of migration 10 the same way; the status's indexes carry nothing (a status leads only alone).  A tag
is not carried: ``call_tags`` is its own table (migration 17).

The indexes keep their names; their leading columns (what a range is read by) are unchanged, so
no query changes.  A pass over ``calls`` for each of the four made again.

Migration 17 does the same for a tag: ``call_tags`` keeps a copy of its call's status, consent
decision and queue (as it keeps the agent since migration 10), the tag triggers keep the copies in
step (also when one of them changes), and the two tag indexes carry them.  A tag beside those
filters is then read from the tag's index range alone (``queries._source``) where it was tested
with one ``call_tags`` lookup per call of the other filter's range: a rare tag with consent
refused counted in 190 ms warm and 1.7 s cold at 10 M calls before.  A page still tests the call
row itself too (the row is the rule; a stale copy could hide a call, never show one).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: each filter index: (the columns its ranges are read by, the columns it carries after
#: ``started_at DESC, call_id``); shared with the model (Alembic revision 0016).  An index carries
#: only what a search it leads can still need: the planner's figures rank the leading filters
#: queue (500,000 calls a value), then consent (1.5 M), then status (2.5 M), so the queue's index
#: leads whenever a queue is given, the consent's when a consent is given without a queue, and
#: the status's only for a status alone (likewise behind an agent).  Carrying more would cost
#: bytes on every call and never be read.
FILTER_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "calls_status_time": (("status",), ()),
    "calls_consent_time": (("consent_decision",), ("status",)),
    "calls_queue_time": (("queue",), ("status", "consent_decision")),
    "calls_agent_status_time": (("agent", "status"), ()),
    "calls_agent_consent_time": (("agent", "consent_decision"), ("status",)),
    "calls_agent_queue_time": (("agent", "queue"), ("status", "consent_decision")),
}
#: the indexes migration 16 makes again (the others keep their layout)
CARRYING = tuple(name for name, (_lead, carried) in FILTER_COLUMNS.items() if carried)

#: the planner's seeded figures (migrations 5 and 10's shape: 10 M calls, 500 agents, 4 statuses,
#: ~7 consent decisions, 20 queues): rows per value of the leading columns, then 1 per column after
_LEADING_ROWS = {
    "calls_status_time": (2500000,),
    "calls_consent_time": (1500000,),
    "calls_queue_time": (500000,),
    "calls_agent_status_time": (20000, 5000),
    "calls_agent_consent_time": (20000, 3000),
    "calls_agent_queue_time": (20000, 1000),
}


def filter_index_columns(name: str) -> list[str]:
    """The index's columns in order, as ``PRAGMA index_info`` and SQLAlchemy's inspector list them."""
    lead, carried = FILTER_COLUMNS[name]
    return [*lead, "started_at", "call_id", *carried]


def _create(name: str) -> str:
    lead, carried = FILTER_COLUMNS[name]
    columns = ", ".join([*lead, "started_at DESC", "call_id", *carried])
    return f"CREATE INDEX {name} ON calls({columns});\n"


def create_index_sql(name: str, *, columns_0010: bool = False) -> str:
    """The index's DDL as this migration makes it (``IF NOT EXISTS``), or as migration 10 made it
    (``columns_0010``: nothing carried); for the Alembic revisions of indexes no longer in the model
    (migration 18 dropped the agent-led ones)."""
    lead, carried = FILTER_COLUMNS[name]
    columns = ", ".join([*lead, "started_at DESC", "call_id", *(() if columns_0010 else carried)])
    return f"CREATE INDEX IF NOT EXISTS {name} ON calls({columns})"


def _stat(name: str) -> str:
    lead, carried = FILTER_COLUMNS[name]
    figures = ["10000000", *(str(n) for n in _LEADING_ROWS[name]), *(["1"] * (2 + len(carried)))]
    return f"('calls', '{name}', '{' '.join(figures)}')"


#: the columns of a call ``call_tags`` keeps a copy of (its agent since migration 10; the others
#: since 17), and the columns of its two indexes
TAG_COPIES = ("agent", "status", "consent_decision", "queue")
TAG_INDEXES: dict[str, tuple[str, ...]] = {
    "call_tags_tag": ("tag", "started_at", "call_id", "status", "consent_decision", "queue"),
    "call_tags_agent": ("agent", "tag", "started_at", "call_id", "status", "consent_decision", "queue"),
}


def _tag_index(name: str) -> str:
    columns = ", ".join("started_at DESC" if c == "started_at" else c for c in TAG_INDEXES[name])
    return f"DROP INDEX IF EXISTS {name};\nCREATE INDEX {name} ON call_tags({columns});\n"


def _tag_trigger(event: str) -> str:
    copies = ", ".join(TAG_COPIES)
    values = ", ".join(f"NEW.{c}" for c in TAG_COPIES)
    delete = "DELETE FROM call_tags WHERE call_id = OLD.call_id;\n" if event.startswith("UPDATE") else ""
    name = "call_tags_update" if delete else "call_tags_insert"
    return (f"DROP TRIGGER IF EXISTS {name};\n"
            f"CREATE TRIGGER {name} AFTER {event} ON calls BEGIN\n    {delete}"
            f"    INSERT OR IGNORE INTO call_tags (call_id, tag, started_at, {copies})\n"
            f"        SELECT NEW.call_id, value, NEW.started_at, {values}\n"
            "        FROM json_each(CASE WHEN json_valid(NEW.tags) THEN NEW.tags ELSE '[]' END)\n"
            "        WHERE value IS NOT NULL;\nEND;\n")


#: what fires the tag triggers' re-copy: a change of the call's id, tags, time or a copied column
TAG_TRIGGER_COLUMNS = ("call_id", "tags", "started_at", *TAG_COPIES)

FILTERS_CARRIED: list[str] = [
    # 16 (issue 11, every filter indexed and their combinations): see the module's text
    "".join(f"DROP INDEX IF EXISTS {name};\n" + _create(name) for name in CARRYING)
    + "DELETE FROM sqlite_stat1 WHERE tbl = 'calls' AND idx IN ("
    + ", ".join(f"'{name}'" for name in CARRYING) + ");\n"
    + "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES\n    "
    + ",\n    ".join(_stat(name) for name in CARRYING) + ";\n"
    + "ANALYZE sqlite_schema;\n",
    # 17 (issue 11, a tag combined with other filters): see the module's text
    "".join(f"ALTER TABLE call_tags ADD COLUMN {c} TEXT;\n" for c in TAG_COPIES[1:])
    + "UPDATE call_tags SET (" + ", ".join(TAG_COPIES[1:]) + ") = (SELECT "
    + ", ".join(f"c.{c}" for c in TAG_COPIES[1:])
    + " FROM calls c WHERE c.call_id = call_tags.call_id);\n"
    + _tag_trigger("INSERT")
    + _tag_trigger("UPDATE OF " + ", ".join(TAG_TRIGGER_COLUMNS))
    + "".join(_tag_index(name) for name in TAG_INDEXES)
    + """DELETE FROM sqlite_stat1 WHERE tbl = 'call_tags' AND idx IN ('call_tags_tag', 'call_tags_agent');
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
        ('call_tags', 'call_tags_tag', '1000000 50000 1 1 1 1 1'),
        ('call_tags', 'call_tags_agent', '1000000 2000 100 1 1 1 1 1');
    ANALYZE sqlite_schema;
""",
]
