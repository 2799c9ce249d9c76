"""The SMTP and LMTP listener with real clients: 550 for strangers, commit before 250, 451 when down."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailflow.app.process import Pipeline, process_pending
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.config import SmtpIntakeSettings, load_settings
from mailflow.intake.smtp import make_listener
from mailflow.store.schema import InboundMessage, Request
from mailflow.testing import SERVICE, request_mail, write_config
from tests.servers.sink import free_port


def _listener(runtime: Runtime, *, lmtp: bool = False) -> tuple[object, int]:
    port = free_port()
    settings = SmtpIntakeSettings(host="127.0.0.1", port=port, lmtp=lmtp)
    controller = make_listener(settings, Pipeline(runtime, process_now=False), SERVICE)
    controller.start()
    return controller, port


@pytest.fixture
def listener(runtime: Runtime) -> Iterator[int]:
    """A started SMTP listener over the test runtime; yields its port."""
    controller, port = _listener(runtime)
    try:
        yield port
    finally:
        controller.stop()  # type: ignore[attr-defined]


def _stored(runtime: Runtime) -> list[InboundMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_unknown_recipient_is_refused_at_rcpt(listener: int):
    """RCPT to an address that is not ours gets 550, so the sending MTA bounces at once."""
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo()
        client.mail("anna@ghent.example")
        code, _ = client.rcpt("someone-else@network.example")
        assert 550 == code
        code, _ = client.rcpt("interest-groups+abc@network.example")
        assert 250 == code


def test_message_is_committed_before_250(listener: int, runtime: Runtime):
    """When the client has its 250, the raw bytes are in the database, byte for byte."""
    raw = request_mail("anna@ghent.example", "JOIN circular", "Hello")
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.sendmail("anna@ghent.example", [SERVICE], raw)
    [row] = _stored(runtime)
    assert raw.replace(b"\r\n", b"\n") == row.raw.replace(b"\r\n", b"\n")
    assert 1 == process_pending(runtime)
    with runtime.sessions() as session:
        assert 1 == len(session.scalars(select(Request)).all())


def test_same_message_delivered_twice_is_stored_once(listener: int, runtime: Runtime):
    """An MTA that retries after a lost 250 delivers the same bytes again: one message, one request."""
    raw = request_mail("anna@ghent.example", "JOIN circular", "Hello")
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
            client.sendmail("anna@ghent.example", [SERVICE], raw)
    assert 1 == len(_stored(runtime))


def test_store_down_answers_451(tmp_path: Path):
    """When the database cannot take the message, the answer is 451 and the MTA keeps it."""
    database = tmp_path / "db"
    database.mkdir()
    config = write_config(tmp_path, f"sqlite:///{database / 'mailflow.db'}")
    runtime = build_runtime(load_settings(config))
    # No schema was ever created: every write fails, as when the database is gone.
    controller, port = _listener(runtime)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail(
                    "anna@ghent.example", [SERVICE], request_mail("anna@ghent.example", "JOIN x", "Hi")
                )
            assert 451 == refused.value.smtp_code
    finally:
        controller.stop()  # type: ignore[attr-defined]
        runtime.engine.dispose()


def _dialogue(port: int, lines: list[bytes]) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        replies = [stream.readline()]
        for line in lines:
            sock.sendall(line)
            if line.startswith(b"LHLO"):
                reply = stream.readline()
                while reply[3:4] == b"-":
                    reply = stream.readline()
                replies.append(reply)
            elif line.endswith(b".\r\n") and len(line) > 3:
                replies.extend([stream.readline(), stream.readline()])
            else:
                replies.append(stream.readline())
        return replies


def test_lmtp_gives_one_status_per_recipient(runtime: Runtime):
    """In LMTP mode every accepted recipient gets its own status line after DATA (RFC 2033)."""
    controller, port = _listener(runtime, lmtp=True)
    try:
        body = request_mail("anna@ghent.example", "JOIN circular", "Hello").replace(b"\n.", b"\n..")
        replies = _dialogue(
            port,
            [
                b"LHLO client.example\r\n",
                b"MAIL FROM:<anna@ghent.example>\r\n",
                f"RCPT TO:<{SERVICE}>\r\n".encode(),
                b"RCPT TO:<nobody@network.example>\r\n",
                b"RCPT TO:<interest-groups+abc@network.example>\r\n",
                b"DATA\r\n",
                body + b"\r\n.\r\n",
            ],
        )
    finally:
        controller.stop()  # type: ignore[attr-defined]
    codes = [reply[:3] for reply in replies]
    assert [b"220", b"250", b"250", b"250", b"550", b"250", b"354", b"250", b"250"] == codes
    assert 1 == len(_stored(runtime))
