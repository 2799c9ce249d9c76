"""The seam between the intake adapters and the application.

Adapters never import the store: the application hands them a :class:`Sink` that durably stores a raw message,
processes it, and says what became of it. A sink raises
:class:`~mailflow.errors.StoreUnavailableError` when the message could not be stored; the adapter must
then not acknowledge it (IMAP: leave it in place; SMTP: ``451``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class Disposition(enum.StrEnum):
    """What became of a stored message."""

    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    PENDING = "pending"


class Sink(Protocol):
    """Stores and processes raw messages for an adapter."""

    def accept(self, raw: bytes, source: str, source_key: str) -> Disposition:
        """Store ``raw`` durably (idempotent on ``source_key`` and on the bytes), then process it.

        Args:
            raw: the message exactly as received.
            source: ``imap``, ``smtp``, ``lmtp`` or ``file``.
            source_key: the message's identity at its source (e.g. ``imap:user@host/INBOX:uidvalidity:uid``);
                a second call with the same key returns the first call's disposition and stores nothing.

        Returns:
            Whether the message was processed or quarantined (``PENDING`` when it was stored for a
            background worker to process).

        Raises:
            StoreUnavailableError: the message was not stored; do not acknowledge it.
        """
        ...


class BatchSink(Sink, Protocol):
    """A sink that also takes many messages at once, for intake that has them all in hand (files)."""

    def accept_many(self, messages: list[tuple[bytes, str, str]]) -> list[Disposition]:
        """Store every ``(raw, source, source_key)`` durably, then process them; one disposition each.

        Storing and processing in batches shares each transaction's fixed cost among the messages; the
        outcome of every message is the same as :meth:`Sink.accept` one at a time would give.

        Raises:
            StoreUnavailableError: the messages were not stored; acknowledge none of them.
        """
        ...


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far an IMAP mailbox has been read: its UIDVALIDITY and the highest UID taken."""

    uidvalidity: int
    last_uid: int


class CursorStore(Protocol):
    """Persists IMAP progress per mailbox identity."""

    def load(self, mailbox_key: str) -> Cursor | None:
        """Return the saved cursor for ``mailbox_key``, or None on a first start."""
        ...

    def save(self, mailbox_key: str, cursor: Cursor) -> None:
        """Durably record ``cursor`` for ``mailbox_key``."""
        ...
