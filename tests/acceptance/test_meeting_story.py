"""Meetings end to end: through a real Dovecot mailbox, `mailflow poll|send --once` and a real SMTP relay.

A group is built the way the service builds it: a facilitator named in config, members who ask to JOIN by
email and are approved with `mailflow approve`. The facilitator then schedules, changes and cancels meetings
by email (and the operator by CLI); the members' calendar clients answer with iMIP REPLY messages shaped like
Outlook's, Apple's, Gmail's and Thunderbird's. On SQLite and PostgreSQL.

Every text/calendar part that reaches the relay in these scenarios is kept, and the last test hands them all
to ical.js (tests/interop/ical_check.mjs), the parser Thunderbird uses, which checks the SPEC §4 rules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
import pytest

from mailflow.cli import main
from mailflow.testing import DEMO_REGISTRY, request_mail, rsvp_mail, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.sink import SmtpSink

CHECKER = Path(__file__).parents[1] / "interop" / "ical_check.mjs"
FACILITATOR = "fiona@lyon.example"
MEMBERS = ("anna@ghent.example", "bo@malmo.example", "eva@haarlem.example", "pere@catalonia.example")
CLIENTS = ("outlook", "apple", "gmail", "thunderbird")
MEETING_KINDS = ("meeting_invitation", "meeting_updated", "meeting_cancelled")

GROUPS = f"""
[[groups]]
slug = "circular"
name = "Circular Public Procurement"
aliases = ["circular", "circular procurement", "circular economy"]
status = "forming"
facilitator = "{FACILITATOR}"

[[groups]]
slug = "food"
name = "Sustainable and Healthy Food Procurement"
aliases = ["food", "catering"]
status = "active"
"""

SCHEDULE_BODY = """Dear colleagues,

When: 12 March 2027, 14:00 CET
Duration: 90 minutes
Kind: web
Link: https://meet.example/circular-spring
Title: Spring exchange

Best regards,
Fiona
"""


@dataclass(frozen=True, slots=True)
class Collected:
    """One text/calendar part that reached the relay, with what ical.js must read from it."""

    label: str
    data: bytes
    expected: dict[str, Any] | None


CALENDARS: list[Collected] = []
"""Filled by every scenario's `send --once`; read by the interop test at the end of the module."""


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _utc_text(moment: datetime | str) -> str:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Sent:
    """One message the relay received."""

    to: tuple[str, ...]
    kind: str
    message: EmailMessage

    @property
    def raw(self) -> bytes:
        """The message as the recipient's client would hold it."""
        return self.message.as_bytes()

    @property
    def text(self) -> str:
        """The plain-text body."""
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None, "no text/plain part"
        return str(body.get_content())

    def calendar_part(self) -> tuple[str, bytes] | None:
        """The ``method=`` parameter and the decoded bytes of the text/calendar part, or None."""
        for part in self.message.walk():
            if part.get_content_type() == "text/calendar":
                data = part.get_payload(decode=True)
                assert isinstance(data, bytes)
                return str(part.get_param("method") or ""), data
        return None

    def attachment(self) -> bytes | None:
        """The decoded bytes of the ``invite.ics`` attachment, or None."""
        for part in self.message.walk():
            if part.get_filename() == "invite.ics":
                data = part.get_payload(decode=True)
                assert isinstance(data, bytes)
                return data
        return None

    def invite(self) -> Invite:
        """The calendar this mail carries."""
        found = self.calendar_part()
        assert found is not None, f"{self.kind} to {self.to} carries no text/calendar part"
        return Invite(found[0], found[1])


@dataclass
class Invite:
    """An iCalendar object read back with the icalendar library."""

    method_param: str
    data: bytes
    calendar: icalendar.Calendar = field(init=False)

    def __post_init__(self) -> None:
        """Parse the data."""
        self.calendar = icalendar.Calendar.from_ical(self.data)

    @property
    def method(self) -> str:
        """The VCALENDAR's METHOD."""
        return str(self.calendar["METHOD"])

    @property
    def events(self) -> list[icalendar.Event]:
        """Every VEVENT, master first when there is one."""
        return list(self.calendar.walk("VEVENT"))

    @property
    def master(self) -> icalendar.Event:
        """The VEVENT without RECURRENCE-ID (the series or the single meeting)."""
        [master] = [e for e in self.events if "RECURRENCE-ID" not in e]
        return master

    @property
    def uid(self) -> str:
        """The UID every VEVENT shares."""
        uids = {str(e["UID"]) for e in self.events}
        assert len(uids) == 1, uids
        return uids.pop()

    @property
    def sequence(self) -> int:
        """The master's SEQUENCE (or the only VEVENT's)."""
        event = next((e for e in self.events if "RECURRENCE-ID" not in e), self.events[0])
        return int(event["SEQUENCE"])

    def attendees(self) -> list[str]:
        """The ATTENDEE addresses of every VEVENT, lowercase, without ``mailto:``."""
        found: list[str] = []
        for event in self.events:
            values = event.get("ATTENDEE", [])
            found.extend(
                str(value).lower().removeprefix("mailto:")
                for value in (values if isinstance(values, list) else [values])
            )
        return found


class Batch(list[Sent]):
    """What one `send --once` delivered to the relay."""

    def of(self, kind: str, to: str | None = None) -> list[Sent]:
        """The mails of one kind, to one address when given."""
        return [s for s in self if s.kind == kind and (to is None or to in s.to)]

    def recipients(self, kind: str) -> list[str]:
        """Every recipient of one kind of mail, sorted, repeats kept."""
        return sorted(address for s in self.of(kind) for address in s.to)


class Story:
    """Drives `mailflow` like an operator and delivers mail into Dovecot like the members' clients."""

    def __init__(
        self,
        config: Path,
        capsys: pytest.CaptureFixture[str],
        dovecot: DovecotServer,
        sink: SmtpSink,
        label: str,
    ) -> None:
        self.config, self.capsys, self.dovecot, self.sink, self.label = config, capsys, dovecot, sink, label
        self._seen = 0

    def run(self, *args: str) -> tuple[int, str, str]:
        """Run one command; return its exit status, stdout and stderr."""
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        """Run one command that must succeed; return its stdout."""
        code, out, err = self.run(*args)
        assert code == 0, f"mailflow {' '.join(args)} exited {code}: {err}"
        return out

    def rows(self, *args: str) -> list[dict[str, Any]]:
        """A `--json` listing."""
        result = json.loads(self.ok(*args, "--json"))
        assert isinstance(result, list)
        return result

    def meetings(self) -> list[dict[str, Any]]:
        """`mailflow meetings --json`."""
        return self.rows("meetings")

    def meeting(self, meeting_id: int) -> dict[str, Any]:
        """One row of `mailflow meetings --json`."""
        [row] = [r for r in self.meetings() if r["id"] == meeting_id]
        return row

    def active_members(self) -> list[str]:
        """The circular group's active members' addresses, sorted."""
        return sorted(r["contact_email"] for r in self.rows("members", "circular") if r["status"] == "active")

    def mail(self, sender: str, subject: str, body: str = "") -> None:
        """A person's mail delivered into the service's mailbox."""
        self.dovecot.deliver(request_mail(sender, subject, body))

    def send(self) -> Batch:
        """`send --once`; return what reached the relay, keeping every calendar part for ical.js."""
        self.ok("send", "--once")
        received = self.sink.messages()
        messages = [(item.rcpt_tos, _parse(item.data)) for item in received[self._seen :]]
        batch = Batch(Sent(to, str(message["X-Mailflow"]), message) for to, message in messages)
        self._seen = len(received)
        self._collect(batch)
        return batch

    def round(self) -> Batch:
        """`poll --once` then `send --once`."""
        self.ok("poll", "--once")
        return self.send()

    def _collect(self, batch: Batch) -> None:
        rows: dict[str, dict[str, Any]] | None = None
        for sent in batch:
            found = sent.calendar_part()
            assert (found is not None) == (sent.kind in MEETING_KINDS), f"{sent.kind} with calendar: {found}"
            if found is None:
                continue
            if rows is None:
                rows = {r["uid"]: r for r in self.meetings()}
            invite = Invite(*found)
            expected = _expected(invite, rows.get(invite.uid))
            label = f"{self.label}-{len(CALENDARS):03d}-{sent.kind}-{sent.to[0].partition('@')[0]}"
            CALENDARS.append(Collected(label, found[1], expected))

    def build_group(self, members: tuple[str, ...] = MEMBERS) -> None:
        """Members ask to JOIN by email; the operator approves each with `mailflow approve ID`."""
        for member in members:
            self.mail(member, "JOIN circular", "We would like to take part in the circular group.")
        self.round()
        pending = [r for r in self.rows("requests") if r["state"] == "pending_approval"]
        assert sorted(r["contact_email"] for r in pending) == sorted(members)
        for row in pending:
            self.ok("approve", str(row["id"]))
        self.send()

    def schedule_by_mail(self, body: str = SCHEDULE_BODY) -> tuple[int, Batch]:
        """The facilitator mails MEETING circular; return the new meeting's id and what was sent."""
        self.mail(FACILITATOR, "MEETING circular", body)
        batch = self.round()
        [confirmed] = batch.of("meeting_confirmed", FACILITATOR)
        found = re.search(r"meeting #(\d+)", str(confirmed.message["Subject"]))
        assert found is not None, confirmed.message["Subject"]
        return int(found[1]), batch


def _expected(invite: Invite, row: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ical.js must read (master start and end, the series' starts), as `meetings --json` has it."""
    if row is None or not any("RECURRENCE-ID" not in e for e in invite.events):
        return None
    expected: dict[str, Any] = {"start_utc": _utc_text(row["start"]), "end_utc": _utc_text(row["end"])}
    if row["occurrences"] and invite.method == "REQUEST":
        expected["occurrences_utc"] = [_utc_text(o["start"]) for o in row["occurrences"]]
    return expected


@pytest.fixture
def service_config(tmp_path: Path, database_url: str, dovecot: DovecotServer, sink: SmtpSink) -> Path:
    """A config reading the test Dovecot (emptied) and sending through the test relay, a facilitator named."""
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
    return write_config(tmp_path, database_url, extra=imap, smtp=smtp, groups=GROUPS)


@pytest.fixture
def story(
    request: pytest.FixtureRequest,
    service_config: Path,
    dovecot: DovecotServer,
    sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> Story:
    """The service on the test database with the demo registry imported.

    `init` runs again after the import, as an operator does after naming a facilitator in config.
    """
    label = f"{request.node.callspec.params['database_url']}-{request.node.originalname}"
    result = Story(service_config, capsys, dovecot, sink, label)
    result.ok("init")
    registry = service_config.parent / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    result.ok("org", "import", str(registry))
    result.ok("init")
    return result


def _assert_one_each(batch: Batch, kind: str, members: list[str], uid: str, method: str) -> dict[str, Invite]:
    """Each member got exactly one ``kind`` mail, addressed to them alone, for ``uid`` with ``method``."""
    assert batch.recipients(kind) == members
    invites = {}
    for member in members:
        [sent] = batch.of(kind, member)
        assert sent.to == (member,)
        invite = sent.invite()
        assert (invite.method_param.upper(), invite.method) == (method, method)
        assert invite.uid == uid
        assert invite.attendees() == [member] * len(invite.events)
        invites[member] = invite
    return invites


def test_facilitator_schedules_by_mail_and_every_member_is_invited(story: Story):
    """MEETING circular from the facilitator: one REQUEST per active member, a confirmation naming the id."""
    story.build_group()
    members = story.active_members()
    assert members == sorted([FACILITATOR, *MEMBERS])

    meeting_id, batch = story.schedule_by_mail()

    row = story.meeting(meeting_id)
    assert (row["group_slug"], row["status"], row["kind"], row["sequence"]) == (
        "circular",
        "scheduled",
        "web",
        0,
    )
    assert _utc_text(row["start"]) == "2027-03-12T13:00:00Z"
    assert _utc_text(row["end"]) == "2027-03-12T14:30:00Z"
    assert sorted(a["email"] for a in row["attendees"]) == members
    invites = _assert_one_each(batch, "meeting_invitation", members, row["uid"], "REQUEST")
    for member, invite in invites.items():
        assert invite.sequence == 0
        assert _utc_text(invite.master.decoded("DTSTART")) == "2027-03-12T13:00:00Z"
        [sent] = batch.of("meeting_invitation", member)
        assert sent.attachment() == invite.data, "invite.ics must be byte-identical to the text/calendar part"
        assert "https://meet.example/circular-spring" in sent.text
    [confirmed] = batch.of("meeting_confirmed", FACILITATOR)
    assert f"meeting #{meeting_id}" in str(confirmed.message["Subject"])
    assert f"Meeting #{meeting_id} is scheduled" in confirmed.text
    assert f"MEETING UPDATE {meeting_id}" in confirmed.text
    assert {s.kind for s in batch} == {"meeting_invitation", "meeting_confirmed"}
    assert [] == story.dovecot.list_uids("INBOX")


def test_rsvps_from_four_clients_update_partstat_and_are_never_answered(story: Story):
    """Replies shaped like Outlook, Apple, Gmail and Thunderbird set each PARTSTAT; no mail answers them."""
    story.build_group()
    meeting_id, batch = story.schedule_by_mail()
    answers = dict(zip(MEMBERS, ("ACCEPTED", "DECLINED", "TENTATIVE", "ACCEPTED"), strict=True))
    for member, client in zip(MEMBERS, CLIENTS, strict=True):
        [invitation] = batch.of("meeting_invitation", member)
        story.dovecot.deliver(rsvp_mail(invitation.raw, member, answers[member], client=client))
    outbox_before = len(story.rows("outbox"))
    processed_before = len(story.dovecot.list_uids("Processed"))

    story.ok("poll", "--once")

    partstats = {a["email"]: a["partstat"] for a in story.meeting(meeting_id)["attendees"]}
    assert partstats == {**answers, FACILITATOR: "NEEDS-ACTION"}
    assert [] == story.dovecot.list_uids("INBOX")
    assert len(story.dovecot.list_uids("Processed")) == processed_before + 4
    assert len(story.rows("outbox")) == outbox_before
    assert story.send() == []


def test_update_then_cancel_by_mail_keep_the_uid_and_raise_the_sequence(story: Story):
    """MEETING UPDATE moves the meeting (answers reset), MEETING CANCEL cancels it; same UID, SEQUENCE up."""
    story.build_group()
    meeting_id, batch = story.schedule_by_mail()
    members = story.active_members()
    uid = story.meeting(meeting_id)["uid"]
    [invitation] = batch.of("meeting_invitation", MEMBERS[0])
    story.dovecot.deliver(rsvp_mail(invitation.raw, MEMBERS[0], "ACCEPTED"))
    story.ok("poll", "--once")
    assert {a["email"]: a["partstat"] for a in story.meeting(meeting_id)["attendees"]}[
        MEMBERS[0]
    ] == "ACCEPTED"

    story.mail(FACILITATOR, f"MEETING UPDATE {meeting_id}", "Link: https://meet.example/circular-new\n")
    relinked = story.round()

    row = story.meeting(meeting_id)
    assert (row["uid"], row["join_url"], _utc_text(row["start"])) == (
        uid,
        "https://meet.example/circular-new",
        "2027-03-12T13:00:00Z",
    )
    kept = {a["email"]: a["partstat"] for a in row["attendees"]}
    assert kept[MEMBERS[0]] == "ACCEPTED", "a new link keeps the answers"
    relinked_sequence = row["sequence"]
    invites = _assert_one_each(relinked, "meeting_updated", members, uid, "REQUEST")
    for invite in invites.values():
        assert invite.sequence == relinked_sequence
        assert str(invite.master["URL"]) == "https://meet.example/circular-new"
    assert str(invites[MEMBERS[0]].master["ATTENDEE"].params["PARTSTAT"]) == "ACCEPTED"

    story.mail(FACILITATOR, f"MEETING UPDATE {meeting_id}", "When: 19 March 2027, 15:00 CET\n")
    updated = story.round()

    row = story.meeting(meeting_id)
    moved_sequence = row["sequence"]
    assert (row["uid"], row["status"]) == (uid, "scheduled")
    assert moved_sequence > relinked_sequence
    assert _utc_text(row["start"]) == "2027-03-19T14:00:00Z"
    assert _utc_text(row["end"]) == "2027-03-19T15:30:00Z"
    assert {a["partstat"] for a in row["attendees"]} == {"NEEDS-ACTION"}, "a new time resets the answers"
    for invite in _assert_one_each(updated, "meeting_updated", members, uid, "REQUEST").values():
        assert invite.sequence == moved_sequence
        assert _utc_text(invite.master.decoded("DTSTART")) == "2027-03-19T14:00:00Z"
        assert str(invite.master["ATTENDEE"].params["PARTSTAT"]) == "NEEDS-ACTION"
    [confirmed] = updated.of("meeting_confirmed", FACILITATOR)
    assert f"Meeting #{meeting_id} is updated" in confirmed.text

    story.mail(FACILITATOR, f"MEETING CANCEL {meeting_id}", "Sorry, we have to call it off.\n")
    cancelled = story.round()

    row = story.meeting(meeting_id)
    assert (row["uid"], row["status"]) == (uid, "cancelled")
    assert row["sequence"] > moved_sequence
    for invite in _assert_one_each(cancelled, "meeting_cancelled", members, uid, "CANCEL").values():
        assert invite.sequence == row["sequence"]
        assert {str(e["STATUS"]) for e in invite.events} == {"CANCELLED"}
        assert _utc_text(invite.master.decoded("DTSTART")) == "2027-03-19T14:00:00Z"
    confirmations = cancelled.of("meeting_confirmed", FACILITATOR)
    assert len(confirmations) == 1, (
        f"the facilitator's MEETING CANCEL got {len(confirmations)} confirmations; "
        f"the facilitator got {[s.kind for s in cancelled if FACILITATOR in s.to]}"
    )
    assert f"Meeting #{meeting_id} is cancelled" in confirmations[0].text


def test_meeting_help_for_a_member_who_is_not_facilitator_and_for_a_missing_duration(story: Story):
    """A plain member may not schedule by email; a facilitator's mail with no duration gets help naming it."""
    story.build_group()

    story.mail(MEMBERS[0], "MEETING circular", SCHEDULE_BODY)
    refused = story.round()

    assert [s.kind for s in refused] == ["meeting_help"]
    [help_mail] = refused.of("meeting_help", MEMBERS[0])
    assert "Only the facilitator of Circular Public Procurement" in help_mail.text
    assert story.meetings() == []

    story.mail(FACILITATOR, "MEETING circular", SCHEDULE_BODY.replace("Duration: 90 minutes\n", ""))
    incomplete = story.round()

    assert [s.kind for s in incomplete] == ["meeting_help"]
    [help_mail] = incomplete.of("meeting_help", FACILITATOR)
    assert "Some details are missing or unclear" in help_mail.text
    assert "no duration was found" in help_mail.text
    assert story.meetings() == []


def test_recurring_series_by_cli_with_one_occurrence_moved_and_one_cancelled(story: Story):
    """`--repeat` makes a series; `--occurrence` moves or cancels one; RSVPs per occurrence are kept apart."""
    story.build_group()
    members = story.active_members()
    meeting_id = int(
        story.ok(
            "meeting",
            "schedule",
            "circular",
            "--start",
            "2027-03-09T14:00",
            "--duration",
            "60",
            "--kind",
            "web",
            "--tz",
            "Europe/Brussels",
            "--url",
            "https://meet.example/circular-series",
            "--repeat",
            "every second Tuesday for six months",
        )
    )
    invited = story.send()
    row = story.meeting(meeting_id)
    uid = row["uid"]
    starts = [_utc_text(o["start"]) for o in row["occurrences"]]
    assert starts[:4] == [
        "2027-03-09T13:00:00Z",
        "2027-03-23T13:00:00Z",
        "2027-04-06T12:00:00Z",  # summer time from 28 March: 14:00 CEST
        "2027-04-20T12:00:00Z",
    ]
    assert len(starts) >= 12
    for invite in _assert_one_each(invited, "meeting_invitation", members, uid, "REQUEST").values():
        assert "FREQ=WEEKLY" in invite.master["RRULE"].to_ical().decode()

    story.ok(
        "meeting",
        "update",
        str(meeting_id),
        "--occurrence",
        "2027-03-23T14:00",
        "--start",
        "2027-03-24T15:00",
    )
    moved = story.send()
    for invite in _assert_one_each(moved, "meeting_updated", members, uid, "REQUEST").values():
        assert invite.sequence == 1
        [override] = [e for e in invite.events if "RECURRENCE-ID" in e]
        assert _utc_text(override.decoded("RECURRENCE-ID")) == "2027-03-23T13:00:00Z"
        assert _utc_text(override.decoded("DTSTART")) == "2027-03-24T14:00:00Z"

    story.ok("meeting", "cancel", str(meeting_id), "--occurrence", "2027-04-06T14:00")
    cancelled = story.send()
    for invite in _assert_one_each(cancelled, "meeting_cancelled", members, uid, "CANCEL").values():
        assert invite.sequence == 2
        ids = {_utc_text(e.decoded("RECURRENCE-ID")) for e in invite.events if "RECURRENCE-ID" in e}
        assert "2027-04-06T12:00:00Z" in ids

    row = story.meeting(meeting_id)
    assert (row["status"], row["sequence"]) == ("scheduled", 2)
    now = {o["recurrence_id"]: _utc_text(o["start"]) for o in row["occurrences"]}
    assert now[next(k for k in now if _utc_text(k) == "2027-03-23T13:00:00Z")] == "2027-03-24T14:00:00Z"
    assert "2027-04-06T12:00:00Z" not in {_utc_text(k) for k in now}
    assert len(now) == len(starts) - 1

    [latest] = moved.of("meeting_updated", MEMBERS[1])
    story.dovecot.deliver(
        rsvp_mail(latest.raw, MEMBERS[1], "DECLINED", client="gmail", occurrence="20270323T130000Z")
    )
    story.dovecot.deliver(
        rsvp_mail(latest.raw, MEMBERS[2], "ACCEPTED", client="apple", occurrence="20270420T120000Z")
    )
    story.dovecot.deliver(rsvp_mail(latest.raw, MEMBERS[3], "ACCEPTED", client="outlook"))
    assert story.round() == []

    row = story.meeting(meeting_id)
    assert sorted((a["email"], a["occurrence"], a["partstat"]) for a in row["occurrence_answers"]) == [
        (MEMBERS[1], "20270323T130000Z", "DECLINED"),
        (MEMBERS[2], "20270420T120000Z", "ACCEPTED"),
    ]
    partstats = {a["email"]: a["partstat"] for a in row["attendees"]}
    assert (partstats[MEMBERS[1]], partstats[MEMBERS[2]], partstats[MEMBERS[3]]) == (
        "NEEDS-ACTION",
        "NEEDS-ACTION",
        "ACCEPTED",
    )


def test_a_member_who_joins_later_is_invited_and_one_who_leaves_gets_cancellations(story: Story):
    """Joining brings a REQUEST per meeting ahead (not the cancelled one); LEAVE brings a CANCEL for each."""
    story.build_group(MEMBERS[:3])
    ids = [
        story.schedule_by_mail(SCHEDULE_BODY.replace("12 March", day))[0] for day in ("12 March", "9 April")
    ]
    dropped, _ = story.schedule_by_mail(SCHEDULE_BODY.replace("12 March", "7 May"))
    story.ok("meeting", "cancel", str(dropped))
    story.send()
    uids = {story.meeting(i)["uid"] for i in ids}
    newcomer = MEMBERS[3]

    story.mail(newcomer, "JOIN circular", "Catalonia would like to join the circular group.")
    story.round()
    [pending] = [r for r in story.rows("requests") if r["state"] == "pending_approval"]
    story.ok("approve", str(pending["id"]))
    joined = story.send()

    invitations = joined.of("meeting_invitation")
    assert [s.to for s in invitations] == [(newcomer,), (newcomer,)]
    assert {s.invite().uid for s in invitations} == uids
    for sent in invitations:
        invite = sent.invite()
        assert invite.method == "REQUEST"
        assert invite.attendees() == [newcomer]
    assert joined.of("welcome", newcomer)
    for meeting_id in ids:
        assert newcomer in {a["email"] for a in story.meeting(meeting_id)["attendees"]}

    leaver = MEMBERS[0]
    story.mail(leaver, "LEAVE circular", "Ghent has to step back, thank you all.")
    left = story.round()

    cancellations = left.of("meeting_cancelled")
    assert [s.to for s in cancellations] == [(leaver,), (leaver,)]
    for sent in cancellations:
        invite = sent.invite()
        assert (invite.method_param.upper(), invite.method) == ("CANCEL", "CANCEL")
        assert invite.attendees() == [leaver]
        assert {str(e["STATUS"]) for e in invite.events} == {"CANCELLED"}
    assert {s.invite().uid for s in cancellations} == uids
    assert leaver not in story.active_members()
    for meeting_id in ids:
        assert leaver not in {a["email"] for a in story.meeting(meeting_id)["attendees"]}


def test_two_days_budget_is_refused_with_the_arithmetic_by_cli_and_by_mail(story: Story):
    """Past 16 h of meetings in 2027 is refused: by CLI with a non-zero exit, by mail with meeting_help."""
    story.build_group(MEMBERS[:3])
    common = ("--kind", "phone", "--dial-in", "+32 2 123 45 67", "--pin", "1234")
    story.ok("meeting", "schedule", "circular", "--start", "2027-03-09T09:00", "--duration", "900", *common)
    story.send()

    code, out, err = story.run(
        "meeting", "schedule", "circular", "--start", "2027-06-08T10:00", "--duration", "120", *common
    )
    assert code != 0
    assert out == ""
    for figure in ("2 h meeting", "in 2027 to 17 h", "16 h (two days of 8 h)"):
        assert figure in err, err
    assert len(story.meetings()) == 1
    assert story.send() == []

    over = SCHEDULE_BODY.replace("12 March 2027", "8 June 2027").replace("90 minutes", "2 hours")
    story.mail(FACILITATOR, "MEETING circular", over)
    refused = story.round()
    assert [s.kind for s in refused] == ["meeting_help"]
    text = " ".join(refused.of("meeting_help", FACILITATOR)[0].text.split())
    for figure in ("2 h meeting", "in 2027 to 17 h", "16 h (two days of 8 h)"):
        assert figure in text, text
    assert len(story.meetings()) == 1

    exact, within = story.schedule_by_mail(over.replace("2 hours", "60 minutes"))
    assert within.recipients("meeting_invitation") == story.active_members()
    assert story.meeting(exact)["duration_minutes"] == 60
    code, _, err = story.run(
        "meeting", "schedule", "circular", "--start", "2027-09-07T10:00", "--duration", "30", *common
    )
    assert code != 0
    assert "in 2027 to 16 h 30 min" in err, err
    assert len(story.meetings()) == 2


def _node_checker(report: Path, *files: Path) -> tuple[int, dict[str, Any]]:
    """Run ical_check.mjs with its report in a file: its process.exit() cuts a pipe's output at 64 KiB."""
    node = shutil.which("node")
    assert node is not None
    with report.open("wb") as output:
        done = subprocess.run([node, str(CHECKER), *map(str, files)], stdout=output, check=False, timeout=120)
    return done.returncode, json.loads(report.read_text(encoding="utf-8"))


def test_every_calendar_that_reached_the_relay_passes_ical_js(tmp_path: Path):
    """Every text/calendar part this module's scenarios sent is read by ical.js with no SPEC §4 violation."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (CI: apt-get install nodejs npm)")
    status, report = _node_checker(tmp_path / "probe.json")
    if "ical.js not found" in report.get("error", ""):
        pytest.skip("ical.js not found: cd DIR && npm init -y && npm install ical.js@2, then ICALJS_DIR=DIR")
    assert status == 2, report
    assert CALENDARS, "no calendar was collected: run the whole module, the scenarios feed this test"

    files = []
    for item in CALENDARS:
        path = tmp_path / f"{item.label}.ics"
        path.write_bytes(item.data)
        if item.expected is not None:
            path.with_suffix(".json").write_text(json.dumps(item.expected), encoding="utf-8")
        files.append(path)
    status, report = _node_checker(tmp_path / "report.json", *files)

    failures = {Path(f["file"]).stem: f["violations"] for f in report["files"] if not f["ok"]}
    assert (status, failures) == (0, {}), json.dumps(failures, indent=1)
    methods = {f["method"] for f in report["files"]}
    assert methods == {"REQUEST", "CANCEL"}
    assert any("occurrences_utc" in f["computed"] for f in report["files"]), "no series was expanded"
