"""Drain the transactional outbox through a transport, exactly as SPEC §7 asks.

Each row is claimed with a lease (``sending``) before delivery, so two senders never take the same row and a
sender that dies mid-delivery leaves a row that is retried, with the same Message-ID, when the lease runs out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from mailflow.app.events import record_event
from mailflow.app.runtime import Runtime
from mailflow.errors import (
    DeliveryUncertainError,
    PermanentDeliveryError,
    SenderRefusedError,
    TransientDeliveryError,
)
from mailflow.outbound.transport import Envelope, RecipientsRefusedError, Transport
from mailflow.store import repo
from mailflow.store.schema import OutboxMessage, Suppression

log = logging.getLogger("mailflow.outbox")

LEASE = timedelta(minutes=5)
PAUSE = timedelta(minutes=10)
_PAUSE_FLAG = "outbox_paused_until"
_RETRYABLE = ("pending", "uncertain", "sending")


@dataclass
class SendResult:
    """What one drain of the outbox did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    paused: str = ""
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Delay before the next attempt: 30 s doubling to an hour, with up to 20% jitter."""
    base = min(30 * 2 ** max(attempts - 1, 0), 3600)
    jitter = (rng or random.Random()).uniform(0, base * 0.2)  # noqa: S311 - spreading retries, not security
    return timedelta(seconds=base + jitter)


class Pacer:
    """Spaces deliveries to a configured rate per minute (Microsoft 365 takes 30), across drains."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Allow ``per_minute`` deliveries a minute; 0 means no limit."""
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._clock, self._sleep = clock, sleep
        self._last: float | None = None

    def wait(self) -> None:
        """Sleep until the next delivery is allowed."""
        if not self._interval:
            return
        if self._last is not None:
            delay = self._last + self._interval - self._clock()
            if delay > 0:
                self._sleep(delay)
        self._last = self._clock()


def paused_until(runtime: Runtime) -> datetime | None:
    """When a paused queue resumes, or None when it is running."""
    with runtime.sessions() as session:
        value = repo.get_flag(session, _PAUSE_FLAG)
    if not value:
        return None
    until = datetime.fromisoformat(value)
    return until if until > runtime.clock() else None


def _due_ids(runtime: Runtime, limit: int) -> list[int]:
    now = runtime.clock()
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.state.in_(_RETRYABLE), OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )


def _claim(runtime: Runtime, row_id: int) -> OutboxMessage | None:
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        claimed = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id,
                OutboxMessage.state.in_(_RETRYABLE),
                OutboxMessage.next_attempt_at <= now,
            )
            .values(state="sending", next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.get(OutboxMessage, row_id)
        if row is not None and session.get(Suppression, row.to_addr) is not None:
            row.state, row.last_error = "failed", "address suppressed after a permanent failure"
            return None
        return row


def _finish(runtime: Runtime, row_id: int, **values: object) -> None:
    with runtime.sessions.begin() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))


def send_once(
    runtime: Runtime,
    transport: Transport,
    *,
    limit: int = 10_000,
    should_stop: Callable[[], bool] | None = None,
    pacer: Pacer | None = None,
) -> SendResult:
    """Deliver every due outbox row once; return what happened.

    A recipient 5xx fails the row for good and suppresses the address; a 4xx or a connection error retries
    with backoff until ``max_attempts``; a sender-side refusal pauses the whole queue for a while and keeps
    the row, so no mail is dropped.
    """
    result = SendResult()
    until = paused_until(runtime)
    if until is not None:
        result.paused = f"paused until {until.isoformat()}"
        return result
    settings = runtime.settings.smtp
    pacer = pacer or Pacer(settings.rate_per_minute)
    for row_id in _due_ids(runtime, limit):
        if should_stop is not None and should_stop():
            break
        row = _claim(runtime, row_id)
        if row is None:
            continue
        pacer.wait()
        if not _deliver_one(runtime, transport, row, result):
            break
    if result.sent or result.failed or result.retried:
        log.info("outbox: %d sent, %d retried, %d failed", result.sent, result.retried, result.failed)
    return result


def _deliver_one(runtime: Runtime, transport: Transport, row: OutboxMessage, result: SendResult) -> bool:
    """Deliver one claimed row and record the outcome; False when the queue must pause."""
    envelope = Envelope(sender=row.sender, recipients=(row.to_addr,), message_id=row.message_id, raw=row.raw)
    now = runtime.clock()
    try:
        transport.deliver(envelope)
    except PermanentDeliveryError as exc:
        # Only a refused recipient is suppressed: content refused is not the address's fault.
        _fail_permanently(runtime, row, str(exc), suppress=isinstance(exc, RecipientsRefusedError))
        result.failed += 1
        result.errors.append(f"{row.to_addr}: {exc}")
    except SenderRefusedError as exc:
        _pause(runtime, row, str(exc))
        result.paused = str(exc)
        result.errors.append(str(exc))
        return False
    except TransientDeliveryError as exc:
        if row.attempts >= runtime.settings.smtp.max_attempts:
            _fail_permanently(runtime, row, f"gave up after {row.attempts} attempts: {exc}", suppress=False)
            result.failed += 1
        else:
            # An uncertain delivery is retried like any other, with the same Message-ID.
            state = "uncertain" if isinstance(exc, DeliveryUncertainError) else "pending"
            next_at = now + backoff(row.attempts)
            _finish(runtime, row.id, state=state, last_error=str(exc)[:2000], next_attempt_at=next_at)
            result.retried += 1
        result.errors.append(f"{row.to_addr}: {exc}")
    else:
        _finish(runtime, row.id, state="sent", sent_at=now, last_error="")
        result.sent += 1
    return True


def _fail_permanently(runtime: Runtime, row: OutboxMessage, reason: str, *, suppress: bool = True) -> None:
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(state="failed", last_error=reason[:2000])
        )
        if suppress and session.get(Suppression, row.to_addr) is None:
            session.add(Suppression(email=row.to_addr, reason=reason[:2000], created_at=now))
        record_event(session, "delivery_failed", now, actor=row.to_addr, detail=f"outbox {row.id}: {reason}")
    log.warning("outbox %s to %s failed: %s", row.id, row.to_addr, reason)


def _pause(runtime: Runtime, row: OutboxMessage, reason: str) -> None:
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(
                state="pending",
                attempts=OutboxMessage.attempts - 1,
                next_attempt_at=now,
                last_error=reason[:2000],
            )
        )
        repo.set_flag(session, _PAUSE_FLAG, (now + PAUSE).isoformat(), now)
        record_event(session, "outbox_paused", now, detail=reason)
    log.error("outbox paused for %s: the relay refused us as a sender: %s", PAUSE, reason)
