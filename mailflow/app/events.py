"""The audit trail, and the inbound message a unit of work is about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from mailflow.store.schema import Event, Request
from mailflow.store.writes import pending, write

_INSERT_EVENT = insert(Event)


@dataclass(slots=True)
class Inbound:
    """The message being processed: its id and bytes, and what becomes of it (written back at the end)."""

    id: int
    raw: bytes
    status: str = "processed"
    reason: str = ""


def record_event(
    session: Session,
    kind: str,
    now: datetime,
    *,
    request: Request | None = None,
    group_id: int | None = None,
    from_state: str = "",
    to_state: str = "",
    actor: str = "",
    inbound: Inbound | None = None,
    detail: str = "",
) -> None:
    """Add one row to the audit trail (at the end of the transaction when it keeps its writes)."""
    write(
        session,
        _INSERT_EVENT,
        {
            "kind": kind,
            "request_id": request.id if request else None,
            "group_id": group_id if group_id is not None else (request.group_id if request else None),
            "from_state": from_state,
            "to_state": to_state,
            "actor": actor,
            "inbound_id": inbound.id if inbound else None,
            "detail": detail[:4000],
            "created_at": now,
        },
    )


def waiting_events(session: Session) -> list[dict[str, Any]]:
    """The audit rows ``session``'s transaction keeps for its end (:mod:`mailflow.store.writes`)."""
    writes = pending(session)
    return writes.waiting(_INSERT_EVENT) if writes is not None else []


def record_events(session: Session, rows: list[dict[str, object]]) -> None:
    """Add many rows to the audit trail in one statement (see :func:`event_row`)."""
    if rows:
        session.connection().execute(_INSERT_EVENT, rows)


def event_row(
    kind: str, now: datetime, *, group_id: int | None, actor: str, detail: str
) -> dict[str, object]:
    """One audit-trail row as :func:`record_events` takes it (no request, no inbound message)."""
    return {
        "kind": kind,
        "request_id": None,
        "group_id": group_id,
        "from_state": "",
        "to_state": "",
        "actor": actor,
        "inbound_id": None,
        "detail": detail[:4000],
        "created_at": now,
    }
