"""Numbers ``call_numbers`` indexes that the call's own sealed row does not hold (SQLite's migration
12, ``pbx_recorder.catalog.extra_numbers``): table ``call_extra_numbers``, one sealed token per call
that has any.  A catalog with recordings gets the marker of the data step that reads the numbers of
manifests stored under schema 11 back from storage (``pbx_recorder.catalog.manifest_numbers``,
run by ``pbx-recorder catalog migrate``).

Revision ID: 0012
Revises: 0011

The baseline creates the model as it stands, so on a catalog created fresh the table already
exists: it is created only when missing.
"""

from alembic import op

from pbx_recorder.catalog.schema_model import call_extra_numbers

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    bind = op.get_bind()
    call_extra_numbers.create(bind, checkfirst=True)
    now = ("floor(extract(epoch from now()))::bigint" if bind.dialect.name == "postgresql"
           else "CAST(strftime('%s', 'now') AS INTEGER)")
    bind.exec_driver_sql(
        "INSERT INTO catalog_settings (name, value) SELECT 'manifest_numbers_pass', "
        f"'{{\"cursor\":\"\",\"upto\":' || {now} || '}}' WHERE EXISTS (SELECT 1 FROM recordings) "
        "AND NOT EXISTS (SELECT 1 FROM catalog_settings WHERE name = 'manifest_numbers_pass')")


def downgrade() -> None:
    raise NotImplementedError("the catalog is never downgraded: restore a backup instead")
