"""The catalog's SQLite migration 18: one index led by the agent, carrying status, consent decision
and queue, in place of four.

Why: a new call lands on the newest end of its agent's range in every index the agent leads.  Once
a catalog holds a few thousand calls per agent, each agent's range spans leaves of its own, so a
batch of calls from different agents dirties one leaf per call in each such index: WAL frame,
checkpoint write, flush.  At 1,000,000 calls (500 agents) the four agent-led indexes
(``calls_agent_time`` and, from migration 10, ``calls_agent_status_time``, ``…_consent_…`` and
``…_queue_time``) took 5.5 of the 9.7 pages a call dirtied in batches of 100 (WAL frames of a batch
mapped to their B-trees with ``dbstat``, issue 11, session 23); on a small catalog the agents share
leaves, which is most of why writes were not flat.  With one agent index carrying the three other
filters' columns after ``started_at DESC, call_id`` (as migration 16 made the queue's), an agent's
filter is tested inside the agent's range, on the index entry (a covering read for the count, a
row read only for a call shown): 6.1 pages a call at 1 M calls, and bulk writes about a quarter
faster there.

What it costs: a search by agent (or a team's scope) with a rare status, consent or queue reads
the agent's range where it read that combination's; its shown count therefore reads at most
``COUNT_READ_CAP`` entries and says "at least" past them (``queries.build_bounded_count``).

The index keeps its name ``calls_agent_time``; the three others are dropped.  Part of the shipped
ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the agent's index, what it carries after ``started_at DESC, call_id``, and its columns in order
#: (as ``PRAGMA index_info`` and SQLAlchemy's inspector list them); shared with Alembic 0018
AGENT_INDEX = "calls_agent_time"
AGENT_CARRIED = ("status", "consent_decision", "queue")
AGENT_INDEX_COLUMNS = ["agent", "started_at", "call_id", *AGENT_CARRIED]
#: the agent-led indexes migration 10 added (migration 16 made two of them carry columns)
RETIRED = ("calls_agent_status_time", "calls_agent_consent_time", "calls_agent_queue_time")

AGENT_INDEX_SQL = (f"CREATE INDEX {AGENT_INDEX} ON calls(agent, started_at DESC, call_id, "
                   f"{', '.join(AGENT_CARRIED)})")

AGENT_INDEX_MERGED: list[str] = [
    # 18 (issue 11, the write path flat as the catalog grows): see the module's text
    "".join(f"DROP INDEX IF EXISTS {name};\n" for name in (*RETIRED, AGENT_INDEX))
    + AGENT_INDEX_SQL + ";\n"
    + "DELETE FROM sqlite_stat1 WHERE tbl = 'calls' AND idx IN ("
    + ", ".join(f"'{name}'" for name in (*RETIRED, AGENT_INDEX)) + ");\n"
    # the planner's seeded figures (10 M calls, 500 agents), as migration 5 seeded the index
    + f"INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('calls', '{AGENT_INDEX}', "
    + "'10000000 20000 1 1 1 1 1');\n"
    + "ANALYZE sqlite_schema;\n",
]
