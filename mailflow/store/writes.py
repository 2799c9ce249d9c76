"""Rows a transaction writes at its end, many to a statement.

Processing a batch of messages inserts the same few kinds of row again and again: audit events, reply tokens,
outbox mails, and each message's outcome. Executed one at a time they cost more than everything else the
message needs; kept in a :class:`Writes` and executed at the end of the transaction, each kind is one
``executemany``. Rows are written in the order their statements were first used, before the commit, so they
commit or vanish with everything else the transaction did.

Only rows that nothing in the same transaction reads back may wait here: the outbox is the one table read
during processing (the reply rate limit), and it counts the waiting rows too (:meth:`Writes.waiting`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

_KEY = "mailflow.writes"


class Writes:
    """Parameter rows per statement, kept until :meth:`flush`."""

    def __init__(self) -> None:
        """Start with nothing kept."""
        self._rows: dict[Executable, list[dict[str, Any]]] = {}
        self._before: list[Callable[[], None]] = []

    def before_flush(self, complete: Callable[[], None]) -> None:
        """Call ``complete`` when :meth:`flush` begins: rows kept incomplete are filled in then."""
        self._before.append(complete)

    def add(self, statement: Executable, row: dict[str, Any]) -> None:
        """Keep ``row`` for ``statement`` (every row of one statement has the same keys)."""
        self._rows.setdefault(statement, []).append(row)

    def waiting(self, statement: Executable) -> list[dict[str, Any]]:
        """The rows kept for ``statement`` so far."""
        return self._rows.get(statement, [])

    def flush(self, session: Session) -> None:
        """Execute every kept row, one ``executemany`` per statement, in the order of first use."""
        for complete in self._before:
            complete()
        connection = session.connection()
        for statement, rows in self._rows.items():
            connection.execute(statement, list(rows))
        self._rows.clear()


def pending(session: Session) -> Writes | None:
    """The writes ``session``'s transaction keeps for its end, if it keeps any."""
    found: Writes | None = session.info.get(_KEY)
    return found


def write(session: Session, statement: Executable, row: dict[str, Any]) -> None:
    """Execute ``statement`` with ``row`` now, or at the end of the transaction when it keeps writes."""
    writes = pending(session)
    if writes is None:
        session.connection().execute(statement, row)
    else:
        writes.add(statement, row)


@contextmanager
def at_end(session: Session) -> Iterator[Writes]:
    """Keep ``session``'s writes until the block ends, then execute them (not when the block raises).

    Use it inside the transaction: ``with sessions.begin() as session, at_end(session): ...``.
    """
    writes = session.info[_KEY] = Writes()
    try:
        yield writes
        writes.flush(session)
    finally:
        session.info.pop(_KEY, None)
