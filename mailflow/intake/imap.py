"""IMAP intake: read new mail by UID, hand it to the sink, then move it out of the way.

Progress is the mailbox's UIDVALIDITY and the last UID taken (a
:class:`~mailflow.intake.base.Cursor`), never the Seen flag: staff read the mailbox too, so
bodies are fetched with ``BODY.PEEK[]``.
Each message is stored by the sink before it is moved (or flagged), and the cursor is saved after
that, so a crash at any point loses nothing; the sink deduplicates what is handed twice.

IDLE is only a hint: after every wake, renewal or reconnect the adapter catches up with a UID
search.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

# imapclient ships no type information (no py.typed): its objects are typed Any here.
from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError

from mailflow.errors import ConfigError, StoreUnavailableError
from mailflow.intake.base import Cursor, CursorStore, Disposition, Sink

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Sequence

    from mailflow.config import ImapSettings

_log = logging.getLogger("mailflow.intake.imap")

PROCESSED_KEYWORD = "$MailflowProcessed"
"""Set on taken messages when the server can neither MOVE nor UID EXPUNGE."""

_BODY_BATCH = 50
_DATE_BATCH = 500
_IDLE_CHECK_SECONDS = 2.0
_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 300.0
_STABLE_SECONDS = 60.0
_random = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one catch-up round did.

    Attributes:
        fetched: messages whose bytes were read from the server.
        processed: messages the sink processed (or stored for later processing).
        quarantined: messages the sink quarantined.
        skipped_backlog: messages left untouched on a first start because they were too old.
        store_unavailable: the round stopped early because the sink could not store a message.
    """

    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    skipped_backlog: int = 0
    store_unavailable: bool = False


class _Backoff:
    """Exponential backoff with full jitter: 1 s doubling up to 5 minutes."""

    def __init__(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return _random.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0


@dataclass(slots=True)
class _Round:
    """The running state of one catch-up round."""

    uidvalidity: int
    last: int
    saved: Cursor | None
    skipped: int = 0
    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    unavailable: bool = False

    def result(self) -> PollResult:
        counts = (self.fetched, self.processed, self.quarantined, self.skipped)
        return PollResult(*counts, store_unavailable=self.unavailable)


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class ImapIntake:
    """Reads one IMAP mailbox into a :class:`~mailflow.intake.base.Sink`.

    Args:
        settings: the ``[imap]`` section.
        password: the resolved password (``settings.password()``).
        sink: stores and processes each raw message.
        cursors: persists the UIDVALIDITY and last UID taken.
        client_factory: builds the ``imapclient.IMAPClient``; called as
            ``factory(host, port=, ssl=, ssl_context=, timeout=)``. Defaults to the class itself.
        now: the clock, for the first-start backlog cut-off.
        backlog: on a first start, messages older than this are left alone and not processed.
        ssl_context: the TLS context for ``ssl`` and ``starttls``; defaults to
            ``ssl.create_default_context()``.

    Raises:
        ConfigError: ``auth = "xoauth2"`` (not supported yet) or no password configured.
    """

    def __init__(
        self,
        settings: ImapSettings,
        password: str | None,
        sink: Sink,
        cursors: CursorStore,
        *,
        client_factory: Callable[..., IMAPClient] | None = None,
        now: Callable[[], datetime] | None = None,
        backlog: timedelta = timedelta(hours=24),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Check the settings; no connection is made until :meth:`poll_once` or :meth:`run`."""
        if settings.auth == "xoauth2":
            raise ConfigError('[imap] auth: "xoauth2" is not supported yet; use "password"')
        if password is None:
            raise ConfigError("[imap] password_env or password_file: a password is required")
        self._settings = settings
        self._password = password
        self._sink = sink
        self._cursors = cursors
        self._factory = client_factory or IMAPClient
        self._now = now or (lambda: datetime.now(UTC))
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._known_mailboxes: set[str] = set()

    @property
    def mailbox_key(self) -> str:
        """The mailbox identity the cursor is saved under: ``imap:user@host:port/mailbox``."""
        s = self._settings
        return f"imap:{s.username}@{s.host}:{s.port}/{s.mailbox}"

    def poll_once(self) -> PollResult:
        """Connect, take every new message, disconnect.

        Returns:
            The round's counts; ``store_unavailable`` is set when the sink could not store a
            message (that message and the ones after it stay for the next round).

        Raises:
            OSError: the server could not be reached or the connection broke.
            imapclient.exceptions.IMAPClientError: login failed or the server refused a command.
        """
        client = self._connect()
        try:
            return self._catch_up(client)
        finally:
            self._close(client)

    def run(self, stop: threading.Event) -> None:
        """Take new mail until ``stop`` is set: IDLE when possible, else poll.

        Every failure is logged and followed by a reconnect after a backoff with jitter; the
        wait ends early when ``stop`` is set. Every (re)connect starts with a catch-up.
        """
        backoff = _Backoff()
        while not stop.is_set():
            client = None
            try:
                client = self._connect()
                self._session(client, stop, backoff)
            except (OSError, IMAPClientError) as exc:
                _log.warning("IMAP connection to %s failed: %s", self._where(), exc)
            except Exception:
                _log.exception("IMAP intake round on %s failed", self._where())
            finally:
                if client is not None:
                    self._close(client)
            if not stop.is_set():
                delay = backoff.next_delay()
                _log.info("reconnecting to %s in %.1f s", self._where(), delay)
                stop.wait(delay)

    def _session(self, client: IMAPClient, stop: threading.Event, backoff: _Backoff) -> None:
        store_backoff = _Backoff()
        connected = time.monotonic()
        use_idle = self._settings.idle and bool(client.has_capability("IDLE"))
        while not stop.is_set():
            result = self._catch_up(client)
            # Only a connection that has stayed up a while earns a fresh backoff: a server that accepts
            # the login and then drops us during IDLE is not hammered once a second.
            if time.monotonic() - connected >= _STABLE_SECONDS:
                backoff.reset()
            if result.store_unavailable:
                stop.wait(store_backoff.next_delay())
                continue
            store_backoff.reset()
            # A server announces in IDLE only what arrives after IDLE began (Dovecot holds back
            # what came since the last command until its 30 s check), and a SEARCH may not see
            # mail that arrived since the SELECT: look again until a NOOP reports nothing new.
            if result.fetched or self._new_mail_announced(client):
                continue
            if use_idle:
                self._idle(client, stop)
            else:
                stop.wait(self._settings.poll_seconds)

    @staticmethod
    def _new_mail_announced(client: IMAPClient) -> bool:
        """Send NOOP and say whether the server reported new messages (EXISTS)."""
        _text, responses = client.noop()
        return any(len(response) > 1 and response[1] == b"EXISTS" for response in responses)

    def _idle(self, client: IMAPClient, stop: threading.Event) -> None:
        """IDLE until the server reports a change, the renewal time comes, or ``stop`` is set."""
        renew_at = time.monotonic() + self._settings.idle_renew_seconds
        client.idle()
        _log.debug("idling on %s", self._where())
        try:
            while not stop.is_set():
                remaining = renew_at - time.monotonic()
                if remaining <= 0:
                    return
                wait = min(_IDLE_CHECK_SECONDS, remaining)
                started = time.monotonic()
                responses = client.idle_check(timeout=wait)
                # Anything but an "OK Still here" keepalive (EXISTS, EXPUNGE, FETCH, BYE) is news.
                if any(not (response and response[0] == b"OK") for response in responses):
                    return
                # idle_check returns nothing early when the server closed the connection; end
                # IDLE so that the next command fails and the connection is replaced.
                if not responses and time.monotonic() - started < wait / 2:
                    return
        finally:
            # idle_check leaves the socket without a timeout; restore it to detect a dead peer.
            client.socket().settimeout(self._settings.timeout_seconds)
            client.idle_done()

    def _connect(self) -> IMAPClient:
        s = self._settings
        context = self._ssl_context
        if context is None and s.security != "none":
            context = ssl.create_default_context()
        self._known_mailboxes = set()
        client = self._factory(
            s.host,
            port=s.port,
            ssl=s.security == "ssl",
            ssl_context=context,
            timeout=s.timeout_seconds,
        )
        try:
            if s.security == "starttls":
                client.starttls(context)
            client.login(s.username, self._password)
        except BaseException:
            self._close(client)
            raise
        client.normalise_times = False
        return client

    @staticmethod
    def _close(client: IMAPClient) -> None:
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception as exc:
                _log.debug("closing the IMAP connection failed: %s", exc)

    def _catch_up(self, client: IMAPClient) -> PollResult:
        """Take every message above the cursor: store, move, advance the cursor."""
        selected = client.select_folder(self._settings.mailbox)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        cursor = self._cursors.load(self.mailbox_key)
        first_start = cursor is None
        if cursor is not None and cursor.uidvalidity != uidvalidity:
            changed = f"UIDVALIDITY {cursor.uidvalidity} is now {uidvalidity}"
            _log.warning("%s: %s, reading it again from the start", self.mailbox_key, changed)
            cursor = None
        last = cursor.last_uid if cursor else 0
        found = client.search(["UID", f"{last + 1}:*", "NOT", "KEYWORD", PROCESSED_KEYWORD])
        # "UID n:*" always matches the newest message, even when its UID is below n.
        uids = sorted(int(uid) for uid in found if int(uid) > last)
        old: set[int] = set()
        if first_start and not self._settings.catch_up_existing:
            old = self._older_than_backlog(client, uids)
        progress = _Round(uidvalidity=uidvalidity, last=last, saved=cursor, skipped=len(old))
        for batch in _chunks(uids, _BODY_BATCH):
            self._take(client, batch, old, progress)
            if progress.unavailable:
                break
        self._save(progress)
        result = progress.result()
        self._log_round(result)
        return result

    def _take(self, client: IMAPClient, batch: Sequence[int], old: set[int], progress: _Round) -> None:
        """Hand one batch of messages to the sink in UID order, moving each one it stored."""
        wanted = [uid for uid in batch if uid not in old]
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        for uid in batch:
            raw = bodies.get(uid, {}).get(b"BODY[]")
            if raw is None:
                # Too old on a first start, or expunged by someone since the search.
                progress.last = uid
                continue
            progress.fetched += 1
            key = f"{self.mailbox_key}:{progress.uidvalidity}:{uid}"
            try:
                disposition = self._sink.accept(bytes(raw), "imap", key)
            except StoreUnavailableError as exc:
                _log.warning("store unavailable, leaving %s for the next round: %s", key, exc)
                progress.unavailable = True
                return
            self._dispose(client, uid, disposition)
            if disposition is Disposition.QUARANTINED:
                progress.quarantined += 1
            else:
                progress.processed += 1
            progress.last = uid
            self._save(progress)

    def _save(self, progress: _Round) -> None:
        cursor = Cursor(progress.uidvalidity, progress.last)
        if cursor != progress.saved:
            self._cursors.save(self.mailbox_key, cursor)
            progress.saved = cursor

    def _older_than_backlog(self, client: IMAPClient, uids: Sequence[int]) -> set[int]:
        """On a first start, return the UIDs whose INTERNALDATE is older than the backlog window."""
        cutoff = self._now() - self._backlog
        old: set[int] = set()
        for batch in _chunks(uids, _DATE_BATCH):
            for uid, data in client.fetch(list(batch), ["INTERNALDATE"]).items():
                when: datetime = data[b"INTERNALDATE"]
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                if when < cutoff:
                    old.add(int(uid))
        if old:
            since = cutoff.isoformat(timespec="seconds")
            _log.info("%s: first start, %d messages before %s left alone", self.mailbox_key, len(old), since)
        return old

    def _dispose(self, client: IMAPClient, uid: int, disposition: Disposition) -> None:
        """Move a stored message out of the mailbox, or flag it when the server cannot."""
        s = self._settings
        target = s.quarantine_mailbox if disposition is Disposition.QUARANTINED else s.processed_mailbox
        if client.has_capability("MOVE"):
            self._ensure_mailbox(client, target)
            client.move([uid], target)
        elif client.has_capability("UIDPLUS"):
            self._ensure_mailbox(client, target)
            client.copy([uid], target)
            client.add_flags([uid], [DELETED])
            client.uid_expunge([uid])
        else:
            client.add_flags([uid], [PROCESSED_KEYWORD])

    def _ensure_mailbox(self, client: IMAPClient, name: str) -> None:
        if name in self._known_mailboxes:
            return
        if not client.folder_exists(name):
            try:
                client.create_folder(name)
                _log.info("created mailbox %s on %s", name, self._where())
            except IMAPClientError:
                # Another instance may have created it meanwhile; anything else fails below.
                if not client.folder_exists(name):
                    raise
        self._known_mailboxes.add(name)

    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def _log_round(self, result: PollResult) -> None:
        level = logging.INFO if result != PollResult() else logging.DEBUG
        counts = f"{result.fetched} fetched, {result.processed} processed, "
        counts += f"{result.quarantined} quarantined, {result.skipped_backlog} old skipped"
        unavailable = ", store unavailable" if result.store_unavailable else ""
        _log.log(level, "%s: %s%s", self.mailbox_key, counts, unavailable)
