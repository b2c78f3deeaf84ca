"""The catalog's SQLite migration 14: indexes that find the recordings a retention or migration
pass may have to act on, so ``retention report|apply`` and ``recordings migrate`` read those
recordings and no others (``pbx_recorder.lifecycle.due_rows``).

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the SQL of migration 14, shared with Alembic revision 0014 through the model's indexes
DUE_INDEXES_SQL = """
    CREATE INDEX IF NOT EXISTS recordings_due ON recordings(state, retention_class, created_at);
    CREATE INDEX IF NOT EXISTS recordings_retain_until ON recordings(retain_until)
        WHERE retain_until IS NOT NULL;
"""

RECORDINGS_DUE: list[str] = [
    # 14 (issue 11, operations at scale): a retention pass walked every live recording and a
    # migration pass every hot one older than the shortest cold_after_days (minutes at 10 M
    # calls); now each reads, per state and retention class, the index range of recordings old
    # enough to be due, and the few with an explicit retain_until through a partial index.
    DUE_INDEXES_SQL,
]
