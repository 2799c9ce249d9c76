"""Engine and session factory: SQLite in WAL mode by default, PostgreSQL the same way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run beside the one writer; NORMAL fsyncs at checkpoints, which WAL keeps durable
        # against a process crash (only an OS crash may lose the last transactions).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; for SQLite, create the folder and switch on WAL.

    Args:
        url: any SQLAlchemy URL, e.g. ``sqlite:///var/mailflow.db`` or ``postgresql+psycopg://…``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit, without autoflush.

    Autoflush before every query made each message cost a dozen small flushes; the use cases flush
    explicitly where they need a new row's id, and the commit writes the rest in batched INSERTs.
    """
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)
