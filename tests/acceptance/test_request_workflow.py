"""The request workflow end to end through the SPEC §6 command line: ingest, decide by reply, mail out.

Every test runs on SQLite and on PostgreSQL. Mail leaves through the Maildir transport; replies are built from
the approval mail actually written there, shaped like Outlook, Gmail and a phone.
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow.cli import main
from mailflow.testing import (
    APPROVER,
    DEMO_REGISTRY,
    gmail_reply,
    outlook_reply,
    plain_reply,
    request_mail,
)


class Service:
    """Drives ``mailflow`` commands against one config, and reads what was sent."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys
        self.folder = config.parent
        self.count = 0

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert 0 == code, err
        return out

    def json(self, *args: str) -> list[dict[str, object]]:
        return json.loads(self.ok(*args, "--json"))

    def deliver(self, raw: bytes) -> None:
        self.count += 1
        path = self.folder / f"in-{self.count}.eml"
        path.write_bytes(raw)
        self.ok("ingest", str(path))
        self.ok("send", "--once")

    def sent(self) -> list[EmailMessage]:
        box = mailbox.Maildir(self.folder / "sent", create=False)
        messages = []
        for key in sorted(box.keys()):
            parsed = message_from_bytes(box.get_bytes(key), _class=EmailMessage, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            messages.append(parsed)
        return messages

    def sent_to(self, address: str, kind: str) -> list[EmailMessage]:
        return [
            m for m in self.sent() if m["To"].addresses[0].addr_spec == address and m["X-Mailflow"] == kind
        ]

    def raw_to(self, address: str, kind: str) -> bytes:
        found = self.sent_to(address, kind)
        assert 1 == len(found), [(m["To"], m["X-Mailflow"]) for m in self.sent()]
        return found[0].as_bytes()


@pytest.fixture
def service(config_path: Path, capsys: pytest.CaptureFixture[str]) -> Service:
    """An initialised service with the demo registry."""
    svc = Service(config_path, capsys)
    svc.ok("init")
    registry = config_path.parent / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    svc.ok("org", "import", str(registry))
    return svc


ANNA = "anna@ghent.example"


def _join(svc: Service, sender: str = ANNA, subject: str = "JOIN circular", body: str = "Hello") -> None:
    svc.deliver(request_mail(sender, subject, body, name="Anna Peeters"))


Reply = Callable[[bytes, str, str], bytes]


@pytest.mark.parametrize(
    "reply", [outlook_reply, gmail_reply, plain_reply], ids=["outlook", "gmail", "phone"]
)
def test_join_approved_by_reply(service: Service, reply: Reply):
    """A join request is acknowledged, approved by a reply from the approver's client, and welcomed."""
    _join(service, body="Could the City of Ghent take part in the circular procurement group?")
    assert 1 == len(service.sent_to(ANNA, "acknowledge"))
    approval = service.raw_to(APPROVER, "approval_request")
    assert b"City of Ghent" in approval

    service.deliver(reply(approval, APPROVER, "Approve"))

    [row] = service.json("requests")
    assert ("approved", APPROVER, "circular") == (
        row["state"],
        row["decided_by"],
        row["group_slug"],
    )
    welcome = service.sent_to(ANNA, "welcome")
    assert 1 == len(welcome)
    assert welcome[0]["In-Reply-To"] is not None
    members = service.json("members", "circular")
    assert [("City of Ghent", ANNA, "member", "active")] == [
        (m["organisation"], m["contact_email"], m["role"], m["status"]) for m in members
    ]


def test_reject_with_reason_reaches_the_requester(service: Service):
    """REJECT <reason> rejects the request and the requester reads the reason."""
    _join(service)
    approval = service.raw_to(APPROVER, "approval_request")
    service.deliver(outlook_reply(approval, APPROVER, "REJECT please write from your city address"))
    [row] = service.json("requests")
    assert "rejected" == row["state"]
    [mail] = service.sent_to(ANNA, "rejected")
    assert "please write from your city address" in mail.get_body(("plain",)).get_content()


def test_decision_only_in_quoted_text_changes_nothing(service: Service):
    """A reply with no decision in its new text (APPROVE only quoted) changes nothing; it is answered once."""
    _join(service)
    approval = service.raw_to(APPROVER, "approval_request")
    service.deliver(gmail_reply(approval, APPROVER, "Thanks, I will look at this tomorrow."))
    assert "pending_approval" == service.json("requests")[0]["state"]
    assert 1 == len(service.sent_to(APPROVER, "approval_unclear"))
    # The token was not spent: the same approval mail still works.
    service.deliver(gmail_reply(approval, APPROVER, "approve"))
    assert "approved" == service.json("requests")[0]["state"]


def test_forged_and_replayed_replies_change_nothing(service: Service):
    """A valid token from another sender, and a replayed one, change nothing and get one polite notice."""
    _join(service)
    approval = service.raw_to(APPROVER, "approval_request")
    service.deliver(outlook_reply(approval, "mallory@iclei.example", "APPROVE"))
    service.deliver(outlook_reply(approval, "mallory@iclei.example", "APPROVE!"))
    assert "pending_approval" == service.json("requests")[0]["state"]
    assert 1 == len(service.sent_to("mallory@iclei.example", "token_refused"))

    service.deliver(outlook_reply(approval, APPROVER, "APPROVE"))
    service.deliver(gmail_reply(approval, APPROVER, "REJECT changed my mind"))
    assert "approved" == service.json("requests")[0]["state"]
    assert 1 == len(service.sent_to(ANNA, "welcome"))
    assert [] == service.sent_to(ANNA, "rejected")


def test_ineligible_sender_gets_a_polite_refusal_and_the_secretariat_a_lead(service: Service):
    """A sender whose organisation is not in the network is declined without bothering approvers."""
    _join(service, sender="bob@supplier.example")
    assert "declined_ineligible" == service.json("requests")[0]["state"]
    assert 1 == len(service.sent_to("bob@supplier.example", "ineligible"))
    assert 1 == len(service.sent_to(APPROVER, "lead"))
    assert [] == service.sent_to(APPROVER, "approval_request")


def test_big_buyers_requests_are_forwarded(service: Service):
    """A request to join the associated Big Buyers Initiative is forwarded to the secretariat with context."""
    _join(service, subject="Big Buyers", body="We would like to join the Big Buyers initiative.")
    row = service.json("requests")[0]
    assert ("forwarded", "big-buyers") == (row["state"], row["group_slug"])
    assert 1 == len(service.sent_to(APPROVER, "forward_associated"))


def test_start_without_aim_asks_for_it_then_goes_to_approval(service: Service):
    """A start request without an aim asks for one; the answer goes to the approvers; APPROVE forms it."""
    service.deliver(request_mail(ANNA, "START Green cleaning products", "Hi"))
    assert "needs_info" == service.json("requests")[0]["state"]
    question = service.raw_to(ANNA, "info_request")
    service.deliver(
        plain_reply(question, ANNA, "We want to share tender criteria for green cleaning products.")
    )
    assert "pending_approval" == service.json("requests")[0]["state"]
    approval = service.raw_to(APPROVER, "approval_request")
    assert b"share tender criteria" in approval
    service.deliver(outlook_reply(approval, APPROVER, "Approve"))
    groups = {g["slug"]: g for g in service.json("groups")}
    new = [g for g in groups.values() if g["name"] == "Green cleaning products"]
    assert 1 == len(new)
    assert ("forming", ANNA) == (new[0]["status"], new[0]["facilitator_email"])


def test_third_participant_activates_a_forming_group(service: Service):
    """Three participant organisations make a forming group active (SPEC §2.2)."""
    for sender in ("anna@ghent.example", "sara@malmo.example", "joost@haarlem.example"):
        _join(service, sender=sender)
        [approval] = [
            m.as_bytes()
            for m in service.sent_to(APPROVER, "approval_request")
            if sender.encode() in m.as_bytes()
        ]
        service.deliver(outlook_reply(approval, APPROVER, "APPROVE"))
    circular = next(g for g in service.json("groups") if g["slug"] == "circular")
    assert ("active", 3) == (circular["status"], circular["participant_count"])


def test_leave_needs_no_approval(service: Service):
    """A member who sends LEAVE leaves at once and is told so."""
    _join(service)
    service.deliver(outlook_reply(service.raw_to(APPROVER, "approval_request"), APPROVER, "APPROVE"))
    service.deliver(request_mail(ANNA, "LEAVE circular", ""))
    assert "left" == service.json("members", "circular")[0]["status"]
    assert 1 == len(service.sent_to(ANNA, "left"))


def test_repeated_request_makes_one_request(service: Service):
    """The same sender asking twice gets one request; the second mail is told it is already pending."""
    _join(service)
    _join(service, body="Hello again, did you get this?")
    assert 1 == len(service.json("requests"))
    assert 1 == len(service.sent_to(ANNA, "refusal"))


def test_out_of_office_is_never_answered(service: Service):
    """An automatic reply is recorded and never answered."""
    raw = request_mail(ANNA, "Automatic reply: JOIN circular", "I am out of the office.")
    raw = b"Auto-Submitted: auto-replied\r\n" + raw
    service.deliver(raw)
    assert [] == service.json("requests")
    assert [] == service.json("outbox")


def test_unknown_group_gets_the_list_of_groups(service: Service):
    """A join for a group nobody knows gets the list of groups, not silence."""
    _join(service, subject="JOIN underwater basket weaving")
    [mail] = service.sent_to(ANNA, "help")
    assert "Circular Public Procurement" in mail.get_body(("plain",)).get_content()


def test_cli_approve_and_reject(service: Service):
    """The secretariat's fallback: approve and reject by id; unknown ids are one clear error."""
    _join(service)
    _join(service, sender="sara@malmo.example", subject="JOIN ict")
    ids = [r["id"] for r in service.json("requests")]
    assert f"request {ids[0]}: approved\n" == service.ok("approve", str(ids[0]))
    assert "rejected" in service.ok("reject", str(ids[1]), "--reason", "duplicate")
    code, _, err = service.run("approve", "999")
    assert (1, "mailflow: error: no request with id 999") == (code, err.strip().split(";")[0])
    code, _, err = service.run("approve", str(ids[0]))
    assert 1 == code
    assert "already been approved" in err


def test_json_rows_have_the_contract_fields(service: Service):
    """The --json views carry the field names SPEC §6 fixes."""
    _join(service)
    assert {
        "slug",
        "name",
        "status",
        "facilitator_email",
        "participant_count",
        "member_count",
    } <= set(service.json("groups")[0])
    assert {
        "id",
        "kind",
        "state",
        "contact_email",
        "organisation",
        "group_slug",
        "created_at",
        "decided_at",
        "decided_by",
    } <= set(service.json("requests")[0])
    assert {"id", "to", "subject", "state", "message_id", "kind"} <= set(service.json("outbox")[0])
    assert [] == service.json("quarantine")


def test_bad_csv_rows_are_reported_with_line_numbers(service: Service):
    """A registry file with bad rows imports nothing and names each bad line."""
    bad = service.folder / "bad.csv"
    bad.write_text(
        "organisation,country,status,domains,contact_email,contact_name\n"
        "City of Ghent,Belgium,participant,ghent.example,,\n"
        "City of Nowhere,,member,nowhere,,\n",
        encoding="utf-8",
    )
    code, _, err = service.run("org", "import", str(bad))
    assert 1 == code
    assert "line 3: status 'member'" in err


def test_bad_config_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A wrong key stops the program with one message naming the key."""
    path = tmp_path / "config.toml"
    path.write_text('[smtp_intake]\nport = "twenty"\n', encoding="utf-8")
    assert 1 == main(["--config", str(path), "groups"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("mailflow: error: [smtp_intake] port:")
    assert 1 == len(err.splitlines())


def test_repeated_ineligible_request_makes_one_lead(service: Service):
    """An ineligible sender asking again gets one more answer, and the secretariat no second lead."""
    _join(service, sender="bob@supplier.example")
    _join(service, sender="bob@supplier.example", body="Please, we really want to join.")
    assert ["declined_ineligible"] == [r["state"] for r in service.json("requests")]
    assert 1 == len(service.sent_to(APPROVER, "lead"))
    [again] = service.sent_to("bob@supplier.example", "refusal")
    assert "answered your request" in again.get_body(("plain",)).get_content()


def test_repeated_big_buyers_request_is_forwarded_once(service: Service):
    """Asking twice about the Big Buyers Initiative forwards it to the secretariat once."""
    for _ in range(2):
        _join(service, subject="Big Buyers", body="We would like to join the Big Buyers initiative.")
    assert ["forwarded"] == [r["state"] for r in service.json("requests")]
    assert 1 == len(service.sent_to(APPROVER, "forward_associated"))
