"""Every mail the workflow can send renders from the real templates into clean, safe MIME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailflow.core import calendar as cal
from mailflow.core.compose import Identity, make_environment, render
from mailflow.core.lifecycle import RequestKind, RequestState
from mailflow.core.meetings import local_long, meeting_context
from mailflow.core.model import Decision, Verdict
from mailflow.core.plans import CalendarPart, GroupFacts, Mail, Person, TokenSpec
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


def _meeting_mails() -> list[Mail]:
    start = datetime(2027, 3, 9, 14, 0, tzinfo=ZoneInfo("Europe/Brussels"))
    web = cal.Meeting(
        uid="m1@network.example",
        sequence=0,
        summary="Spring exchange " + HOSTILE,
        start=start,
        duration=timedelta(minutes=90),
        tzid="Europe/Brussels",
        kind=cal.Kind.WEB,
        organizer_email="interest-groups@network.example",
        organizer_name=HOSTILE,
        description=HOSTILE,
        join_url="https://meet.example/abc?x=1&y=2",
    )
    series = cal.Meeting(
        uid="m2@network.example",
        sequence=3,
        summary="Circular calls",
        start=start,
        duration=timedelta(hours=1),
        tzid="Europe/Brussels",
        kind=cal.Kind.PHONE,
        organizer_email="interest-groups@network.example",
        dial_in="tel:+3221234567",
        pin="4321",
        recurrence=cal.Recurrence(frequency=cal.Frequency.WEEKLY, interval=2, count=6),
    )
    attendee = cal.Attendee(email="anna@ghent.example", name=HOSTILE)
    mails: list[Mail] = []
    for meeting in (web, series):
        context = meeting_context(
            meeting, (), meeting_id=7, group_slug="circular", group_name=HOSTILE, now=WHEN
        )
        request = CalendarPart("REQUEST", cal.invitation(meeting, attendee, cal.Method.REQUEST, WHEN))
        cancel = CalendarPart("CANCEL", cal.invitation(meeting, attendee, cal.Method.CANCEL, WHEN))
        mails += [
            Mail("meeting_invitation", "anna@ghent.example", context, calendar=request),
            Mail("meeting_updated", "anna@ghent.example", context, calendar=request),
            Mail("meeting_cancelled", "anna@ghent.example", context, calendar=cancel),
            Mail("meeting_cancelled", "anna@ghent.example", {**context, "leaving": True}, calendar=cancel),
        ]
    occurrence = local_long(start + timedelta(weeks=2), "Europe/Brussels")
    mails.append(Mail("meeting_cancelled", "anna@ghent.example", {**context, "occurrence": occurrence}))
    for what in ("scheduled", "updated", "cancelled"):
        facts = {"what": what, "assumptions": ["CET read as " + HOSTILE], "invited": 12}
        mails.append(Mail("meeting_confirmed", "f@malmo.example", {**context, **facts}, answers_sender=True))
    mails.append(
        Mail(
            "meeting_confirmed",
            "f@malmo.example",
            {**context, "what": "cancelled", "assumptions": [], "invited": 3, "occurrence": occurrence},
        )
    )
    when = {"when": occurrence, "until": occurrence}
    for answer in ("NEEDS-ACTION", "TENTATIVE", "ACCEPTED"):
        mails.append(Mail("meeting_reminder", "anna@ghent.example", {**context, **when, "answer": answer}))
    people = [
        {"email": "anna@ghent.example", "name": HOSTILE},
        {"email": "bo@x.example", "name": "bo@x.example"},
    ]
    answers = {"accepted": people, "tentative": [], "declined": people[:1], "unanswered": people[1:]}
    mails.append(Mail("meeting_summary", "f@malmo.example", {**context, **when, **answers}))
    for facilitator in ("f@malmo.example", None):
        due = {
            "group": {"slug": "circular", "name": HOSTILE},
            "count": 1,
            "needed": 2,
            "year_start": occurrence,
            "year_end": occurrence,
            "facilitator": facilitator,
        }
        mails.append(Mail("meetings_due", "f@malmo.example", due))
        mails.append(Mail("meetings_due_secretariat", "s@iclei.example", due))
    for group in (None, {"slug": "circular", "name": HOSTILE}):
        facts = {"reason": "Some details are missing:", "problems": ["no time: " + HOSTILE], "group": group}
        mails.append(Mail("meeting_help", "f@malmo.example", facts, answers_sender=True))
    return mails


def _lifecycle_mails() -> list[Mail]:
    group = {"slug": "circular", "name": HOSTILE}
    pending = [
        {"id": 3, "kind": "join", "who": HOSTILE, "email": "a@g.example", "subject": HOSTILE, "days": 4}
    ]
    mails = [
        Mail("approval_reminder", "a@iclei.example", {"pending": pending}),
        Mail(
            "update_received",
            "f@malmo.example",
            {"group": group, "title": HOSTILE, "text": HOSTILE, "members": 3},
        ),
        Mail("update_refused", "x@malmo.example", {"reason": HOSTILE}, answers_sender=True),
        Mail("group_closed", "m@malmo.example", {"group": group}),
    ]
    for ever, facilitator in ((True, "f@malmo.example"), (False, None)):
        due = {"group": group, "since": "1 May 2027", "days": 95, "facilitator": facilitator, "ever": ever}
        mails += [
            Mail("update_due", "f@malmo.example", due),
            Mail("update_due_secretariat", "s@i.example", due),
        ]
    token = TokenSpec("group_end", "f@malmo.example")
    for ended, to_facilitator in ((False, True), (False, False), (True, False)):
        facts = {
            "group": group,
            "end": HOSTILE,
            "ended": ended,
            "period_months": 24,
            "to_facilitator": to_facilitator,
        }
        mails.append(Mail("group_end", "f@malmo.example", facts, token=token))
    mails.append(
        Mail("group_end_unclear", "f@malmo.example", {"group": group, "end": "1 May"}, answers_sender=True)
    )
    for what in ("extended", "closed", "already_closed"):
        facts = {"group": group, "what": what, "months": 12, "end": "1 May 2029", "told": 7}
        mails.append(Mail("group_end_done", "f@malmo.example", facts, answers_sender=True))
    return mails


def _digest_mails() -> list[Mail]:
    headers = (
        ("List-Unsubscribe", "<mailto:interest-groups@network.example?subject=DIGEST%20off>"),
        ("List-Id", "<digest.network.example>"),
    )
    schedule = {"weekday": "Monday", "hour": "08:00", "timezone": "Europe/Brussels", "network": "monthly"}
    update = {"title": HOSTILE, "text": HOSTILE, "wrapped": HOSTILE, "excerpt": HOSTILE, "author": HOSTILE}
    update["date"] = "25 Nov"
    decisions = [
        {"kind": "join", "verdict": "approved", "organisation": HOSTILE, "date": "24 Nov"},
        {"kind": "start", "verdict": "rejected", "organisation": None, "date": "24 Nov"},
    ]
    section = {
        "slug": "circular",
        "name": HOSTILE,
        "status": "forming",
        "aim": HOSTILE,
        "facilitator_email": "f@malmo.example",
        "participants": 2,
        "needed": 1,
        "new_organisations": [HOSTILE],
        "updates": [update],
        "decisions": decisions,
        "is_new": True,
        "became_active": False,
        "news": True,
    }
    quiet = {**section, "status": "active", "needed": 0, "is_new": False, "became_active": True}
    quiet |= {"new_organisations": [], "updates": [], "decisions": []}
    meeting = {
        "id": 7,
        "title": HOSTILE,
        "kind": "web",
        "group": HOSTILE,
        "group_slug": "circular",
        "when": "Tue 08 Dec 2026, 14:00 CET",
        "minutes": 90,
        "join_url": "https://meet.example/abc?x=1&y=2",
        "dial_in": "+3221234567",
        "pin": "4321",
    }
    answers = ("ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION", "")
    sections = [
        {
            "group": section,
            "meetings": [{"meeting": meeting, "answer": a} for a in answers],
            "role": "member",
        },
        {"group": quiet, "meetings": [], "role": "facilitator"},
    ]
    mails = []
    for frequency, label in (("weekly", "23 to 29 November 2026"), ("monthly", "November 2026")):
        period = {"label": label, "frequency": frequency}
        for reader in (
            {"name": HOSTILE, "email": "anna@ghent.example"},
            {"name": "", "email": "b@g.example"},
        ):
            facts = {"frequency": frequency, "period": period, "schedule": schedule, "reader": reader}
            mails += [
                Mail(
                    "digest",
                    reader["email"],
                    {**facts, "groups": sections, "forming": [section], "unanswered": 1},
                    headers=headers,
                    id_prefix="digest",
                ),
                Mail(
                    "digest",
                    reader["email"],
                    {**facts, "groups": [], "forming": [section], "unanswered": 0},
                    headers=headers,
                    id_prefix="digest",
                ),
            ]
        network = {
            "frequency": frequency,
            "period": period,
            "schedule": schedule,
            "new_groups": [quiet],
            "forming": [section],
            "updates": [
                {"group": section, "latest": update, "count": 3},
                {"group": quiet, "latest": update, "count": 1},
            ],
            "more_updates": [quiet, section],
            "meetings": [meeting],
            "groups": [quiet],
            "recipients": 1,
        }
        for copy in (False, True):
            facts = {**network, "copy": copy}
            mails.append(Mail("network_digest", "a@g.example", facts, headers=headers, id_prefix="digest"))
        empty = {key: [] for key in ("new_groups", "updates", "more_updates", "meetings", "groups")}
        mails.append(Mail("network_digest", "a@g.example", {**network, **empty, "copy": False}))
    for choice, previous in (("weekly", "monthly"), ("monthly", "monthly"), ("off", "weekly"), ("", "off")):
        facts = {"choice": choice, "previous": previous, "schedule": schedule}
        mails.append(Mail("digest_preference", "anna@ghent.example", facts, answers_sender=True))
    group = {"slug": "circular", "name": HOSTILE}
    for facts in (
        {"group": group, "facilitator": "f@malmo.example", "is_facilitator": False},
        {"group": group, "facilitator": "f@malmo.example", "is_facilitator": True},
        {"group": group, "facilitator": None, "is_facilitator": False},
        {"group": None, "facilitator": None, "is_facilitator": False},
    ):
        context = {**facts, "secretariat_address": "s@iclei.example"}
        mails.append(Mail("digest_reply", "anna@ghent.example", context, answers_sender=True))
    return mails


MAILS = _all_mails() + _meeting_mails()
MAILS += _digest_mails()
MAILS += _lifecycle_mails()


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
    shape = [p.get_content_type() for p in message.walk()]
    if mail.calendar is None:
        assert ["multipart/alternative", "text/plain", "text/html"] == shape
    else:
        # SPEC §4: the calendar inline as the third alternative, and the same bytes as invite.ics.
        assert [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "text/calendar",
            "application/ics",
        ] == shape
        inline, attached = list(message.walk())[4:]
        assert mail.calendar.method == inline.get_param("method")
        assert "invite.ics" == attached.get_filename()
        assert mail.calendar.ics == inline.get_payload(decode=True) == attached.get_payload(decode=True)
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
    expected_headers |= {name.lower() for name, _ in mail.headers}
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
