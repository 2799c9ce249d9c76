"""`mailflow serve` as a newcomer runs it: a request over SMTP, the approval reply, the welcome, a clean stop.

This is the README's first story, run as a real subprocess on SQLite and PostgreSQL.
"""

from __future__ import annotations

import mailbox
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow.cli import main
from mailflow.testing import APPROVER, DEMO_REGISTRY, SERVICE, outlook_reply, request_mail, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.sink import SmtpSink, free_port


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def _wait_mail(folder: Path, to: str, kind: str, timeout: float = 15.0) -> EmailMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / "new").is_dir():
            box = mailbox.Maildir(folder, create=False)
            for key in box.iterkeys():
                message = message_from_bytes(box.get_bytes(key), _class=EmailMessage, policy=policy.default)
                assert isinstance(message, EmailMessage)
                if message["X-Mailflow"] == kind and to in str(message["To"]):
                    return message
        time.sleep(0.05)
    raise TimeoutError(f"no {kind} mail to {to} in {folder}")


def _send(port: int, sender: str, raw: bytes, recipient: str = SERVICE) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [recipient], raw)


def _start_serve(config: Path) -> subprocess.Popen[bytes]:
    """Initialise the service of ``config`` with the demo registry and start `mailflow serve` on it."""
    registry = config.parent / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    assert 0 == main(["--config", str(config), "init"])
    assert 0 == main(["--config", str(config), "org", "import", str(registry)])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "mailflow", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )


def test_serve_runs_the_whole_story_and_stops_cleanly(tmp_path: Path, database_url: str):
    """Join over SMTP; acknowledgement and approval request in the Maildir; APPROVE; welcome; SIGTERM."""
    port = free_port()
    config = write_config(tmp_path, database_url, intake_port=port)
    server = _start_serve(config)
    try:
        _wait_port(port, time.monotonic() + 20)
        sent = tmp_path / "sent"
        _send(port, "anna@ghent.example", request_mail("anna@ghent.example", "JOIN circular", "Hello"))
        _wait_mail(sent, "anna@ghent.example", "acknowledge")
        approval = _wait_mail(sent, APPROVER, "approval_request")
        reply_to = approval["Reply-To"].addresses[0].addr_spec
        _send(port, APPROVER, outlook_reply(approval.as_bytes(), APPROVER, "APPROVE"), recipient=reply_to)
        welcome = _wait_mail(sent, "anna@ghent.example", "welcome")
        assert "Circular Public Procurement" in welcome["Subject"]
    except TimeoutError:
        server.send_signal(signal.SIGTERM)
        pytest.fail(
            f"{sys.exc_info()[1]}; serve said:\n{server.communicate(timeout=20)[0].decode(errors='replace')}"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure being tested
            server.kill()
            output, _ = server.communicate()
            pytest.fail(f"serve did not stop on SIGTERM:\n{output.decode(errors='replace')}")
    assert 0 == server.returncode, output.decode(errors="replace")
    assert b"mailflow stopped" in output


def test_serve_reads_imap_and_sends_through_smtp(
    tmp_path: Path, database_url: str, dovecot: DovecotServer, sink: SmtpSink
):
    """The production shape: serve watches a real IMAP mailbox (IDLE) and replies through a real relay."""
    dovecot.reset()
    (tmp_path / "pw").write_text(dovecot.password, encoding="utf-8")
    imap = (
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\nsecurity = "none"\n'
        f'username = "{dovecot.username}"\npassword_file = "pw"\nidle_renew_seconds = 60\n'
    )
    smtp = f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"'
    config = write_config(tmp_path, database_url, extra=imap, smtp=smtp)
    server = _start_serve(config)
    try:
        dovecot.deliver(request_mail("anna@ghent.example", "JOIN circular", "Hello"))
        received = sink.wait_for(3, timeout=30)
        kinds = sorted(_parse(item.data)["X-Mailflow"] for item in received)
        assert ["acknowledge", "approval_request", "approval_request"] == kinds
        assert 1 == len(dovecot.list_uids("Processed"))
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert 0 == server.returncode, output.decode(errors="replace")


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message
