"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailflow.app.runtime import Runtime
from mailflow.store import migrate
from mailflow.store.schema import Base


def test_migrations_match_the_models(runtime: Runtime):
    """After ``init`` the database is at the newest revision and autogenerate finds nothing to change."""
    assert migrate.is_current(runtime.engine)
    with runtime.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [] == differences


def test_upgrade_twice_changes_nothing(runtime: Runtime):
    """Upgrading a current database again is a no-op (``init`` is idempotent)."""
    migrate.upgrade(runtime.engine)
    assert migrate.is_current(runtime.engine)
