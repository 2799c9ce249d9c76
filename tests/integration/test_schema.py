"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from mailflow.app.runtime import Runtime
from mailflow.store import migrate
from mailflow.store.db import make_engine
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


def test_upgrade_to_0003_gives_existing_facilitators_their_terms(database_url: str):
    """A database from before facilitator terms gets a term per facilitator membership, ended if they left."""
    engine = make_engine(database_url)
    try:
        config = migrate._alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
        when = datetime(2026, 1, 5, 9, 0)  # noqa: DTZ001 - stored naive UTC, as the schema stores times
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO groups (slug, name, aliases, status, associated, description, aim, declared,"
                    " created_at) VALUES ('g', 'G', '[]', 'active', false, '', '', false, :t)"
                ),
                {"t": when},
            )
            for email in ("f@x.example", "g@x.example"):
                connection.execute(
                    text("INSERT INTO contacts (email, name, created_at) VALUES (:e, '', :t)"),
                    {"e": email, "t": when},
                )
            connection.execute(
                text(
                    "INSERT INTO memberships (group_id, contact_id, role, status, joined_at, left_at)"
                    " SELECT 1, id, 'facilitator',"
                    " CASE WHEN email = 'g@x.example' THEN 'left' ELSE 'active' END,"
                    " :t, CASE WHEN email = 'g@x.example' THEN :t ELSE NULL END FROM contacts"
                ),
                {"t": when},
            )
        migrate.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT c.email, t.ended_reason FROM facilitator_terms t"
                    " JOIN contacts c ON c.id = t.contact_id ORDER BY c.email"
                )
            ).all()
        assert [("f@x.example", ""), ("g@x.example", "left")] == [tuple(row) for row in rows]
    finally:
        engine.dispose()
