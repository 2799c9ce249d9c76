"""Member digests, the network digest, DIGEST preferences and replies to a digest, on SQLite and PostgreSQL.

Time is driven by the ``now`` given to ``tick``: the default week starts on Monday at 08:00 in
Europe/Brussels (07:00 UTC in winter), the month on the 1st at the same hour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from mailflow.app import meeting_ops
from mailflow.app.digest_periods import last_period
from mailflow.app.digests import JOBS, handle_digest, handle_digest_reply, is_digest_reply
from mailflow.app.effects import Mailer
from mailflow.app.events import Inbound
from mailflow.app.process import Pipeline, store_raw
from mailflow.app.runtime import Runtime
from mailflow.app.schedule import tick
from mailflow.app.work import Work
from mailflow.config import DigestSettings
from mailflow.core.intent import classify
from mailflow.core.model import Intent, IntentKind, ParsedMail
from mailflow.core.parse import parse_message
from mailflow.store import repo
from mailflow.store.schema import (
    Contact,
    Event,
    Group,
    GroupUpdate,
    Once,
    OutboxMessage,
    Request,
)
from mailflow.testing import SERVICE, gmail_reply, request_mail, rsvp_mail
from tests.conftest import seat

ROOT = Path(__file__).resolve().parents[2]
LONG_AGO = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
IN_WEEK = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thursday of the week from Monday 23 November
WEEK_END = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 30 November, 08:00 in Brussels
MONTH_END = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 1 December, 08:00 in Brussels
MEETING = "2026-12-08T14:00"
DIGESTS = {"member_digests": JOBS["member_digests"]}
NETWORK = {"network_digest": JOBS["network_digest"]}

Handler = Callable[[Work, Intent, Contact], None]


# -- the world --------------------------------------------------------------------------------------------


def _quiet_groups(runtime: Runtime) -> None:
    """The config's groups were created long ago, so being new is no news in the tested periods."""
    with runtime.sessions.begin() as session:
        session.execute(update(Group).values(created_at=LONG_AGO))
        session.execute(update(Group).where(Group.status == "active").values(activated_at=LONG_AGO))


def _member(
    runtime: Runtime,
    slug: str,
    email: str,
    *,
    joined: datetime = LONG_AGO,
    role: str = "member",
    digest: str = "weekly",
) -> int:
    """Make ``email`` (organisation found by domain) an active member of ``slug``; return its contact id."""
    with runtime.sessions.begin() as session:
        contact = repo.contact_for(session, email, email.partition("@")[0].title(), joined)
        contact.digest = digest
        group = session.scalars(select(Group).where(Group.slug == slug)).one()
        seat(session, group, contact, role, joined)
        return contact.id


def _update(
    runtime: Runtime, slug: str, author: str, title: str, text: str, *, at: datetime = IN_WEEK
) -> None:
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == slug)).one()
        session.add(GroupUpdate(group_id=group.id, author=author, title=title, text=text, created_at=at))


def _circular(runtime: Runtime) -> None:
    """Circular is active: Ghent facilitates, Lyon is an old member, Malmo joined this week (approved)."""
    _quiet_groups(runtime)
    with runtime.sessions.begin() as session:
        session.execute(
            update(Group).where(Group.slug == "circular").values(status="active", activated_at=LONG_AGO)
        )
    _member(runtime, "circular", "anna@ghent.example", role="facilitator")
    _member(runtime, "circular", "cy@lyon.example")
    bo = _member(runtime, "circular", "bo@malmo.example", joined=IN_WEEK)
    with runtime.sessions.begin() as session:
        contact = session.get_one(Contact, bo)
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        session.add(
            Request(
                kind="join",
                state="approved",
                contact_id=bo,
                organisation_id=contact.organisation_id,
                group_id=group.id,
                created_at=IN_WEEK,
                updated_at=IN_WEEK,
                decided_at=IN_WEEK,
                decided_by="approver@iclei.example",
            )
        )
    _update(runtime, "circular", "anna@ghent.example", "Criteria workshop", "We compared tender criteria.")


def _schedule(runtime: Runtime, start: str = MEETING, group: str = "circular") -> int:
    args = meeting_ops.ScheduleArgs(
        group=group, start=start, duration=90, kind="web", url="https://meet.example/c", title="Winter call"
    )
    return meeting_ops.schedule(runtime, args)


def _outbox(runtime: Runtime, kind: str) -> list[OutboxMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            )
        )


def _by_recipient(runtime: Runtime, kind: str) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for row in _outbox(runtime, kind):
        assert row.to_addr not in found, f"{row.to_addr} got two {kind} mails"
        found[row.to_addr] = _message(row.raw)
    return found


def _message(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def _html(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return body.get_content()


def _handle(runtime: Runtime, raw: bytes, handler: Handler) -> Intent:
    """Process one mail with ``handler`` in one transaction, the way the pipeline builds its unit of work."""
    stored = store_raw(runtime, raw, "file")
    now = runtime.clock()
    limits = runtime.settings.limits
    with runtime.sessions.begin() as session:
        inbound = Inbound(stored.inbound_id, raw)
        parsed = parse_message(
            raw,
            max_bytes=limits.max_message_bytes,
            max_parts=limits.max_mime_parts,
            max_depth=limits.max_mime_depth,
        )
        # A reply to our mail is read from its body, unless its subject is an exact command.
        subject = "" if parsed.in_reply_to else parsed.subject
        intent = classify(subject, parsed.text, repo.group_refs(session), has_token=False)
        contact = repo.contact_for(session, parsed.from_addr, parsed.from_name, now)
        mailer = Mailer(session, runtime, now, parsed=parsed, inbound=inbound)
        handler(Work(session, runtime, now, inbound, parsed, mailer), intent, contact)
    return intent


def _digest_choice(runtime: Runtime, email: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Contact.digest).where(Contact.email == email)).one()


# -- periods (pure) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "frequency", "start", "end"),
    [
        # Just after the Monday boundary, the week that ended is sent.
        ("2026-11-30T07:00:00+00:00", "weekly", "2026-11-23T07:00:00+00:00", "2026-11-30T07:00:00+00:00"),
        # A minute before it, the week before.
        ("2026-11-30T06:59:00+00:00", "weekly", "2026-11-16T07:00:00+00:00", "2026-11-23T07:00:00+00:00"),
        # Days late: still the last week that ended.
        ("2026-12-03T18:00:00+00:00", "weekly", "2026-11-23T07:00:00+00:00", "2026-11-30T07:00:00+00:00"),
        # Across the end of summer time the local hour stays 08:00: the week is an hour longer.
        ("2026-10-26T07:30:00+00:00", "weekly", "2026-10-19T06:00:00+00:00", "2026-10-26T07:00:00+00:00"),
        ("2026-12-01T07:00:00+00:00", "monthly", "2026-11-01T07:00:00+00:00", "2026-12-01T07:00:00+00:00"),
        ("2027-01-01T06:00:00+00:00", "monthly", "2026-11-01T07:00:00+00:00", "2026-12-01T07:00:00+00:00"),
        ("2027-01-15T12:00:00+00:00", "monthly", "2026-12-01T07:00:00+00:00", "2027-01-01T07:00:00+00:00"),
    ],
)
def test_the_last_period_that_ended(now: str, frequency: str, start: str, end: str):
    """A tick sends the period that ended last, whenever it runs after that period's end."""
    period = last_period(frequency, datetime.fromisoformat(now), DigestSettings(), "Europe/Brussels")
    assert (datetime.fromisoformat(start), datetime.fromisoformat(end)) == (period.start, period.end)


def test_period_keys_and_labels_read_in_local_time():
    """The once-key carries the local start with its offset; the label is what a person reads."""
    weekly = last_period("weekly", WEEK_END, DigestSettings(), "Europe/Brussels")
    monthly = last_period("monthly", MONTH_END, DigestSettings(weekday="friday", hour=17), "Europe/Brussels")
    assert "weekly/2026-11-23T08:00:00+01:00" == weekly.key
    assert "23 to 29 November 2026" == weekly.label()
    assert "monthly/2026-10-01T17:00:00+02:00" == monthly.key
    assert "October 2026" == monthly.label()


@pytest.mark.parametrize(
    ("in_reply_to", "references", "expected"),
    [
        (("digest.0a1b2c@network.example",), (), True),
        (("DIGEST.0A1B2C@Network.Example",), (), True),
        ((), ("x@ghent.example", "digest.0a1b2c@network.example"), True),
        (("0a1b2c@network.example",), ("digest.0a1b2c@network.example",), False),
        (("digest.0a1b2c@evil.example",), (), False),
        ((), ("digest.0a1b2c@network.example", "reply@ghent.example"), False),
    ],
)
def test_a_digest_reply_is_told_by_its_parent_message_id(
    in_reply_to: tuple[str, ...], references: tuple[str, ...], expected: bool
):
    """Only a direct answer to a ``digest.…@our domain`` Message-ID is a digest reply."""
    parsed = ParsedMail(in_reply_to=in_reply_to, references=references)
    assert expected is is_digest_reply(parsed, "network.example")


# -- member digests ---------------------------------------------------------------------------------------


def test_each_member_gets_one_digest_of_the_week_with_its_news(runtime: Runtime):
    """New organisations, updates, decisions and meetings ahead with each member's own answer; once."""
    _circular(runtime)
    _schedule(runtime)
    [invitation] = [m for m in _outbox(runtime, "meeting_invitation") if m.to_addr == "cy@lyon.example"]
    Pipeline(runtime).accept(rsvp_mail(invitation.raw, "cy@lyon.example", "ACCEPTED"), "file", "")

    first = tick(runtime, WEEK_END + timedelta(minutes=1), jobs=DIGESTS)
    again = tick(runtime, WEEK_END + timedelta(hours=5), jobs=DIGESTS)

    assert (3, 0) == (first.queued["member_digests"], first.already["member_digests"])
    # The second tick finds every digest of the period sent and builds none of them again.
    assert (0, 0) == (again.queued["member_digests"], again.already["member_digests"])
    assert 3 == len(_outbox(runtime, "digest"))
    digests = _by_recipient(runtime, "digest")
    assert {"anna@ghent.example", "bo@malmo.example", "cy@lyon.example"} == set(digests)
    cy = digests["cy@lyon.example"]
    assert "Your weekly interest groups digest: 23 to 29 November 2026" == cy["Subject"]
    text = _text(cy)
    for expected in (
        "== Circular Public Procurement ==",
        "New member organisations: - City of Malmo",
        "Criteria workshop (26 Nov, anna@ghent.example) We compared tender criteria.",
        "26 Nov: City of Malmo's request to join approved",
        "Tue 08 Dec 2026, 14:00 CET Winter call (web, 90 min) Join: https://meet.example/c",
        "Your answer: yes",
    ):
        assert expected in text
    assert "to answer" not in text
    assert "Not answered yet" in _text(digests["anna@ghent.example"])
    assert "You have 1 meeting invitation to answer" in _text(digests["anna@ghent.example"])
    assert "Winter call" in _html(cy)


def test_a_digest_carries_list_headers_and_a_recognisable_message_id(runtime: Runtime):
    """List-Unsubscribe is a mailto sending DIGEST off, List-Id names the digests, Message-ID is digest.…."""
    _circular(runtime)
    tick(runtime, WEEK_END, jobs=DIGESTS)
    message = _by_recipient(runtime, "digest")["cy@lyon.example"]
    assert f"<mailto:{SERVICE}?subject=DIGEST%20off>" == message["List-Unsubscribe"]
    assert "<digest.network.example>" == message["List-Id"]
    assert message["Message-ID"].startswith("<digest.")
    assert "auto-generated" == message["Auto-Submitted"]


def test_monthly_readers_get_the_month_and_off_gets_nothing(runtime: Runtime):
    """Ticking every hour across a week's end and a month's end: weekly once, monthly once, off never."""
    _circular(runtime)
    with runtime.sessions.begin() as session:
        session.execute(update(Contact).where(Contact.email == "bo@malmo.example").values(digest="monthly"))
        session.execute(update(Contact).where(Contact.email == "cy@lyon.example").values(digest="off"))

    moment = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    while moment < datetime(2026, 12, 2, 0, 0, tzinfo=UTC):
        tick(runtime, moment, jobs=DIGESTS)
        moment += timedelta(hours=1)

    subjects = [(row.to_addr, row.subject) for row in _outbox(runtime, "digest")]
    assert [
        ("anna@ghent.example", "Your weekly interest groups digest: 23 to 29 November 2026"),
        ("bo@malmo.example", "Your monthly interest groups digest: November 2026"),
    ] == subjects
    with runtime.sessions() as session:
        keys = sorted(session.scalars(select(Once.key).where(Once.key.like("digest/%"))))
    assert {"weekly/2026-11-23T08:00:00+01:00", "monthly/2026-11-01T08:00:00+01:00"} == {
        key.split("/", 2)[2] for key in keys
    }


def test_an_empty_digest_is_not_sent(runtime: Runtime):
    """A member of a group with no news and no meeting ahead gets nothing; news in another group is theirs."""
    _quiet_groups(runtime)
    _member(runtime, "food", "quiet@haarlem.example")
    _member(runtime, "ict", "busy@haarlem.example")
    _update(runtime, "ict", "busy@haarlem.example", "Laptops", "Fair laptops tender published.")

    result = tick(runtime, WEEK_END, jobs=DIGESTS)

    assert 1 == result.queued["member_digests"]
    [digest] = _outbox(runtime, "digest")
    assert "busy@haarlem.example" == digest.to_addr


def test_a_meeting_ahead_alone_makes_a_digest_and_a_forming_group_calls_for_participants(runtime: Runtime):
    """With no news, a meeting in the coming weeks is worth a digest; forming groups ask to be joined."""
    _quiet_groups(runtime)
    _member(runtime, "food", "fay@malmo.example")
    _schedule(runtime, "2026-12-10T10:00", group="food")

    tick(runtime, WEEK_END, jobs=DIGESTS)

    [digest] = _by_recipient(runtime, "digest").values()
    text = _text(digest)
    assert "Thu 10 Dec 2026, 10:00 CET Winter call" in text
    assert "Not answered yet" in text
    assert "== Groups looking for participants == - Circular Public Procurement" in text
    assert "JOIN circular" in text


def test_a_tick_late_by_days_sends_the_week_that_ended_once(runtime: Runtime):
    """No tick at the boundary: two days later the week is sent, and the next tick sends nothing."""
    _circular(runtime)
    late = tick(runtime, WEEK_END + timedelta(days=2), jobs=DIGESTS)
    later = tick(runtime, WEEK_END + timedelta(days=3), jobs=DIGESTS)
    assert (3, 0) == (late.queued["member_digests"], later.queued["member_digests"])
    assert 3 == len(_outbox(runtime, "digest"))


def test_a_configured_monthly_default_applies_to_contacts_who_never_chose(runtime: Runtime):
    """``[digests] default = "monthly"``: who never chose gets the month; who chose weekly, the week."""
    _circular(runtime)
    settings = runtime.settings.model_copy(
        update={"digests": runtime.settings.digests.model_copy(update={"default": "monthly"})}
    )
    monthly = Runtime(settings, runtime.engine, runtime.sessions, runtime.templates, clock=runtime.clock)
    _handle(monthly, request_mail("anna@ghent.example", "DIGEST weekly", ""), handle_digest)

    tick(monthly, WEEK_END, jobs=DIGESTS)
    tick(monthly, MONTH_END, jobs=DIGESTS)

    subjects = sorted((row.to_addr, row.subject.split(":")[0]) for row in _outbox(runtime, "digest"))
    assert [
        ("anna@ghent.example", "Your weekly interest groups digest"),
        ("bo@malmo.example", "Your monthly interest groups digest"),
        ("cy@lyon.example", "Your monthly interest groups digest"),
    ] == subjects


def test_who_joined_after_the_period_ended_waits_for_the_next_digest(runtime: Runtime):
    """A member who joined after Monday 08:00 gets no digest of the week before, but the next one."""
    _circular(runtime)
    _member(runtime, "circular", "new@haarlem.example", joined=WEEK_END + timedelta(hours=1))
    _update(
        runtime, "circular", "anna@ghent.example", "Survey", "Please answer.", at=WEEK_END + timedelta(days=2)
    )

    tick(runtime, WEEK_END + timedelta(hours=2), jobs=DIGESTS)
    first = set(_by_recipient(runtime, "digest"))
    tick(runtime, WEEK_END + timedelta(days=7), jobs=DIGESTS)

    assert "new@haarlem.example" not in first
    assert ["new@haarlem.example"] == [
        row.to_addr for row in _outbox(runtime, "digest") if "new@" in row.to_addr
    ]


_TICK = (
    "import sys; from datetime import datetime; from pathlib import Path;"
    "from mailflow.app.digests import JOBS; from mailflow.app.runtime import build_runtime;"
    "from mailflow.app.schedule import tick; from mailflow.config import load_settings;"
    "tick(build_runtime(load_settings(Path(sys.argv[1]))), datetime.fromisoformat(sys.argv[2]),"
    " jobs={'member_digests': JOBS['member_digests']})"
)


def test_a_digest_run_killed_halfway_and_run_again_sends_each_digest_once(
    runtime: Runtime, config_path: Path
):
    """SIGKILL during a real digest run of 300 members, then a second run: one digest each."""
    _circular(runtime)
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        for index in range(297):
            contact = repo.contact_for(session, f"m{index}@haarlem.example", "", LONG_AGO)
            seat(session, group, contact, "member", LONG_AGO)

    def digests() -> int:
        with runtime.sessions() as session:
            kind = OutboxMessage.kind == "digest"
            return session.scalar(select(func.count(OutboxMessage.id)).where(kind)) or 0

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", _TICK, str(config_path), WEEK_END.isoformat()]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and digests() < 20:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    halfway = digests()
    assert 0 < halfway < 300, "the run was to be killed halfway"

    result = tick(runtime, WEEK_END, jobs=DIGESTS)

    assert 300 - halfway == result.queued["member_digests"]
    counts = Counter(row.to_addr for row in _outbox(runtime, "digest"))
    assert 300 == len(counts)
    assert {1} == set(counts.values())


# -- the network digest -----------------------------------------------------------------------------------


def test_the_network_digest_reaches_every_participant_and_partner_contact_and_the_secretariat(
    runtime: Runtime,
):
    """Contacts of Participants and Strategic Partners (members or not) but not off; a secretariat copy."""
    _circular(runtime)
    _schedule(runtime)
    with runtime.sessions.begin() as session:
        for email, digest in (
            ("dora@catalonia.example", "weekly"),  # a Strategic Partner, in no group
            ("sam@supplier.example", "weekly"),  # not in the network
            ("no@haarlem.example", "off"),
        ):
            repo.contact_for(session, email, "", IN_WEEK).digest = digest
        session.execute(update(Group).where(Group.slug == "ict").values(status="forming"))

    first = tick(runtime, MONTH_END + timedelta(minutes=5), jobs=NETWORK)
    again = tick(runtime, MONTH_END + timedelta(days=3), jobs=NETWORK)

    digests = _by_recipient(runtime, "network_digest")
    secretariat = runtime.secretariat_address
    assert {
        "anna@ghent.example",
        "bo@malmo.example",
        "cy@lyon.example",
        "dora@catalonia.example",
        secretariat,
    } == set(digests)
    # Once the secretariat's copy (queued last) is in, the period's run is complete and not built again.
    assert (5, 0, 0) == (
        first.queued["network_digest"],
        again.queued["network_digest"],
        again.already["network_digest"],
    )
    text = _text(digests["dora@catalonia.example"])
    assert "Procura+ Network interest groups: November 2026" == digests["dora@catalonia.example"]["Subject"]
    for expected in (
        "== Groups looking for participants == - Socially Responsible Public Procurement of ICT",
        "JOIN ict",
        "Criteria workshop",
        "Winter call Group: Circular Public Procurement",
        "DIGEST off",
    ):
        assert expected in text
    copy = digests[secretariat]
    assert copy["Subject"].startswith("[Copy] ")
    assert "copy of the network digest sent to 4 contacts" in _text(copy)
    assert copy["List-Id"] == digests["dora@catalonia.example"]["List-Id"]


def test_contacts_the_service_met_after_the_period_get_no_network_digest_and_nobody_means_no_copy(
    runtime: Runtime,
):
    """A contact first seen after the month ended is not sent that month's news; with no reader, no copy."""
    with runtime.sessions.begin() as session:
        repo.contact_for(session, "late@ghent.example", "", MONTH_END + timedelta(minutes=1))
    result = tick(runtime, MONTH_END + timedelta(minutes=2), jobs=NETWORK)
    assert 0 == result.queued["network_digest"]
    assert [] == _outbox(runtime, "network_digest")


def test_the_network_digest_is_not_sent_when_there_is_nothing_to_tell(runtime: Runtime):
    """No new or forming group, no update, no meeting ahead: no network digest, not even the copy."""
    _quiet_groups(runtime)
    with runtime.sessions.begin() as session:
        session.execute(update(Group).where(Group.slug == "circular").values(status="active"))
        repo.contact_for(session, "dora@catalonia.example", "", IN_WEEK)
    result = tick(runtime, MONTH_END, jobs=NETWORK)
    assert 0 == result.queued["network_digest"]


# -- preferences by email ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "choice"), [("DIGEST monthly", "monthly"), ("DIGEST off", "off")])
def test_digest_command_sets_the_choice_and_is_acknowledged(runtime: Runtime, subject: str, choice: str):
    """DIGEST monthly|off (off is what the List-Unsubscribe mailto sends) changes the contact's choice."""
    _circular(runtime)
    intent = _handle(runtime, request_mail("cy@lyon.example", subject, ""), handle_digest)

    assert (IntentKind.DIGEST, choice) == (intent.kind, intent.topic)
    assert choice == _digest_choice(runtime, "cy@lyon.example")
    [ack] = _by_recipient(runtime, "digest_preference").values()
    assert "auto-replied" == ack["Auto-Submitted"]
    expected = "Digests switched off" if choice == "off" else "Your digest now comes monthly"
    assert expected == ack["Subject"]
    assert "DIGEST weekly every Monday at 08:00" in _text(ack)
    with runtime.sessions() as session:
        event = session.scalars(select(Event).where(Event.kind == "digest_preference")).one()
    assert ("weekly", choice, "cy@lyon.example") == (event.from_state, event.to_state, event.actor)
    tick(runtime, MONTH_END, jobs=DIGESTS)
    assert ("monthly" if choice == "monthly" else None) == next(
        (row.subject.split()[1] for row in _outbox(runtime, "digest") if row.to_addr == "cy@lyon.example"),
        None,
    )


def test_an_unclear_digest_command_explains_the_choices_and_changes_nothing(runtime: Runtime):
    """DIGEST sometimes: the same template, saying what the three choices are."""
    _circular(runtime)
    _handle(runtime, request_mail("cy@lyon.example", "DIGEST sometimes", ""), handle_digest)
    assert "weekly" == _digest_choice(runtime, "cy@lyon.example")
    [ack] = _by_recipient(runtime, "digest_preference").values()
    assert "Digests: weekly, monthly or off" == ack["Subject"]
    text = _text(ack)
    assert "could not tell" in text
    for choice in ("DIGEST weekly", "DIGEST monthly", "DIGEST off"):
        assert choice in text


def test_the_list_unsubscribe_mailto_through_the_pipeline_switches_digests_off(runtime: Runtime):
    """The mail a client sends for List-Unsubscribe (subject DIGEST off) goes through the real pipeline."""
    _circular(runtime)
    tick(runtime, WEEK_END, jobs=DIGESTS)
    header = _by_recipient(runtime, "digest")["cy@lyon.example"]["List-Unsubscribe"]
    address, _, query = header.strip("<>").removeprefix("mailto:").partition("?subject=")
    raw = request_mail("cy@lyon.example", query.replace("%20", " "), "", to=address)

    Pipeline(runtime).accept(raw, "file", "")
    Pipeline(runtime).accept(request_mail("bo@malmo.example", "DIGEST monthly", ""), "file", "")

    assert ("off", "monthly") == (
        _digest_choice(runtime, "cy@lyon.example"),
        _digest_choice(runtime, "bo@malmo.example"),
    )
    assert {"cy@lyon.example", "bo@malmo.example"} == set(_by_recipient(runtime, "digest_preference"))
    _update(
        runtime, "circular", "anna@ghent.example", "Next steps", "A survey.", at=WEEK_END + timedelta(days=1)
    )
    before = len(_outbox(runtime, "digest"))
    tick(runtime, WEEK_END + timedelta(days=7), jobs=DIGESTS)
    # Anna's week, Bo's month of November (the month ended on the 1st); nothing for Cy.
    assert {("anna@ghent.example", "weekly"), ("bo@malmo.example", "monthly")} == {
        (row.to_addr, row.subject.split()[1]) for row in _outbox(runtime, "digest")[before:]
    }


# -- replies to a digest ----------------------------------------------------------------------------------


def test_a_reply_to_a_digest_is_told_how_to_reach_the_group(runtime: Runtime):
    """The member's only group is clear: the note gives its facilitator's address."""
    _circular(runtime)
    tick(runtime, WEEK_END, jobs=DIGESTS)
    [digest] = [row for row in _outbox(runtime, "digest") if row.to_addr == "cy@lyon.example"]
    raw = gmail_reply(digest.raw, "cy@lyon.example", "Thanks! See you at the call.")
    parsed = parse_message(raw, max_bytes=10**7, max_parts=100, max_depth=10)
    assert is_digest_reply(parsed, "network.example")

    _handle(runtime, raw, handle_digest_reply)

    [note] = _by_recipient(runtime, "digest_reply").values()
    assert "How to reach Circular Public Procurement" == note["Subject"]
    assert "write to its facilitator: anna@ghent.example" in _text(note)
    assert f"<{parsed.message_id}>" == note["In-Reply-To"]


def test_a_reply_to_a_digest_from_someone_in_several_groups_gets_the_commands(runtime: Runtime):
    """No group named and several groups: the note lists the commands and the secretariat."""
    _circular(runtime)
    _member(runtime, "food", "cy@lyon.example")
    _update(runtime, "food", "x@malmo.example", "Menus", "Seasonal menus.")
    tick(runtime, WEEK_END, jobs=DIGESTS)
    [digest] = [row for row in _outbox(runtime, "digest") if row.to_addr == "cy@lyon.example"]
    _handle(runtime, gmail_reply(digest.raw, "cy@lyon.example", "Thanks!"), handle_digest_reply)
    [note] = _by_recipient(runtime, "digest_reply").values()
    text = _text(note)
    assert "How to reach your interest group" == note["Subject"]
    assert runtime.secretariat_address in text
    assert "JOIN <group>" in text


def test_a_reply_to_a_digest_through_the_pipeline_gets_the_note(runtime: Runtime):
    """A free-text reply to a digest, through the real pipeline, gets digest_reply and no help mail."""
    _circular(runtime)
    tick(runtime, WEEK_END, jobs=DIGESTS)
    [digest] = [row for row in _outbox(runtime, "digest") if row.to_addr == "bo@malmo.example"]
    Pipeline(runtime).accept(
        gmail_reply(digest.raw, "bo@malmo.example", "Thanks, see you there!"), "file", ""
    )
    assert {"bo@malmo.example"} == set(_by_recipient(runtime, "digest_reply"))
    assert [] == _outbox(runtime, "help")


def test_two_digest_commands_in_one_batch_read_as_one_at_a_time(runtime: Runtime):
    """With a monthly default, DIGEST weekly then DIGEST off: the second sees the first, batched or not.

    A batch keeps its audit rows for its end; the choice made earlier in the batch must still count.
    """
    _circular(runtime)
    settings = runtime.settings.model_copy(
        update={"digests": runtime.settings.digests.model_copy(update={"default": "monthly"})}
    )
    monthly = Runtime(settings, runtime.engine, runtime.sessions, runtime.templates, clock=runtime.clock)
    pipeline = Pipeline(monthly)
    for subject in ("DIGEST weekly", "DIGEST off"):
        pipeline.accept(request_mail("anna@ghent.example", subject, ""), "file", "")
    pipeline.accept_many(
        [
            (request_mail("bo@malmo.example", subject, ""), "file", "")
            for subject in ("DIGEST weekly", "DIGEST off")
        ]
    )

    with runtime.sessions() as session:
        events = session.scalars(
            select(Event).where(Event.kind == "digest_preference").order_by(Event.id)
        ).all()
    changes = [(e.actor, e.from_state, e.to_state) for e in events]
    assert [
        ("anna@ghent.example", "monthly", "weekly"),
        ("anna@ghent.example", "weekly", "off"),
        ("bo@malmo.example", "monthly", "weekly"),
        ("bo@malmo.example", "weekly", "off"),
    ] == changes
