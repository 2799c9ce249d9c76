"""The exactly-once runner of scheduled mail: jobs say what is due, each mail is queued once.

A job reads what is due and returns one :class:`Due` per mail, keyed by job, subject, period and recipient.
Each mail is then queued in a transaction of its own together with its key in ``once_keys``, whose primary
key refuses a second copy: a tick run twice, a tick that crashed halfway and is run again, or two instances
ticking at once all send every mail exactly once. Jobs only read, so a job may be re-run at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer
from mailflow.app.events import event_row, record_events
from mailflow.app.runtime import Runtime
from mailflow.core.plans import Mail
from mailflow.store.schema import Once
from mailflow.store.writes import at_end

log = logging.getLogger("mailflow.schedule")

_KEY_CHUNK = 500
BATCH_SIZE = 50
"""Scheduled mails queued per transaction: a crash loses at most this many from one tick's progress."""


@dataclass(frozen=True, slots=True)
class Due:
    """One scheduled mail: its once-key, the mail, the event that records it, and a change that goes with it.

    A token the mail asks for is bound to ``group_id``. ``apply`` changes state in the same transaction as
    the mail (a group moving to ``closing`` with its question), so both happen once or not at all.
    """

    key: str
    mail: Mail
    event: str
    group_id: int | None = None
    detail: str = ""
    apply: Callable[[Session, datetime], None] | None = None
    bodies: tuple[str, str, str] | None = None
    """The mail's subject, text and HTML when many Dues say the same thing (rendered once by the job)."""


def facilitator_and_secretariat(
    key: str,
    template: str,
    context: dict[str, Any],
    *,
    facilitator: str | None,
    secretariat: str,
    event: str,
    group_id: int,
    detail: str,
) -> list[Due]:
    """A reminder to a group's facilitator (``template``) and a note of it to the secretariat.

    The note's template is ``<template>_secretariat``. Each is keyed ``<key>/<recipient>``; a group without a
    facilitator gets the secretariat's note alone.
    """
    recipients = [(template, facilitator)] if facilitator else []
    recipients.append((f"{template}_secretariat", secretariat))
    return [
        Due(key=f"{key}/{to}", mail=Mail(name, to, context), event=event, group_id=group_id, detail=detail)
        for name, to in recipients
    ]


@dataclass
class TickResult:
    """What one tick did, per job: mails queued now, and mails found already sent."""

    queued: dict[str, int] = field(default_factory=dict)
    already: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Mails queued by this tick."""
        return sum(self.queued.values())


Job = Callable[[Session, Runtime, datetime], list[Due]]


def sent_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` already taken: their mail is queued (a job may skip building it again)."""
    wanted = [key[:400] for key in keys]
    found: set[str] = set()
    for start in range(0, len(wanted), _KEY_CHUNK):
        chunk = wanted[start : start + _KEY_CHUNK]
        found.update(session.scalars(select(Once.key).where(Once.key.in_(chunk))))
    return found


def _queue(session: Session, mailer: Mailer, item: Due, now: datetime) -> dict[str, object]:
    """Queue one scheduled mail (and its change); return its audit-trail row for the caller to write."""
    if item.apply is not None:
        item.apply(session, now)
    mailer.queue(item.mail, group_id=item.group_id if item.mail.token else None, bodies=item.bodies)
    return event_row(item.event, now, group_id=item.group_id, actor=item.mail.to, detail=item.detail)


def _queue_once(runtime: Runtime, item: Due, now: datetime) -> bool:
    """Queue one scheduled mail with its key in one transaction; False when it was already sent."""
    try:
        with runtime.sessions.begin() as session:
            session.add(Once(key=item.key[:400], created_at=now))
            session.flush()  # the key first: a concurrent tick that holds it makes this one stop here
            record_events(session, [_queue(session, Mailer(session, runtime, now), item, now)])
    except IntegrityError:
        return False
    return True


def _queue_batch(runtime: Runtime, items: list[Due], now: datetime) -> int:
    """Queue several scheduled mails, their keys first, in one transaction; return how many were queued.

    When a key is already taken (a concurrent tick got there first), the batch rolls back and each mail is
    queued on its own, so every mail is still queued exactly once.
    """
    if len(items) == 1:
        return int(_queue_once(runtime, items[0], now))
    try:
        with runtime.sessions.begin() as session:
            session.execute(insert(Once), [{"key": item.key[:400], "created_at": now} for item in items])
            # Outbox rows and events are written once for the batch: one statement each instead of one a mail.
            with at_end(session):
                mailer = Mailer(session, runtime, now)
                mailer.check_suppressed(item.mail.to for item in items)
                record_events(session, [_queue(session, mailer, item, now) for item in items])
    except IntegrityError:
        return sum(_queue_once(runtime, item, now) for item in items)
    return len(items)


Progress = Callable[[str, int, int], None]
"""Told (job, mails handled so far, mails due) as a run goes on: the command line draws a bar with it."""


def run_jobs(
    runtime: Runtime, now: datetime, jobs: Mapping[str, Job], progress: Progress | None = None
) -> TickResult:
    """Run ``jobs`` at ``now``; each mail they find due is queued once, however often this runs."""
    result = TickResult()
    for name, job in jobs.items():
        with runtime.sessions() as session:
            due = job(session, runtime, now)
        with runtime.sessions() as session:
            done = sent_keys(session, (item.key for item in due))
        todo = [item for item in due if item.key[:400] not in done]
        queued = 0
        for start in range(0, len(todo), BATCH_SIZE):
            queued += _queue_batch(runtime, todo[start : start + BATCH_SIZE], now)
            if progress is not None:
                progress(name, min(start + BATCH_SIZE, len(todo)), len(todo))
        already = len(due) - queued
        result.queued[name], result.already[name] = queued, already
        if due:
            log.info("tick %s: %d queued, %d already sent", name, queued, already)
    return result
