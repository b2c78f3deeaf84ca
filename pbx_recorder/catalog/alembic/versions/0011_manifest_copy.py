"""The catalog's copy of the signed manifest (SQLite's migration 11,
``pbx_recorder.recording.manifest_copy``):
``recordings.manifest_sha256``, the SHA-256 of the signed manifest's canonical bytes.  A row
written from now on keeps in ``manifest`` only what display reads; ``verify`` checks the stored
manifest object against this hash.  Rows written before keep their whole copy ('' here).

Revision ID: 0011
Revises: 0010

The baseline creates the model as it stands, so on a catalog created fresh the column already
exists: it is added only when missing.
"""

from alembic import op
from sqlalchemy import inspect

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    bind = op.get_bind()
    if "manifest_sha256" not in {c["name"] for c in inspect(bind).get_columns("recordings")}:
        bind.exec_driver_sql("ALTER TABLE recordings ADD COLUMN manifest_sha256 TEXT NOT NULL DEFAULT ''")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
