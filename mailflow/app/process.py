"""The processing pipeline: store raw bytes, then parse, classify and decide in one transaction per message.

Storing and processing are separate commits. A message is acknowledged to its source once it is stored; it is
then claimed (``pending`` -> ``processed`` in the same transaction as every effect), so a crash at any point
either leaves it ``pending`` to be processed again or finds it done: never lost, never answered twice.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer, prefetch_recipients
from mailflow.app.events import Inbound, record_event
from mailflow.app.handlers import HANDLERS, handle_help, later
from mailflow.app.helper import Renderings
from mailflow.app.replies import handle_token_reply
from mailflow.app.runtime import Runtime
from mailflow.app.work import Work
from mailflow.core.intent import is_digest_reply
from mailflow.core.model import GroupRef, IntentKind, LoopKind, ParsedMail
from mailflow.core.reading import Reading, View, intent_of, understand
from mailflow.errors import StoreUnavailableError
from mailflow.intake.base import Cursor, Disposition
from mailflow.store import repo
from mailflow.store.schema import InboundMessage
from mailflow.store.writes import at_end, write

log = logging.getLogger("mailflow.process")

_CONFLICT_ATTEMPTS = 3
_DIGEST_REPLY = later("mailflow.app.digest_mail", "handle_digest_reply")
_DIGEST_REPLY_KINDS = frozenset({IntentKind.UNKNOWN, IntentKind.HELP, IntentKind.LEAVE})
_STATUS_DISPOSITION = {
    "processed": Disposition.PROCESSED,
    "ignored": Disposition.PROCESSED,
    "quarantined": Disposition.QUARANTINED,
    "pending": Disposition.PENDING,
}


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing one raw message."""

    inbound_id: int
    duplicate: bool
    status: str


def store_raw(runtime: Runtime, raw: bytes, source: str, source_key: str | None = None) -> Stored:
    """Durably store ``raw``; a message already stored (same source key or same bytes) is not stored again.

    Raises:
        StoreUnavailableError: the database could not take the message.
    """
    digest = hashlib.sha256(raw).hexdigest()
    key = source_key or f"sha256:{digest}"
    now = runtime.clock()
    try:
        with runtime.sessions.begin() as session:
            row = InboundMessage(
                source=source,
                source_key=key[:600],
                sha256=digest,
                raw=raw,
                status="pending",
                reason="",
                from_addr="",
                subject="",
                message_id="",
                received_at=now,
            )
            session.add(row)
            session.flush()
            return Stored(row.id, duplicate=False, status="pending")
    except IntegrityError:
        pass
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"could not store the message: {exc.__class__.__name__}") from exc
    try:
        with runtime.sessions.begin() as session:
            existing = session.execute(
                select(InboundMessage.id, InboundMessage.status).where(
                    (InboundMessage.source_key == key[:600]) | (InboundMessage.sha256 == digest)
                )
            ).first()
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"could not read the store: {exc.__class__.__name__}") from exc
    if existing is None:  # pragma: no cover - a conflict on a row that then vanished
        raise StoreUnavailableError("the message conflicted with a stored one that is gone")
    return Stored(existing[0], duplicate=True, status=existing[1])


_INBOUND = InboundMessage.__table__
_STORE = insert(InboundMessage).returning(InboundMessage.id, sort_by_parameter_order=True)
BATCH_SIZE = 100
"""How many messages one batch transaction stores or processes."""


def _stored_already(session: Session, keys: list[str], digests: list[str]) -> dict[str, Stored]:
    rows = session.execute(
        select(_INBOUND.c.id, _INBOUND.c.status, _INBOUND.c.source_key, _INBOUND.c.sha256).where(
            or_(_INBOUND.c.source_key.in_(keys), _INBOUND.c.sha256.in_(digests))
        )
    )
    found: dict[str, Stored] = {}
    for inbound_id, status, key, digest in rows:
        found[key] = found[digest] = Stored(inbound_id, duplicate=True, status=status)
    return found


def store_many(runtime: Runtime, messages: Sequence[tuple[bytes, str, str]]) -> list[Stored]:
    """Durably store several ``(raw, source, source_key)`` messages in one transaction.

    Each message is deduplicated as :func:`store_raw` does it, against the store and against the earlier
    messages of the batch. When a concurrent writer stored one of them first, every message is stored on its
    own instead, so the outcome is always that of :func:`store_raw` one at a time.

    Raises:
        StoreUnavailableError: the database could not take the messages; none of them is stored.
    """
    now = runtime.clock()
    digests = [hashlib.sha256(raw).hexdigest() for raw, _source, _key in messages]
    keys = [
        (key or f"sha256:{digest}")[:600]
        for (_raw, _source, key), digest in zip(messages, digests, strict=True)
    ]
    try:
        with runtime.sessions.begin() as session:
            seen = _stored_already(session, keys, digests)
            # Each message is either stored already (a Stored), or the row at an index of ``rows``: its own
            # (new) or that of an earlier message of the batch with the same key or bytes (a repeat).
            outcome: list[Stored | tuple[int, bool]] = []
            rows: list[dict[str, object]] = []
            first: dict[str, int] = {}
            for (raw, source, _key), key, digest in zip(messages, keys, digests, strict=True):
                earlier = seen.get(key) or seen.get(digest)
                if earlier is not None:
                    outcome.append(earlier)
                    continue
                if key in first or digest in first:
                    outcome.append((first.get(key, first.get(digest, 0)), True))
                    continue
                first[key] = first[digest] = len(rows)
                outcome.append((len(rows), False))
                rows.append(
                    {
                        "source": source,
                        "source_key": key,
                        "sha256": digest,
                        "raw": raw,
                        "status": "pending",
                        "reason": "",
                        "from_addr": "",
                        "subject": "",
                        "message_id": "",
                        "received_at": now,
                    }
                )
            ids = list(session.execute(_STORE, rows).scalars()) if rows else []
    except IntegrityError:
        return [store_raw(runtime, raw, source, key) for raw, source, key in messages]
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"could not store the messages: {exc.__class__.__name__}") from exc
    return [
        item if isinstance(item, Stored) else Stored(ids[item[0]], duplicate=item[1], status="pending")
        for item in outcome
    ]


_WRITE_BACK = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("done_id"))
    .values(
        status=bindparam("status"),
        reason=bindparam("reason"),
        processed_at=bindparam("processed_at"),
        from_addr=bindparam("from_addr"),
        subject=bindparam("subject"),
        message_id=bindparam("message_id"),
    )
)


_CLAIM_MANY = (
    update(InboundMessage)
    .where(InboundMessage.id.in_(bindparam("ids", expanding=True)), InboundMessage.status == "pending")
    .values(status="processed")
    .returning(InboundMessage.id)
)
_RAW_MANY = select(_INBOUND.c.id, _INBOUND.c.raw).where(_INBOUND.c.id.in_(bindparam("ids", expanding=True)))


def _claim(session: Session, messages: Sequence[tuple[int, bytes | None]]) -> dict[int, Inbound]:
    """Take the pending ones of ``messages`` for this transaction, in one statement.

    The others are another worker's, or done.
    """
    connection = session.connection()
    claimed = set(connection.execute(_CLAIM_MANY, {"ids": [i for i, _ in messages]}).scalars())
    known = {inbound_id: raw for inbound_id, raw in messages if inbound_id in claimed and raw is not None}
    if missing := [inbound_id for inbound_id in claimed if inbound_id not in known]:
        known.update((row[0], row[1]) for row in connection.execute(_RAW_MANY, {"ids": missing}))
    return {inbound_id: Inbound(inbound_id, raw) for inbound_id, raw in known.items()}


def process_one(runtime: Runtime, inbound_id: int, raw: bytes | None = None) -> Disposition:
    """Process one stored message; a failure of the message quarantines it with its reason.

    Args:
        runtime: the service.
        inbound_id: the stored message's id.
        raw: its bytes when the caller still holds them (saves reading them back).

    Raises:
        StoreUnavailableError: the database failed; the message stays pending.
    """
    for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
        try:
            return _process_once(runtime, inbound_id, raw)
        except IntegrityError:
            # A concurrent worker inserted the same row first (the same new contact, say): the transaction
            # rolled back whole, so trying again sees that row and is safe.
            if attempt == _CONFLICT_ATTEMPTS:
                return _contain(runtime, inbound_id)
        except OperationalError as exc:
            # The database itself failed (down, locked, connection lost): the message stays pending and is
            # processed again later; quarantining it would blame the message for the store's trouble.
            raise StoreUnavailableError(f"processing message {inbound_id}: {exc.__class__.__name__}") from exc
        except Exception:
            return _contain(runtime, inbound_id)
    return Disposition.QUARANTINED  # pragma: no cover - the loop always returns


def _process_once(runtime: Runtime, inbound_id: int, raw: bytes | None) -> Disposition:
    return _process_together(runtime, [(inbound_id, raw)])[0]


_HELPER_PARTS = (4, 24)
"""Messages the helper reads at a time: a few first, for the main process to start on while it reads on."""


def _view(runtime: Runtime, groups: list[GroupRef]) -> View:
    settings = runtime.settings
    limits = settings.limits
    return View(
        settings.network.address,
        settings.network.domain,
        limits.max_message_bytes,
        limits.max_mime_parts,
        limits.max_mime_depth,
        tuple(groups),
    )


def _reading(runtime: Runtime, claimed: dict[int, Inbound], view: View) -> Iterator[dict[int, Reading]]:
    """What the claimed messages say, a part at a time: all in-process, or read ahead by the helper."""
    helper = runtime.helper
    if helper is None or len(claimed) == 1:
        yield {inbound_id: understand(inbound.raw, view) for inbound_id, inbound in claimed.items()}
        return
    ids, parts, first, size = list(claimed), [], 0, _HELPER_PARTS[0]
    while first < len(ids):
        parts.append(ids[first : first + size])
        first, size = first + size, _HELPER_PARTS[1]
    futures = [helper.read([claimed[i].raw for i in part], view) for part in parts]
    for part, future in zip(parts, futures, strict=True):
        read: list[Reading] = helper.result(future)
        yield dict(zip(part, read, strict=True))


def _process_together(runtime: Runtime, messages: Sequence[tuple[int, bytes | None]]) -> list[Disposition]:
    """Claim and process ``messages`` in one transaction whose rows are written at its end."""
    with runtime.sessions.begin() as session, at_end(session) as writes:
        claimed = _claim(session, messages)
        helping = Renderings(runtime.helper, session, writes) if runtime.helper and len(claimed) > 1 else None
        done: dict[int, Disposition] = {}
        groups = repo.group_refs(session)
        for read in _reading(runtime, claimed, _view(runtime, groups)):
            senders = [reading.parsed.from_addr for reading in read.values() if reading.parsed is not None]
            # What every message will look up about its sender, read for all of them at once, and the
            # contacts of the people among them who are new, created in one statement.
            repo.prefetch_senders(session, (sender for sender in senders if "@" in sender))
            prefetch_recipients(session, runtime.clock(), senders)
            people = {r.parsed.from_addr: r.parsed.from_name for r in read.values() if r.parsed and r.intent}
            repo.add_contacts(session, people, runtime.clock())
            for inbound_id, reading in read.items():
                inbound = claimed[inbound_id]
                parsed = _process(session, runtime, inbound, reading, groups)
                _write_back(session, inbound, parsed, runtime.clock())
                done[inbound_id] = _STATUS_DISPOSITION.get(inbound.status, Disposition.PROCESSED)
                if helping is not None:
                    helping.send()
        for inbound_id, _raw in messages:
            if inbound_id not in done:  # another worker has it, or it was done before
                status = session.scalar(select(InboundMessage.status).where(InboundMessage.id == inbound_id))
                done[inbound_id] = _STATUS_DISPOSITION.get(status or "processed", Disposition.PROCESSED)
        return [done[inbound_id] for inbound_id, _raw in messages]


def process_batch(runtime: Runtime, messages: Sequence[tuple[int, bytes | None]]) -> list[Disposition]:
    """Process several stored ``(id, raw)`` messages in one transaction; one disposition each.

    The batch commits whole. When any message in it fails (a bad message, a conflict with a concurrent
    worker), the batch rolls back and each message is processed on its own by :func:`process_one`, so a
    failure quarantines only its own message and the outcome is that of processing one at a time.

    Raises:
        StoreUnavailableError: the database failed; the messages stay pending.
    """
    if len(messages) == 1:
        return [process_one(runtime, *messages[0])]
    try:
        return _process_together(runtime, messages)
    except OperationalError as exc:
        raise StoreUnavailableError(f"processing a batch: {exc.__class__.__name__}") from exc
    except (BrokenExecutor, TimeoutError):
        log.warning("the helper process stopped or hangs; going on without it", exc_info=True)
        if runtime.helper is not None:
            runtime.helper.abandon()
        runtime.helper = None
    except Exception:  # one message's failure must not decide the others': retry them one by one
        log.debug("batch of %d fell back to one message at a time", len(messages), exc_info=True)
    return [process_one(runtime, inbound_id, raw) for inbound_id, raw in messages]


def _contain(runtime: Runtime, inbound_id: int) -> Disposition:
    """Quarantine the message whose processing just raised, with the exception as its reason."""
    exc = sys.exc_info()[1]
    reason = f"{exc.__class__.__name__}: {exc}"
    log.error("message %s quarantined: %s", inbound_id, reason, exc_info=exc)
    _quarantine(runtime, inbound_id, reason, traceback.format_exc(limit=5))
    return Disposition.QUARANTINED


def _quarantine(runtime: Runtime, inbound_id: int, reason: str, detail: str) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(status="quarantined", reason=reason[:2000], processed_at=runtime.clock())
        )
        record_event(
            session,
            "quarantined",
            runtime.clock(),
            detail=f"inbound {inbound_id}: {reason}\n{detail}",
        )


def _write_back(session: Session, inbound: Inbound, parsed: ParsedMail | None, now: datetime) -> None:
    values = {
        "done_id": inbound.id,
        "status": inbound.status,
        "reason": inbound.reason[:2000],
        "processed_at": now,
        "from_addr": parsed.from_addr[:320] if parsed else "",
        "subject": parsed.subject[:2000] if parsed else "",
        "message_id": parsed.message_id[:998] if parsed else "",
    }
    write(session, _WRITE_BACK, values)


def _process(
    session: Session, runtime: Runtime, inbound: Inbound, reading: Reading, read_with: list[GroupRef]
) -> ParsedMail | None:
    """Decide what one claimed message means and carry it out; return what was read of it.

    ``reading`` is what :func:`~mailflow.core.reading.understand` made of it with the groups ``read_with``;
    when the transaction has changed the groups since (a group it created), the intent is read again.
    """
    settings = runtime.settings
    now = runtime.clock()
    parsed, kind = reading.parsed, reading.loop
    if parsed is None:
        inbound.status, inbound.reason = "quarantined", reading.problem
        return None
    if kind is LoopKind.CALENDAR_REPLY and parsed.calendar and parsed.from_addr:
        # An iMIP REPLY: the attendee's answer is recorded; it is never answered with mail.
        inbound.reason = kind.value
        from mailflow.app.rsvp import record_rsvps  # noqa: PLC0415 - meetings load when a meeting needs them

        record_rsvps(session, now, parsed.calendar, parsed.from_addr)
        return parsed
    if kind is not None:
        inbound.status, inbound.reason = "ignored", kind.value
        record_event(session, f"ignored_{kind.value}", now, actor=parsed.from_addr, inbound=inbound)
        return parsed
    if not parsed.from_addr or "@" not in parsed.from_addr:
        inbound.status, inbound.reason = "quarantined", "no sender address could be read"
        return parsed
    tokens, intent = reading.tokens, reading.intent
    groups = repo.group_refs(session)
    if intent is None or groups is not read_with:
        intent = intent_of(parsed, settings.network.domain, groups, tokens)
    inbound.reason = intent.kind.value
    contact = repo.contact_for(session, parsed.from_addr, parsed.from_name, now)
    work = Work(
        session,
        runtime,
        now,
        inbound,
        parsed,
        Mailer(session, runtime, now, parsed=parsed, inbound=inbound),
    )
    handler = handle_token_reply if tokens else HANDLERS.get(intent.kind, handle_help)
    if (
        not tokens
        and not intent.exact
        and intent.kind in _DIGEST_REPLY_KINDS
        and is_digest_reply(parsed, settings.network.domain)
    ):
        # A reply to a digest ("thanks!", "unsubscribe me") is answered with how to reach the group; it
        # never leaves a group by accident. A request in it (to join another group, say) is still a request.
        handler = _DIGEST_REPLY
    handler(work, intent, contact)
    return parsed


def process_pending(
    runtime: Runtime, limit: int = 1000, on_processed: Callable[[], None] | None = None
) -> int:
    """Process stored messages still ``pending`` (after a crash, or queued by a listener); return how many."""
    with runtime.sessions() as session:
        ids = list(
            session.scalars(
                select(InboundMessage.id)
                .where(InboundMessage.status == "pending")
                .order_by(InboundMessage.id)
                .limit(limit)
            )
        )
    # Messages that arrived together are processed together: one transaction per batch, a message at a time
    # when only one is waiting (so a lone message is answered as fast as ever).
    for start in range(0, len(ids), BATCH_SIZE):
        process_batch(runtime, [(inbound_id, None) for inbound_id in ids[start : start + BATCH_SIZE]])
        if on_processed is not None:
            on_processed()
    return len(ids)


class Pipeline:
    """The :class:`~mailflow.intake.base.Sink` every intake adapter feeds: store, then process."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        process_now: bool = True,
        on_processed: Callable[[], None] | None = None,
    ) -> None:
        """Feed ``runtime``'s store; with ``process_now`` false, only store (a worker processes later).

        ``on_processed`` is called after each message this pipeline processed (to wake the sender).
        """
        self._runtime = runtime
        self._process_now = process_now
        self._on_processed = on_processed

    def accept(self, raw: bytes, source: str, source_key: str) -> Disposition:
        """Store ``raw`` durably, then process it unless a worker will."""
        stored = store_raw(self._runtime, raw, source, source_key)
        if stored.duplicate and stored.status != "pending":
            return _STATUS_DISPOSITION.get(stored.status, Disposition.PROCESSED)
        if not self._process_now:
            return Disposition.PENDING
        outcome = process_one(self._runtime, stored.inbound_id, raw)
        if self._on_processed is not None:
            self._on_processed()
        return outcome

    def accept_many(self, messages: list[tuple[bytes, str, str]]) -> list[Disposition]:
        """Store the messages in batches, then process them in batches unless a worker will."""
        outcome: list[Disposition] = []
        for start in range(0, len(messages), BATCH_SIZE):
            chunk = messages[start : start + BATCH_SIZE]
            stored = store_many(self._runtime, chunk)
            pending: dict[int, bytes] = {}
            for item, (raw, _source, _key) in zip(stored, chunk, strict=True):
                if item.status == "pending" and self._process_now:
                    pending.setdefault(item.inbound_id, raw)
            todo = list(pending.items())
            done = dict(zip(pending, process_batch(self._runtime, todo), strict=True)) if todo else {}
            for item in stored:
                if item.inbound_id in done:
                    outcome.append(done[item.inbound_id])
                else:
                    outcome.append(_STATUS_DISPOSITION.get(item.status, Disposition.PROCESSED))
            if self._on_processed is not None and todo:
                self._on_processed()
        return outcome


class Cursors:
    """The :class:`~mailflow.intake.base.CursorStore` over the database."""

    def __init__(self, runtime: Runtime) -> None:
        """Keep IMAP cursors in ``runtime``'s database."""
        self._runtime = runtime

    def load(self, mailbox_key: str) -> Cursor | None:
        """The saved cursor for ``mailbox_key``."""
        with self._runtime.sessions() as session:
            saved = repo.load_cursor(session, mailbox_key)
        return None if saved is None else Cursor(uidvalidity=saved[0], last_uid=saved[1])

    def save(self, mailbox_key: str, cursor: Cursor) -> None:
        """Durably record ``cursor``."""
        with self._runtime.sessions.begin() as session:
            repo.save_cursor(session, mailbox_key, cursor.uidvalidity, cursor.last_uid, self._runtime.clock())
