"""Every mail the workflow can send renders from the real templates into clean, safe MIME."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow.core.compose import Identity, make_environment, render
from mailflow.core.lifecycle import RequestKind, RequestState
from mailflow.core.model import Decision, Verdict
from mailflow.core.plans import GroupFacts, Mail, Person
from mailflow.core.rules import NetworkStatus
from mailflow.core.workflow import (
    JoinFacts,
    LeaveFacts,
    PendingRequest,
    StartFacts,
    decide_answer,
    decide_join,
    decide_leave,
    decide_start,
    decide_verdict,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ENV = make_environment(TEMPLATES)
IDENTITY = Identity(
    "interest-groups@network.example", "Procura+ Network Interest Groups", "Procura+ Network", "ICLEI"
)
WHEN = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HOSTILE = "Anna\r\nBcc: victim@evil.example\r\n" + "🌍 مرحبا " * 60
GROUPS = [
    {"slug": "circular", "name": "Circular Public Procurement", "status": "active", "associated": False}
]
EXTRA = {"groups": GROUPS}


def _people() -> list[Person]:
    return [
        Person("anna@ghent.example", "Anna", "City of Ghent", NetworkStatus.PARTICIPANT),
        Person("anna@ghent.example", HOSTILE, HOSTILE, NetworkStatus.STRATEGIC_PARTNER),
        Person("bob@nowhere.example"),
    ]


def _all_mails() -> list[Mail]:
    group = GroupFacts(
        "circular",
        "Circular Public Procurement",
        "forming",
        facilitator_email="f@malmo.example",
        participant_organisations=2,
    )
    bigb = GroupFacts("big-buyers", "Big Buyers Initiative", "active", associated=True)
    mails: list[Mail] = []
    for person in _people():
        for g in (group, bigb):
            join = JoinFacts(1, person, g, "Could we join?", ("a@iclei.example",), "leads@iclei.example")
            mails += decide_join(join).mails
        mails += decide_join(JoinFacts(1, person, group, "", (), "s@i.example", already_member=True)).mails
        for aim in ("", "Share criteria for green cleaning products"):
            mails += decide_start(
                StartFacts(2, person, "Green cleaning", aim, "hello", ("a@i.example",), "s@i.example")
            ).mails
        for kind, g in ((RequestKind.JOIN, group), (RequestKind.START, None)):
            pending = PendingRequest(
                3, kind, RequestState.PENDING_APPROVAL, person, g, topic="Green cleaning"
            )
            for verdict in Verdict:
                mails += decide_verdict(
                    pending, Decision(verdict, "because " + HOSTILE), "a@iclei.example"
                ).mails
            asked = PendingRequest(3, kind, RequestState.NEEDS_INFO, person, g, topic="Green cleaning")
            mails += decide_answer(asked, "Our answer", ("a@iclei.example",)).mails
        for member, facilitator in ((True, False), (True, True), (False, False)):
            mails += decide_leave(LeaveFacts(4, person, group, member, facilitator, "s@i.example")).mails
    mails += [
        Mail("help", "anna@ghent.example", {"not_understood": True, "reason": "Which group?"}),
        Mail("help", "anna@ghent.example", {"not_understood": False}),
        Mail(
            "status",
            "anna@ghent.example",
            {
                "requests": [
                    {
                        "id": 1,
                        "kind": "join",
                        "subject": "Circular",
                        "state_label": "pending approval",
                        "updated": "26 Nov 2026",
                    }
                ],
                "memberships": [{"group": "Food", "role": "member"}],
            },
        ),
        Mail("status", "anna@ghent.example", {"requests": [], "memberships": []}),
        Mail("token_refused", "mallory@evil.example", {"reason": "it came from another address."}),
        Mail("approval_unclear", "a@iclei.example", {"request_id": 3}),
    ]
    return mails


MAILS = _all_mails()


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_every_template_is_reached():
    """The decisions above produce every template in templates/, so each one is rendered below."""
    names = {p.name.removesuffix(".subject.j2") for p in TEMPLATES.glob("*.subject.j2")}
    assert names == {m.template for m in MAILS}


@pytest.mark.parametrize("index", range(len(MAILS)), ids=[f"{m.template}-{i}" for i, m in enumerate(MAILS)])
def test_mail_renders_into_clean_mime(index: int):
    """Text and HTML parts, a fixed Message-ID, loop-safety headers, and no header injected by any value."""
    mail = MAILS[index]
    rendered = render(
        ENV,
        mail,
        identity=IDENTITY,
        message_id=f"m{index}@network.example",
        date=WHEN,
        token="a" * 26 if mail.token else None,
        in_reply_to="orig@ghent.example",
        extra=EXTRA,
    )
    message = _parse(rendered.raw)
    assert [] == message.defects
    assert ["multipart/alternative", "text/plain", "text/html"] == [
        p.get_content_type() for p in message.walk()
    ]
    expected_headers = {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "auto-submitted",
        "x-auto-response-suppress",
        "x-mailflow",
        "mime-version",
        "content-type",
    }
    if mail.token:
        expected_headers.add("reply-to")
    assert expected_headers == {k.lower() for k in message}
    assert f"<m{index}@network.example>" == message["Message-ID"]
    assert message["Auto-Submitted"] in {"auto-replied", "auto-generated"}
    subject = str(message["Subject"])
    assert subject.strip()
    assert "\n" not in subject
    assert "\r" not in subject
    assert b"\nBcc:" not in rendered.raw.split(b"\r\n\r\n", 1)[0]
    for part in ("plain", "html"):
        body = message.get_body((part,))
        assert body is not None
        assert body.get_content().strip()


def test_token_travels_in_subject_and_reply_to():
    """A mail with a token carries it in the Subject tag and in the plus-address of Reply-To."""
    mail = next(m for m in MAILS if m.template == "approval_request")
    token = "b" * 26
    message = _parse(
        render(ENV, mail, identity=IDENTITY, message_id="x@n.example", date=WHEN, token=token).raw
    )
    assert str(message["Subject"]).endswith(f"[IG-{token}]")
    assert f"interest-groups+{token}@network.example" == message["Reply-To"].addresses[0].addr_spec


def test_html_is_escaped():
    """Values in the HTML part are escaped: a name with markup does not become markup."""
    person = Person("anna@ghent.example", "<script>alert(1)</script>", "City", NetworkStatus.PARTICIPANT)
    group = GroupFacts("circular", "Circular", "active")
    [ack, *_] = decide_join(JoinFacts(1, person, group, "<b>hi</b>", ("a@i.example",), "s@i.example")).mails
    message = _parse(render(ENV, ack, identity=IDENTITY, message_id="y@n.example", date=WHEN).raw)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_rendering_is_deterministic():
    """The same mail, ids and time give the same bytes (no randomness in the core)."""
    mail = MAILS[0]
    first = render(ENV, mail, identity=IDENTITY, message_id="z@n.example", date=WHEN).raw
    assert first == render(ENV, mail, identity=IDENTITY, message_id="z@n.example", date=WHEN).raw
