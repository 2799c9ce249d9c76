"""The IMAP intake adapter against a real Dovecot on 127.0.0.1.

The sink and cursor store are in-memory implementations of our own seam (``mailflow.intake.base``);
everything IMAP is real: APPEND, UID SEARCH, FETCH, MOVE, IDLE and a server restart.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta

import imapclient
import pytest

from mailflow.config import ImapSettings
from mailflow.errors import ConfigError, StoreUnavailableError
from mailflow.intake.base import Cursor, Disposition
from mailflow.intake.imap import PROCESSED_KEYWORD, ImapIntake, PollResult
from tests.servers.dovecot import DovecotServer

LOGGER = "mailflow.intake.imap"


def message(subject: str, body: str = "Could Ghent join the circular procurement group?") -> bytes:
    """Build a small raw message; the same arguments give the same bytes."""
    slug = subject.lower().replace(" ", "-")
    return (
        "From: Ghent Procurement <procurement@ghent.example>\r\n"
        "To: interest-groups@network.example\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{slug}@ghent.example>\r\n"
        "Date: Mon, 03 Mar 2025 10:00:00 +0100\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


class RecordingSink:
    """Records each new source key; quarantines subjects with "quarantine"; can be made to fail.

    Like the real sink it is idempotent on ``source_key``: a key seen before returns the first
    disposition and records nothing. Deduplication on bytes is the real sink's job.
    """

    def __init__(self) -> None:
        """Start with nothing accepted and the store available."""
        self.accepted: list[tuple[bytes, str, str]] = []
        self.calls: list[str] = []
        self.arrivals: queue.Queue[bytes] = queue.Queue()
        self.unavailable_for: set[bytes] = set()
        self._dispositions: dict[str, Disposition] = {}

    def accept(self, raw: bytes, source: str, source_key: str) -> Disposition:
        """Record a new key, or raise StoreUnavailableError for bytes in ``unavailable_for``."""
        self.calls.append(source_key)
        if raw in self.unavailable_for:
            raise StoreUnavailableError("database is down")
        if source_key in self._dispositions:
            return self._dispositions[source_key]
        disposition = Disposition.PROCESSED
        if b"Subject: quarantine" in raw:
            disposition = Disposition.QUARANTINED
        self._dispositions[source_key] = disposition
        self.accepted.append((raw, source, source_key))
        self.arrivals.put(raw)
        return disposition

    @property
    def keys(self) -> list[str]:
        """The source keys handed so far, in order."""
        return [key for _raw, _source, key in self.accepted]


class DictCursors:
    """A CursorStore in a dict."""

    def __init__(self) -> None:
        """Start with no cursors (a first start)."""
        self.saved: dict[str, Cursor] = {}

    def load(self, mailbox_key: str) -> Cursor | None:
        """Return the saved cursor or None."""
        return self.saved.get(mailbox_key)

    def save(self, mailbox_key: str, cursor: Cursor) -> None:
        """Remember the cursor."""
        self.saved[mailbox_key] = cursor


def settings_for(server: DovecotServer, **overrides: object) -> ImapSettings:
    """Build ``[imap]`` settings that point at ``server`` without TLS."""
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": server.username,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return ImapSettings.model_validate(values)


def make_intake(server: DovecotServer, **overrides: object):
    """Return an intake for ``server`` with a fresh sink and cursor store."""
    sink, cursors = RecordingSink(), DictCursors()
    intake = ImapIntake(settings_for(server, **overrides), server.password, sink, cursors)
    return intake, sink, cursors


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll ``condition`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def imap(dovecot: DovecotServer) -> DovecotServer:
    """Return the session's Dovecot, emptied for this test."""
    dovecot.reset()
    return dovecot


def test_delivered_message_is_handed_once_and_moved_to_processed(imap):
    """A new message reaches the sink once with its UID key and lands in a new Processed mailbox."""
    raw = message("join circular")
    uid = imap.deliver(raw)
    intake, sink, cursors = make_intake(imap)
    assert "Processed" not in imap.mailboxes()

    result = intake.poll_once()

    uidvalidity = imap.uidvalidity()
    key = f"imap:{imap.username}@127.0.0.1:{imap.port}/INBOX:{uidvalidity}:{uid}"
    assert [(raw, "imap", key)] == sink.accepted
    assert [key] == sink.calls
    assert PollResult(fetched=1, processed=1) == result
    assert [] == imap.list_uids("INBOX")
    assert [raw] == imap.fetch_all("Processed")
    assert {intake.mailbox_key: Cursor(uidvalidity, uid)} == cursors.saved


def test_quarantined_message_moves_to_quarantine(imap):
    """A message the sink quarantines is moved to the quarantine mailbox, not to Processed."""
    raw = message("quarantine me")
    imap.deliver(raw)
    intake, _sink, _cursors = make_intake(imap)

    result = intake.poll_once()

    assert PollResult(fetched=1, quarantined=1) == result
    assert [raw] == imap.fetch_all("Quarantine")
    assert "Processed" not in imap.mailboxes()


def test_fetching_does_not_set_seen(imap):
    """Bodies are read with BODY.PEEK[]: the moved message is still unread for staff."""
    imap.deliver(message("status"))
    intake, _sink, _cursors = make_intake(imap)

    intake.poll_once()

    [flags] = imap.flags("Processed").values()
    assert imapclient.SEEN not in flags


def test_second_poll_hands_nothing(imap):
    """A message taken once is not handed again by the next poll."""
    raw = message("help")
    imap.deliver(raw)
    intake, sink, _cursors = make_intake(imap)

    intake.poll_once()
    second = intake.poll_once()

    assert [raw] == [accepted for accepted, _source, _key in sink.accepted]
    assert 1 == len(sink.calls)
    assert PollResult() == second


def test_redelivered_identical_bytes_are_handed_again_with_a_new_key(imap):
    """The adapter dedupes by UID only: the same bytes under a new UID get a new key."""
    raw = message("join ict")
    first_uid = imap.deliver(raw)
    intake, sink, _cursors = make_intake(imap)
    intake.poll_once()

    second_uid = imap.deliver(raw)
    intake.poll_once()

    assert [raw, raw] == [accepted for accepted, _source, _key in sink.accepted]
    assert [f":{first_uid}", f":{second_uid}"] == [key[key.rfind(":") :] for key in sink.keys]
    assert first_uid != second_uid


def test_store_unavailable_leaves_the_message_for_the_next_poll(imap):
    """When the sink cannot store, that message stays in INBOX and the cursor stops before it."""
    taken, refused = message("join food"), message("leave food")
    first_uid = imap.deliver(taken)
    second_uid = imap.deliver(refused)
    intake, sink, cursors = make_intake(imap)
    sink.unavailable_for.add(refused)

    result = intake.poll_once()

    assert PollResult(fetched=2, processed=1, store_unavailable=True) == result
    assert [second_uid] == imap.list_uids("INBOX")
    assert first_uid == cursors.saved[intake.mailbox_key].last_uid

    sink.unavailable_for.clear()
    retried = intake.poll_once()

    assert PollResult(fetched=1, processed=1) == retried
    assert [taken, refused] == [raw for raw, _source, _key in sink.accepted]
    assert [] == imap.list_uids("INBOX")


def test_first_start_leaves_old_mail_alone_and_takes_fresh_mail(imap):
    """On a first start, mail older than the backlog window is left untouched and never taken."""
    old, fresh = message("old request"), message("fresh request")
    old_uid = imap.deliver(old, msg_time=datetime.now(UTC) - timedelta(days=2))
    fresh_uid = imap.deliver(fresh)
    intake, sink, cursors = make_intake(imap)

    result = intake.poll_once()
    again = intake.poll_once()

    assert PollResult(fetched=1, processed=1, skipped_backlog=1) == result
    assert [fresh] == [raw for raw, _source, _key in sink.accepted]
    assert [old_uid] == imap.list_uids("INBOX")
    assert imapclient.SEEN not in imap.flags("INBOX")[old_uid]
    assert fresh_uid == cursors.saved[intake.mailbox_key].last_uid
    assert PollResult() == again


def test_catch_up_existing_takes_old_mail_on_first_start(imap):
    """With ``catch_up_existing`` a first start takes old mail as well."""
    imap.deliver(message("old request"), msg_time=datetime.now(UTC) - timedelta(days=2))
    intake, _sink, _cursors = make_intake(imap, catch_up_existing=True)

    assert PollResult(fetched=1, processed=1) == intake.poll_once()


def test_uidvalidity_change_reads_the_mailbox_from_the_start(imap):
    """A recreated mailbox (new UIDVALIDITY, UIDs from 1 again) is read again from the start."""
    intake, sink, cursors = make_intake(imap, mailbox="Requests")
    imap.deliver(message("join circular"), mailbox="Requests")
    intake.poll_once()
    before = cursors.saved[intake.mailbox_key]

    imap.delete_mailbox("Requests")
    raw = message("join ict")
    uid = imap.deliver(raw, mailbox="Requests")
    result = intake.poll_once()

    uidvalidity = imap.uidvalidity("Requests")
    assert before.uidvalidity != uidvalidity
    assert before.last_uid >= uid
    assert PollResult(fetched=1, processed=1) == result
    assert f"{intake.mailbox_key}:{uidvalidity}:{uid}" == sink.keys[-1]
    assert Cursor(uidvalidity, uid) == cursors.saved[intake.mailbox_key]


def test_without_move_copies_and_expunges_with_uidplus():
    """A server without MOVE but with UIDPLUS gets COPY, a Deleted flag and UID EXPUNGE instead."""
    with DovecotServer(imap_capability="IMAP4rev1 IDLE UIDPLUS") as server:
        raw = message("join ict")
        server.deliver(raw)
        intake, _sink, _cursors = make_intake(server)

        assert PollResult(fetched=1, processed=1) == intake.poll_once()
        assert [] == server.list_uids("INBOX")
        assert [raw] == server.fetch_all("Processed")


def test_without_move_or_uidplus_flags_the_message_and_never_takes_it_again():
    """Without MOVE and UIDPLUS a keyword marks taken mail, which even a new cursor skips."""
    with DovecotServer(imap_capability="IMAP4rev1 IDLE") as server:
        uid = server.deliver(message("join ict"))
        intake, _sink, _cursors = make_intake(server)
        intake.poll_once()
        fresh_start, sink, _cursors = make_intake(server, catch_up_existing=True)

        assert PollResult() == fresh_start.poll_once()
        assert [] == sink.accepted
        assert PROCESSED_KEYWORD.encode() in server.flags("INBOX")[uid]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_connections_verify_the_server(security):
    """STARTTLS and implicit TLS work with a context that trusts the server's certificate."""
    with DovecotServer(tls=True) as server:
        assert server.ca_file is not None
        server.deliver(message("join circular"))
        port = server.tls_port if security == "ssl" else server.port
        settings = settings_for(server, security=security, port=port)
        context = ssl.create_default_context(cafile=str(server.ca_file))
        intake = ImapIntake(settings, server.password, RecordingSink(), DictCursors(), ssl_context=context)

        assert PollResult(fetched=1, processed=1) == intake.poll_once()


def test_unsupported_auth_and_missing_password_are_config_errors(imap):
    """``auth = "xoauth2"`` and a missing password stop the adapter with a ConfigError."""
    with pytest.raises(ConfigError, match="xoauth2"):
        ImapIntake(settings_for(imap, auth="xoauth2"), "token", RecordingSink(), DictCursors())
    with pytest.raises(ConfigError, match="password"):
        ImapIntake(settings_for(imap), None, RecordingSink(), DictCursors())


def start_run(intake: ImapIntake) -> tuple[threading.Thread, threading.Event]:
    """Run ``intake.run`` in a daemon thread and return it with its stop event."""
    stop = threading.Event()
    thread = threading.Thread(target=intake.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def stop_run(thread: threading.Thread, stop: threading.Event) -> float:
    """Set ``stop``, wait for the thread and return how long it took."""
    started = time.monotonic()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return time.monotonic() - started


def test_run_picks_up_mail_delivered_while_idling_and_stops_promptly(imap, caplog):
    """``run`` catches up, IDLEs, takes mail announced in IDLE and honours ``stop`` quickly."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    first, second = message("join circular"), message("join food")
    imap.deliver(first)
    intake, sink, _cursors = make_intake(imap, poll_seconds=3600)
    thread, stop = start_run(intake)
    try:
        assert first == sink.arrivals.get(timeout=5)
        wait_until(lambda: any("idling" in r.getMessage() for r in caplog.records))

        imap.deliver(second)

        assert second == sink.arrivals.get(timeout=5)
    finally:
        elapsed = stop_run(thread, stop)
    assert elapsed < 4
    assert [] == imap.list_uids("INBOX")


def test_run_reconnects_after_the_server_restarts_and_catches_up(caplog):
    """A dropped connection is logged, re-established with backoff, and new mail is then taken."""
    with DovecotServer() as server:
        intake, sink, _cursors = make_intake(server, poll_seconds=3600)
        thread, stop = start_run(intake)
        try:
            server.deliver(message("join circular"))
            sink.arrivals.get(timeout=5)
            wait_until(lambda: not server.list_uids("INBOX"))

            server.restart()
            raw = message("join ict")
            server.deliver(raw)

            assert raw == sink.arrivals.get(timeout=10)
        finally:
            stop_run(thread, stop)
    assert any("failed" in r.getMessage() for r in caplog.records if r.name == LOGGER)
