"""Alembic environment of the catalog: runs on the connection ``pg_schema.upgrade`` hands over."""

from alembic import context

from pbx_recorder.catalog.schema_model import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
