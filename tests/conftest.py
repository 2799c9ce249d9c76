"""Shared fixtures: a database on SQLite and on PostgreSQL, a config, a runtime with the demo registry."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from mailflow.app.registry import import_file
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.app.setup import initialise
from mailflow.config import load_settings
from mailflow.store.schema import Contact, Group, Membership
from mailflow.testing import DEMO_REGISTRY, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.sink import SmtpSink

PG_SERVER = os.environ.get("MAILFLOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailflow.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def seat(session: Session, group: Group, contact: Contact, role: str, joined: datetime) -> None:
    """Make ``contact`` an active member of ``group`` with ``role`` (its facilitator too, when that)."""
    session.add(
        Membership(
            group_id=group.id,
            contact_id=contact.id,
            organisation_id=contact.organisation_id,
            role=role,
            status="active",
            joined_at=joined,
        )
    )
    if role == "facilitator":
        group.facilitator_id = contact.id


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    """A fixed, movable time: 26 November 2026, 09:00 UTC."""
    return Clock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))


@pytest.fixture
def config_path(tmp_path: Path, database_url: str) -> Path:
    """A config file for the test database, its Maildir under the test folder."""
    return write_config(tmp_path, database_url)


@pytest.fixture
def runtime(config_path: Path, clock: Clock) -> Iterator[Runtime]:
    """An initialised runtime with the demo registry imported and the test clock."""
    rt = build_runtime(load_settings(config_path))
    rt.clock = clock
    initialise(rt)
    registry = config_path.parent / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    import_file(rt, registry)
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One real Dovecot on 127.0.0.1 for the session; tests call ``reset()`` before they use it."""
    with DovecotServer() as server:
        yield server


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on 127.0.0.1 that records what it receives."""
    with SmtpSink() as server:
        yield server
