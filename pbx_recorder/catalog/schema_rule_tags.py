"""The catalog's SQLite migration 20: ``calls.rule_tags``, the tags the call's recording rule set,
recorded with the call and sealed (Alembic revision 0019 for PostgreSQL).

Why: four-eyes replay counts the tags a call's recording rule set even after they were removed
from ``calls.tags`` (which the tag API edits).  It read them from the *current* configuration by
the rule's name, so an admin who edited, renamed or removed a rule changed which older calls
needed a second person's grant.  The recorder now writes the rule's tags into this column with
the row (``core.call_model.call_row``) and the call seal covers it (``recording.call_seal``, seal
v2); ``service.four_eyes.set_by_rule`` reads it.

``''`` (the default: every row written before this migration) means "not recorded": such a row
keeps its v1 seal and four-eyes keeps reading its rule's tags from the configuration, as before.
``'[]'`` means recorded, none.

Part of the shipped ladder (:data:`pbx_recorder.catalog.schema.MIGRATIONS`): never edited.
"""

from __future__ import annotations

#: the column migration 20 adds (and revision 0019), and its declaration
COLUMN = "rule_tags"
COLUMN_SQL = f"{COLUMN} TEXT NOT NULL DEFAULT ''"

RULE_TAGS_RECORDED: list[str] = [
    # 20 (four-eyes): see the module's text
    f"ALTER TABLE calls ADD COLUMN {COLUMN_SQL};\n",
]
