"""Talk to a running `make run` service as a newcomer would, with nothing but Python's smtplib.

    python demo/send.py request anna@ghent.example "JOIN circular" "Could Ghent take part?"
    python demo/send.py approvals                   # list approval mails waiting in var/sent/new
    python demo/send.py reply FILE "APPROVE"        # answer one of them from the approver's address

The reply is built like a phone client's: your line on top, the approval mail quoted below.
"""

from __future__ import annotations

import smtplib
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from mailflow.testing import SERVICE, plain_reply, request_mail

HOST, PORT = "127.0.0.1", 2525
SENT = Path(__file__).resolve().parent.parent / "var" / "sent" / "new"


def _send(sender: str, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP(HOST, PORT, timeout=10) as client:
        client.sendmail(sender, [recipient], raw)
    print(f"sent to {recipient}; answers appear in {SENT}")


def _read(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def main(argv: list[str]) -> int:
    if argv[:1] == ["request"] and len(argv) >= 3:
        sender, subject, body = argv[1], argv[2], argv[3] if len(argv) > 3 else ""
        _send(sender, SERVICE, request_mail(sender, subject, body))
        return 0
    if argv[:1] == ["approvals"]:
        for path in sorted(SENT.glob("*"), key=lambda p: p.stat().st_mtime):
            message = _read(path)
            if message["X-Mailflow"] == "approval_request":
                print(f"{path}\n    to {message['To']}: {message['Subject']}")
        return 0
    if argv[:1] == ["reply"] and len(argv) == 3:
        approval = _read(Path(argv[1]))
        approver = approval["To"].addresses[0].addr_spec
        reply_to = approval["Reply-To"].addresses[0].addr_spec
        _send(approver, reply_to, plain_reply(approval.as_bytes(), approver, argv[2]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
