"""The request workflow through a real IMAP server and a real SMTP relay.

A join request is delivered into Dovecot; `mailflow poll --once` takes it; `mailflow send --once` hands the
acknowledgement and the approval request to an aiosmtpd relay; the approver's reply (shaped like
Outlook's HTML
reply, or like Gmail's) is delivered into Dovecot in turn; the welcome mail reaches the relay. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow.cli import main
from mailflow.testing import APPROVER, DEMO_REGISTRY, gmail_reply, outlook_reply, request_mail, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.sink import SmtpSink


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


class Story:
    """Drives `mailflow` commands and reads what reached the relay."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str], sink: SmtpSink) -> None:
        self.config, self.capsys, self.sink = config, capsys, sink

    def ok(self, *args: str) -> str:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        assert 0 == code, err
        return out

    def round(self) -> None:
        self.ok("poll", "--once")
        self.ok("send", "--once")

    def received(self, to: str, kind: str) -> list[EmailMessage]:
        found = []
        for item in self.sink.messages():
            message = _parse(item.data)
            if to in item.rcpt_tos and message["X-Mailflow"] == kind:
                found.append(message)
        return found


@pytest.fixture
def story(
    tmp_path: Path,
    database_url: str,
    dovecot: DovecotServer,
    sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> Story:
    """A service reading the test Dovecot and sending through the test relay."""
    dovecot.reset()
    (tmp_path / "imap-password").write_text(dovecot.password, encoding="utf-8")
    imap = f"""
[imap]
host = "127.0.0.1"
port = {dovecot.port}
security = "none"
username = "{dovecot.username}"
password_file = "imap-password"
processed_mailbox = "Processed"
quarantine_mailbox = "Quarantine"
"""
    smtp = f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"'
    config = write_config(tmp_path, database_url, extra=imap, smtp=smtp)
    registry = tmp_path / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    result = Story(config, capsys, sink)
    result.ok("init")
    result.ok("org", "import", str(registry))
    return result


Reply = Callable[[bytes, str, str], bytes]


@pytest.mark.parametrize("reply", [outlook_reply, gmail_reply], ids=["outlook-html", "gmail"])
def test_join_to_welcome_through_dovecot(story: Story, dovecot: DovecotServer, reply: Reply):
    """From a join request in the mailbox to the welcome mail at the relay, approved by an email reply."""
    dovecot.deliver(
        request_mail("anna@ghent.example", "Circular procurement", "Could Ghent join the circular group?")
    )
    story.round()
    assert 1 == len(story.received("anna@ghent.example", "acknowledge"))
    [approval] = story.received(APPROVER, "approval_request")
    assert [] == dovecot.list_uids("INBOX")
    assert 1 == len(dovecot.list_uids("Processed"))

    dovecot.deliver(reply(approval.as_bytes(), APPROVER, "APPROVE"))
    story.round()

    [welcome] = story.received("anna@ghent.example", "welcome")
    assert "Welcome to Circular Public Procurement" == welcome["Subject"]
    [row] = json.loads(story.ok("requests", "--json"))
    assert ("approved", APPROVER) == (row["state"], row["decided_by"])
    # Nothing is answered twice: another round finds nothing new and sends nothing.
    before = len(story.sink.messages())
    story.round()
    assert before == len(story.sink.messages())


def test_unprocessable_mail_goes_to_quarantine_mailbox(story: Story, dovecot: DovecotServer):
    """A message that cannot be processed is quarantined, moved aside, and does not block the next one."""
    dovecot.deliver(b"this is not an email at all")
    dovecot.deliver(request_mail("anna@ghent.example", "HELP", ""))
    story.round()
    assert 1 == len(dovecot.list_uids("Quarantine"))
    assert 1 == len(story.received("anna@ghent.example", "help"))
    quarantined = json.loads(story.ok("quarantine", "--json"))
    assert 1 == len(quarantined)
