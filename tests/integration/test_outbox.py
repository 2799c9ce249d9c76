"""The outbox against a real relay: retries with backoff, permanent failures, uncertain deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailflow.app.outbox import send_once
from mailflow.app.process import Pipeline
from mailflow.app.registry import import_file
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.app.setup import initialise
from mailflow.config import load_settings
from mailflow.outbound.transport import make_transport
from mailflow.store.schema import OutboxMessage, Suppression
from mailflow.testing import DEMO_REGISTRY, request_mail, write_config
from tests.conftest import Clock
from tests.servers.sink import SmtpSink


@pytest.fixture
def relayed(tmp_path: Path, database_url: str, sink: SmtpSink, clock: Clock) -> Iterator[Runtime]:
    """A runtime that sends through the test relay, with one join request's three mails queued."""
    smtp = (
        f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\ntimeout_seconds = 2'
    )
    runtime = build_runtime(load_settings(write_config(tmp_path, database_url, smtp=smtp)))
    runtime.clock = clock
    initialise(runtime)
    (tmp_path / "r.csv").write_text(DEMO_REGISTRY, encoding="utf-8")
    import_file(runtime, tmp_path / "r.csv")
    Pipeline(runtime).accept(request_mail("anna@ghent.example", "JOIN circular", "Hello"), "file", "")
    yield runtime
    runtime.engine.dispose()


def _rows(runtime: Runtime) -> dict[str, OutboxMessage]:
    with runtime.sessions() as session:
        return {row.to_addr: row for row in session.scalars(select(OutboxMessage))}


def _send(runtime: Runtime) -> None:
    transport = make_transport(runtime.settings.smtp, runtime.settings.maildir, None)
    try:
        send_once(runtime, transport)
    finally:
        transport.close()


def test_temporary_failure_is_retried_later_with_the_same_message_id(
    relayed: Runtime, sink: SmtpSink, clock: Clock
):
    """A 4xx at RCPT leaves the mail pending with a later attempt time; once due it goes, same Message-ID."""
    sink.refuse_rcpt["anna@ghent.example"] = "451 4.7.1 greylisted, try later"
    _send(relayed)
    row = _rows(relayed)["anna@ghent.example"]
    assert ("pending", 1) == (row.state, row.attempts)
    assert row.next_attempt_at > clock.now
    del sink.refuse_rcpt["anna@ghent.example"]
    _send(relayed)
    assert "pending" == _rows(relayed)["anna@ghent.example"].state
    clock.advance(hours=1)
    _send(relayed)
    assert "sent" == _rows(relayed)["anna@ghent.example"].state
    delivered = [m for m in sink.messages() if "anna@ghent.example" in m.rcpt_tos]
    assert 1 == len(delivered)
    assert f"<{row.message_id}>".encode() in delivered[0].data


def test_recipient_refused_for_good_is_failed_and_suppressed(relayed: Runtime, sink: SmtpSink):
    """A 5xx for the recipient fails the mail, suppresses the address, and the other mails still go."""
    sink.refuse_rcpt["anna@ghent.example"] = "550 5.1.1 no such user"
    _send(relayed)
    rows = _rows(relayed)
    assert "failed" == rows["anna@ghent.example"].state
    assert {"sent"} == {row.state for to, row in rows.items() if to != "anna@ghent.example"}
    with relayed.sessions() as session:
        assert session.get(Suppression, "anna@ghent.example") is not None


def test_lost_reply_after_data_is_uncertain_and_retried(relayed: Runtime, sink: SmtpSink, clock: Clock):
    """When the relay drops the line after the data, the mail is 'uncertain' and later resent unchanged."""
    sink.drop_after_data = True
    _send(relayed)
    assert {"uncertain"} == {row.state for row in _rows(relayed).values()}
    sink.drop_after_data = False
    clock.advance(hours=1)
    _send(relayed)
    assert {"sent"} == {row.state for row in _rows(relayed).values()}
