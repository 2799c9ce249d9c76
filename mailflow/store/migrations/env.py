"""Alembic environment: runs on the connection that :mod:`mailflow.store.migrate` passes in."""

from alembic import context

from mailflow.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
