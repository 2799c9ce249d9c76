# Copyright 2026 The mailflow authors
# SPDX-License-Identifier: MIT
"""Outbound transports against a real aiosmtpd server on 127.0.0.1 and a real Maildir."""

# The house style writes asserts as ``expected == actual``, which ruff's SIM300 calls a Yoda
# condition; the style wins in tests.

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from mailflow.config import SmtpSettings
from mailflow.errors import (
    ConfigError,
    DeliveryUncertainError,
    PermanentDeliveryError,
    SenderRefusedError,
    TransientDeliveryError,
)
from mailflow.outbound import (
    Envelope,
    MaildirTransport,
    RecipientsRefusedError,
    SmtpTransport,
    classify_reply,
    make_transport,
)
from tests.servers.sink import SmtpSink, free_port

if TYPE_CHECKING:
    from pathlib import Path

SENDER = "interest-groups@network.example"
ALICE = "alice@city.example"
BOB = "bob@region.example"
Connect = Callable[..., SmtpTransport]
CREDENTIALS = ("mailflow", "right")
RAW = (
    "From: Interest Groups <interest-groups@network.example>\r\n"
    f"To: {ALICE}\r\n"
    "Subject: =?utf-8?q?Bienvenue_=C3=A0_Gent?=\r\n"
    "Message-ID: <welcome-1@network.example>\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Welcome to the group. Grüße aus Gent.\r\n"
    ".a line that starts with a dot\r\n"
    ".\r\n"
    "The end.\r\n"
).encode()


def envelope(*recipients: str, message_id: str = "welcome-1@network.example") -> Envelope:
    """Build an envelope of RAW to the given recipients (ALICE by default)."""
    return Envelope(SENDER, recipients or (ALICE,), message_id, RAW)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """Run a real SMTP sink for one test."""
    with SmtpSink() as running:
        yield running


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Build SmtpTransports to a sink and close them after the test."""
    opened: list[SmtpTransport] = []

    def build(target: SmtpSink, **overrides: Any) -> SmtpTransport:
        options: dict[str, Any] = {
            "username": None,
            "password": None,
            "timeout": 5.0,
            "local_hostname": "mailflow.test",
        }
        options.update(overrides)
        transport = SmtpTransport(target.host, target.port, "none", **options)
        opened.append(transport)
        return transport

    yield build
    for transport in opened:
        transport.close()


def test_delivered_message_arrives_byte_identical(sink: SmtpSink, connect: Connect) -> None:
    """The relay receives the raw bytes unchanged, with the envelope's sender and recipient."""
    connect(sink).deliver(envelope())

    [received] = sink.wait_for(1)
    assert SENDER == received.mail_from
    assert (ALICE,) == received.rcpt_tos
    assert RAW == received.data


def test_bare_line_feeds_are_sent_as_crlf(sink: SmtpSink, connect: Connect) -> None:
    """A message with bare LF line ends goes on the wire with CRLF, as SMTP requires."""
    connect(sink).deliver(Envelope(SENDER, (ALICE,), "lf@x", b"Subject: lf\n\nbody\n"))

    assert b"Subject: lf\r\n\r\nbody\r\n" == sink.wait_for(1)[0].data


def test_one_connection_serves_several_deliveries(sink: SmtpSink, connect: Connect) -> None:
    """Three deliveries through one transport use a single SMTP connection."""
    transport = connect(sink)
    for number in range(3):
        transport.deliver(envelope(message_id=f"m{number}@network.example"))

    assert 3 == len(sink.wait_for(3))
    assert 1 == sink.connection_count


def test_connection_closed_by_the_relay_is_reopened(connect: Connect) -> None:
    """When the relay closes an idle connection, the next delivery reconnects and succeeds."""
    with SmtpSink(idle_timeout=0.2) as sink:
        transport = connect(sink)
        transport.deliver(envelope())
        time.sleep(0.5)
        transport.deliver(envelope(message_id="second@network.example"))

        assert 2 == len(sink.wait_for(2))
        assert 2 == sink.connection_count


def test_4xx_at_rcpt_is_transient(sink: SmtpSink, connect: Connect) -> None:
    """A 4xx to RCPT TO raises TransientDeliveryError naming the reply; nothing is sent."""
    sink.refuse_rcpt[ALICE] = "450 4.2.1 mailbox busy, try later"

    with pytest.raises(TransientDeliveryError, match=r"450 4.2.1 mailbox busy") as caught:
        connect(sink).deliver(envelope())

    assert not isinstance(caught.value, DeliveryUncertainError)
    assert [] == sink.messages()


def test_550_at_rcpt_is_permanent_and_names_the_recipient(sink: SmtpSink, connect: Connect) -> None:
    """A 5xx to RCPT TO raises RecipientsRefusedError with the code and text per address."""
    sink.refuse_rcpt[ALICE] = "550 5.1.1 no such user"

    with pytest.raises(RecipientsRefusedError, match=r"550 5.1.1 no such user") as caught:
        connect(sink).deliver(envelope())

    assert {ALICE: (550, "5.1.1 no such user")} == caught.value.refused
    assert () == caught.value.delivered
    assert [] == sink.messages()


def test_partly_refused_recipients_get_delivered_to_the_others(sink: SmtpSink, connect: Connect) -> None:
    """One of two recipients refused with 5xx: the other gets it, the error names the refused."""
    sink.refuse_rcpt[BOB] = "550 5.1.1 no such user"

    with pytest.raises(RecipientsRefusedError) as caught:
        connect(sink).deliver(envelope(ALICE, BOB))

    assert {BOB: (550, "5.1.1 no such user")} == caught.value.refused
    assert (ALICE,) == caught.value.delivered
    assert (ALICE,) == sink.wait_for(1)[0].rcpt_tos


def test_transport_recovers_after_a_refused_transaction(sink: SmtpSink, connect: Connect) -> None:
    """After a refused recipient, the same connection delivers the next message."""
    transport = connect(sink)
    sink.refuse_rcpt[BOB] = "550 5.1.1 no such user"
    with pytest.raises(PermanentDeliveryError):
        transport.deliver(envelope(BOB))

    transport.deliver(envelope())

    assert (ALICE,) == sink.wait_for(1)[0].rcpt_tos
    assert 1 == sink.connection_count


def test_451_after_data_is_transient(sink: SmtpSink, connect: Connect) -> None:
    """A 451 to the end of DATA raises TransientDeliveryError; a retry then succeeds."""
    transport = connect(sink)
    sink.fail_data_once = "451 4.3.0 local error in processing"

    with pytest.raises(TransientDeliveryError, match=r"451 4.3.0") as caught:
        transport.deliver(envelope())
    transport.deliver(envelope())

    assert not isinstance(caught.value, DeliveryUncertainError)
    assert 1 == len(sink.wait_for(1))


def test_554_after_data_is_permanent_for_the_message(sink: SmtpSink, connect: Connect) -> None:
    """A 554 to the end of DATA raises PermanentDeliveryError, not a recipient refusal."""
    sink.fail_data_once = "554 5.6.0 message content rejected"

    with pytest.raises(PermanentDeliveryError, match=r"554 5.6.0 message content rejected") as caught:
        connect(sink).deliver(envelope())

    assert PermanentDeliveryError is type(caught.value)


def test_sending_quota_after_data_refuses_the_sender(sink: SmtpSink, connect: Connect) -> None:
    """A relay's sending-quota refusal after DATA raises SenderRefusedError, so the queue pauses."""
    sink.fail_data_once = "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"

    with pytest.raises(SenderRefusedError, match=r"SubmissionQuotaExceeded"):
        connect(sink).deliver(envelope())


def test_wrong_password_refuses_the_sender(connect: Connect) -> None:
    """A relay that rejects the credentials raises SenderRefusedError with its reply."""
    with SmtpSink(require_auth=CREDENTIALS) as sink:
        transport = connect(sink, username=CREDENTIALS[0], password=CREDENTIALS[1] + "-not")

        with pytest.raises(SenderRefusedError, match=r"535"):
            transport.deliver(envelope())

        assert [] == sink.messages()


def test_missing_login_refuses_the_sender(connect: Connect) -> None:
    """A relay that requires AUTH answers MAIL FROM with 530: SenderRefusedError."""
    with (
        SmtpSink(require_auth=CREDENTIALS) as sink,
        pytest.raises(SenderRefusedError, match=r"530 5.7.0"),
    ):
        connect(sink).deliver(envelope())


def test_right_password_delivers(connect: Connect) -> None:
    """With the right credentials the message arrives."""
    with SmtpSink(require_auth=CREDENTIALS) as sink:
        connect(sink, username=CREDENTIALS[0], password=CREDENTIALS[1]).deliver(envelope())

        assert RAW == sink.wait_for(1)[0].data


def test_starttls_required_but_not_offered_refuses_the_sender(sink: SmtpSink, connect: Connect) -> None:
    """security=starttls against a relay without STARTTLS raises SenderRefusedError."""
    transport = SmtpTransport(sink.host, sink.port, "starttls", username=None, password=None, timeout=5.0)

    with pytest.raises(SenderRefusedError, match=r"relay offers no STARTTLS"):
        transport.deliver(envelope())
    transport.close()


def test_tls_handshake_failure_refuses_the_sender(sink: SmtpSink) -> None:
    """security=ssl against a plain-text relay raises SenderRefusedError naming the TLS failure."""
    transport = SmtpTransport(sink.host, sink.port, "ssl", username=None, password=None, timeout=5.0)

    with pytest.raises(SenderRefusedError, match=r"TLS failed"):
        transport.deliver(envelope())
    transport.close()


def test_nothing_listening_is_transient() -> None:
    """A refused connection raises TransientDeliveryError naming the address."""
    port = free_port()
    transport = SmtpTransport("127.0.0.1", port, "none", username=None, password=None, timeout=2.0)

    with pytest.raises(TransientDeliveryError, match=rf"cannot connect to 127.0.0.1:{port}"):
        transport.deliver(envelope())


def test_connection_dropped_after_data_is_uncertain(sink: SmtpSink, connect: Connect) -> None:
    """The relay closes the connection after reading the data: DeliveryUncertainError."""
    transport = connect(sink)
    sink.drop_after_data = True

    with pytest.raises(DeliveryUncertainError, match=r"may have been delivered"):
        transport.deliver(envelope())

    assert 1 == len(sink.wait_for(1))


def test_reply_timeout_after_data_is_uncertain(sink: SmtpSink, connect: Connect) -> None:
    """No reply to the data within the timeout raises DeliveryUncertainError."""
    transport = connect(sink, timeout=0.3)
    sink.delay_data_reply = 2.0

    with pytest.raises(DeliveryUncertainError):
        transport.deliver(envelope())


def test_transport_reconnects_after_an_uncertain_delivery(sink: SmtpSink, connect: Connect) -> None:
    """After the connection was lost, the next delivery opens a new one and succeeds."""
    transport = connect(sink)
    sink.drop_after_data = True
    with pytest.raises(DeliveryUncertainError):
        transport.deliver(envelope())
    sink.drop_after_data = False

    transport.deliver(envelope(message_id="retry@network.example"))

    assert 2 == len(sink.wait_for(2))
    assert 2 == sink.connection_count


def test_username_without_password_is_a_config_error() -> None:
    """A username with no password is refused when the transport is built."""
    with pytest.raises(ConfigError, match=r"password"):
        SmtpTransport("127.0.0.1", 25, "none", username="u", password=None, timeout=1.0)


def test_envelope_refuses_line_breaks_in_addresses() -> None:
    """An address carrying CR/LF could inject SMTP commands, so the envelope refuses it."""
    with pytest.raises(ValueError, match=r"line break"):
        Envelope(SENDER, ("a@b.example\r\nRCPT TO:<c@d.example>",), "x@y", RAW)


@pytest.mark.parametrize(
    ("stage", "code", "text", "expected"),
    [
        ("RCPT TO", 450, "4.2.1 busy", TransientDeliveryError),
        ("RCPT TO", 550, "5.1.1 no such user", PermanentDeliveryError),
        ("RCPT TO", 552, "5.2.2 mailbox full, over quota", PermanentDeliveryError),
        ("RCPT TO", 554, "5.7.1 <a@b>: Relay access denied", SenderRefusedError),
        ("RCPT TO", 530, "5.7.0 Authentication required", SenderRefusedError),
        ("MAIL FROM", 553, "5.1.8 sender domain unknown", SenderRefusedError),
        ("AUTH", 535, "5.7.8 credentials invalid", SenderRefusedError),
        ("end of DATA", 550, "5.4.5 Daily user sending quota exceeded", SenderRefusedError),
        ("end of DATA", 552, "5.3.4 message too big", PermanentDeliveryError),
        ("end of DATA", -1, "unreadable", TransientDeliveryError),
    ],
)
def test_reply_classification(stage: str, code: int, text: str, expected: type[Exception]) -> None:
    """Each failed reply maps to the error the outbox acts on."""
    assert expected is type(classify_reply(stage, code, text, "relay:25"))


def test_maildir_writes_one_file_with_the_raw_bytes(tmp_path: Path) -> None:
    """A Maildir delivery creates the folders and one file in new/ holding raw unchanged."""
    maildir = tmp_path / "sent"
    transport = MaildirTransport(maildir)

    transport.deliver(envelope())
    transport.deliver(envelope(message_id="other@network.example"))

    files = sorted((maildir / "new").iterdir())
    assert 2 == len(files)
    assert [RAW, RAW] == [path.read_bytes() for path in files]
    assert [] == list((maildir / "tmp").iterdir())
    assert (maildir / "cur").is_dir()


def test_maildir_same_envelope_twice_leaves_one_file(tmp_path: Path) -> None:
    """Delivering the same envelope again (a retry after a crash) leaves exactly one file."""
    transport = MaildirTransport(tmp_path)

    transport.deliver(envelope())
    transport.deliver(envelope())

    assert [MaildirTransport.file_name(envelope())] == [p.name for p in (tmp_path / "new").iterdir()]


def test_maildir_message_read_by_a_client_is_not_written_again(tmp_path: Path) -> None:
    """A file a mail client moved to cur/ with flags still counts as delivered."""
    transport = MaildirTransport(tmp_path)
    transport.deliver(envelope())
    name = MaildirTransport.file_name(envelope())
    (tmp_path / "new" / name).rename(tmp_path / "cur" / f"{name}:2,S")

    transport.deliver(envelope())

    assert [] == list((tmp_path / "new").iterdir())


def test_make_transport_follows_the_settings(tmp_path: Path) -> None:
    """make_transport builds a Maildir or an SMTP transport as [smtp] transport says."""
    maildir = make_transport(SmtpSettings(transport="maildir"), tmp_path, None)
    smtp = make_transport(SmtpSettings(transport="smtp", host="relay.example"), tmp_path, None)

    assert isinstance(maildir, MaildirTransport)
    assert isinstance(smtp, SmtpTransport)
