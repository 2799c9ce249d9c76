"""Calendar invitations (SPEC §4): REQUEST/CANCEL bodies, VTIMEZONE, RSVPs from real clients, the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mailflow.core.calendar import (
    Attendee,
    CalendarError,
    Frequency,
    Kind,
    Meeting,
    Method,
    Occurrence,
    PartStat,
    Recurrence,
    Rsvp,
    Status,
    durations_by_year,
    invitation,
    invitations,
    meeting_budget,
    occurrences,
    read_reply,
)

ICS = Path(__file__).parent.parent / "data" / "ics"
BXL = ZoneInfo("Europe/Brussels")
STAMP = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
BOB = Attendee(email="bob@gent.example", name="Bob")
UNTIL = datetime(2027, 6, 30, 21, 59, 59, tzinfo=UTC)
NAIVE = datetime(2027, 3, 9, 14, 0)  # noqa: DTZ001 - a floating time, refused on purpose


def _meeting(**changes: object) -> Meeting:
    values: dict[str, object] = {
        "uid": "m-1@network.example",
        "sequence": 0,
        "summary": "Circular Procurement: kick-off",
        "start": datetime(2027, 3, 9, 14, 0, tzinfo=BXL),
        "duration": timedelta(minutes=90),
        "tzid": "Europe/Brussels",
        "kind": Kind.WEB,
        "organizer_email": "interest-groups@network.example",
        "organizer_name": "Anne Facilitator",
        "join_url": "https://meet.example/abc",
        "dial_in": "tel:+3221234567",
        "pin": "1234",
    }
    values.update(changes)
    return Meeting(**values)  # type: ignore[arg-type]


def _series(**changes: object) -> Meeting:
    rule = Recurrence(frequency=Frequency.WEEKLY, interval=2, byday=("TU",), until=UNTIL)
    return _meeting(recurrence=rule, **changes)


MOVED = Occurrence(
    recurrence_id=datetime(2027, 3, 23, 14, 0, tzinfo=BXL), start=datetime(2027, 3, 24, 15, 0, tzinfo=BXL)
)
CANCELLED = Occurrence(recurrence_id=datetime(2027, 4, 6, 14, 0, tzinfo=BXL), cancelled=True)


def _parse(data: bytes) -> icalendar.Calendar:
    calendar = icalendar.Calendar.from_ical(data)
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def _events(data: bytes) -> list[icalendar.Component]:
    return _parse(data).walk("VEVENT")


def _unfolded(data: bytes) -> list[str]:
    return data.decode("utf-8").replace("\r\n ", "").split("\r\n")


def _line(data: bytes, name: str) -> str:
    """The first unfolded content line of that name inside a VEVENT."""
    lines = _unfolded(data)
    events = lines[lines.index("BEGIN:VEVENT") :]
    return next(line for line in events if line.split(";")[0].split(":")[0] == name)


@pytest.mark.parametrize(
    ("tzid", "wall", "utc_start"),
    [
        ("Europe/Brussels", (2027, 3, 9, 14, 0), datetime(2027, 3, 9, 13, 0, tzinfo=UTC)),
        ("Europe/Brussels", (2027, 7, 6, 14, 0), datetime(2027, 7, 6, 12, 0, tzinfo=UTC)),
        ("America/New_York", (2027, 3, 9, 9, 0), datetime(2027, 3, 9, 14, 0, tzinfo=UTC)),
        ("Europe/London", (2027, 10, 26, 10, 0), datetime(2027, 10, 26, 9, 0, tzinfo=UTC)),
        ("Asia/Tokyo", (2027, 3, 9, 18, 0), datetime(2027, 3, 9, 9, 0, tzinfo=UTC)),
        ("Australia/Sydney", (2027, 3, 9, 20, 0), datetime(2027, 3, 9, 9, 0, tzinfo=UTC)),
        ("UTC", (2027, 3, 9, 13, 0), datetime(2027, 3, 9, 13, 0, tzinfo=UTC)),
    ],
)
def test_request_reads_back_at_the_right_instant(tzid, wall, utc_start):
    """A REQUEST read back by icalendar has METHOD, UID, SEQUENCE, DTSTAMP and the right start and end."""
    zone = UTC if tzid == "UTC" else ZoneInfo(tzid)
    meeting = _meeting(tzid=tzid, start=datetime(*wall, tzinfo=zone), sequence=3)
    data = invitation(meeting, BOB, Method.REQUEST, STAMP)
    calendar = _parse(data)
    (event,) = calendar.walk("VEVENT")
    assert "REQUEST" == str(calendar["METHOD"])
    assert "m-1@network.example" == str(event["UID"])
    assert 3 == event["SEQUENCE"]
    assert STAMP == event.decoded("DTSTAMP")
    assert "DTSTAMP:20270105T090000Z" in _unfolded(data)
    assert utc_start == event.decoded("DTSTART").astimezone(UTC)
    assert utc_start + timedelta(minutes=90) == event.decoded("DTEND").astimezone(UTC)
    if tzid == "UTC":
        assert _line(data, "DTSTART").endswith("Z")
        assert [] == calendar.walk("VTIMEZONE")
    else:
        assert tzid == event["DTSTART"].params["TZID"]
        assert [tzid] == [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")]


@pytest.mark.parametrize(
    ("tzid", "standard", "daylight"),
    [
        ("Europe/Brussels", ("-1SU", 10, 2, 1), ("-1SU", 3, 1, 2)),
        ("Europe/London", ("-1SU", 10, 1, 0), ("-1SU", 3, 0, 1)),
        ("America/New_York", ("1SU", 11, -4, -5), ("2SU", 3, -5, -4)),
        ("Australia/Sydney", ("1SU", 4, 11, 10), ("1SU", 10, 10, 11)),
    ],
)
def test_vtimezone_has_one_standard_and_one_daylight_with_yearly_rules(tzid, standard, daylight):
    """Outlook's shape: one STANDARD and one DAYLIGHT, each with a yearly RRULE, and never an RDATE."""
    data = invitation(
        _meeting(tzid=tzid, start=datetime(2027, 3, 9, 9, 0, tzinfo=ZoneInfo(tzid))), BOB, "REQUEST", STAMP
    )
    (vtimezone,) = _parse(data).walk("VTIMEZONE")
    assert ["STANDARD", "DAYLIGHT"] == [part.name for part in vtimezone.subcomponents]
    assert b"RDATE" not in data
    for part, (byday, month, offset_from, offset_to) in zip(
        vtimezone.subcomponents, (standard, daylight), strict=True
    ):
        rule = part["RRULE"]
        assert (["YEARLY"], [byday], [month]) == (rule["FREQ"], rule["BYDAY"], rule["BYMONTH"])
        assert timedelta(hours=offset_from) == part.decoded("TZOFFSETFROM")
        assert timedelta(hours=offset_to) == part.decoded("TZOFFSETTO")
        # The onset is the rule's first date, so that DTSTART and RRULE agree (RFC 5545 §3.8.5.3).
        assert month == part.decoded("DTSTART").month


@pytest.mark.parametrize(
    "tzid", ["Europe/Brussels", "Europe/London", "Europe/Dublin", "America/New_York", "Asia/Tokyo"]
)
def test_vtimezone_gives_zoneinfo_offsets_all_year(tzid):
    """Read by another implementation (dateutil via icalendar), the VTIMEZONE matches zoneinfo hourly."""
    data = invitation(
        _meeting(tzid=tzid, start=datetime(2027, 5, 4, 9, 0, tzinfo=ZoneInfo(tzid))), BOB, "REQUEST", STAMP
    )
    (vtimezone,) = _parse(data).walk("VTIMEZONE")
    written = vtimezone.to_tz(lookup_tzid=False)
    moment, zone = datetime(2027, 1, 1, tzinfo=UTC), ZoneInfo(tzid)
    while moment.year < 2029:
        assert moment.astimezone(zone).utcoffset() == moment.astimezone(written).utcoffset(), moment
        moment += timedelta(hours=1)


@pytest.mark.parametrize(("tzid", "offset"), [("Asia/Tokyo", 9), ("America/Sao_Paulo", -3)])
def test_zone_without_dst_gets_one_standard(tzid, offset):
    """A zone without daylight saving time gets a single STANDARD observance and no DAYLIGHT."""
    data = invitation(
        _meeting(tzid=tzid, start=datetime(2027, 3, 9, 9, 0, tzinfo=ZoneInfo(tzid))), BOB, "REQUEST", STAMP
    )
    (vtimezone,) = _parse(data).walk("VTIMEZONE")
    assert ["STANDARD"] == [part.name for part in vtimezone.subcomponents]
    assert timedelta(hours=offset) == vtimezone.subcomponents[0].decoded("TZOFFSETTO")
    assert b"RDATE" not in data


def test_icalendar_own_vtimezone_writes_rdate_lists():
    """Why calendar.py writes VTIMEZONE itself: icalendar 7's generator emits RDATE lists (SPEC §4)."""
    generated = icalendar.Timezone.from_tzid("Europe/Brussels").to_ical()
    assert b"RDATE" in generated
    assert 1 < generated.count(b"BEGIN:STANDARD")


def test_vtimezone_comes_before_the_events():
    """The VTIMEZONE is written before every VEVENT, as Outlook needs."""
    data = invitation(_series(), BOB, Method.REQUEST, STAMP, [MOVED])
    lines = _unfolded(data)
    assert lines.index("END:VTIMEZONE") < lines.index("BEGIN:VEVENT")


def test_lines_end_in_crlf_and_fold_at_75_octets_without_splitting_utf8():
    """Every physical line ends in CRLF, is at most 75 octets and is valid UTF-8 on its own."""
    summary = "Réunion des acheteurs — économie circulaire 🌍♻️ " * 4
    data = invitation(
        _meeting(summary=summary, description="Ordre du jour\nPoint 2; suite, fin"), BOB, "REQUEST", STAMP
    )
    assert data.endswith(b"\r\n")
    physical = data.split(b"\r\n")[:-1]
    assert all(b"\n" not in line and b"\r" not in line for line in physical)
    assert max(len(line) for line in physical) <= 75
    for line in physical:
        line.decode("utf-8")
    assert any(len(line) > 70 for line in physical)
    (event,) = _events(data)
    assert summary == str(event["SUMMARY"])


def test_text_values_are_escaped():
    """Semicolons, commas, backslashes and newlines in TEXT are escaped and read back unchanged."""
    description = "Agenda; items, one\\two\nsecond line"
    data = invitation(_meeting(description=description), BOB, "REQUEST", STAMP)
    assert "Agenda\\; items\\, one\\\\two\\nsecond line" in _line(data, "DESCRIPTION")
    (event,) = _events(data)
    assert str(event["DESCRIPTION"]).startswith(description)


def test_organizer_and_attendee_have_the_spec_shape():
    """Lowercase mailto:, quoted CN even for one word, and the attendee's iTIP parameters."""
    data = invitation(_meeting(), Attendee(email="bob@gent.example", name="Bob"), "REQUEST", STAMP)
    assert 'ORGANIZER;CN="Anne Facilitator":mailto:interest-groups@network.example' == _line(
        data, "ORGANIZER"
    )
    attendee = _line(data, "ATTENDEE")
    assert attendee.endswith(":mailto:bob@gent.example")
    for parameter in (
        'CN="Bob"',
        "CUTYPE=INDIVIDUAL",
        "ROLE=REQ-PARTICIPANT",
        "PARTSTAT=NEEDS-ACTION",
        "RSVP=TRUE",
    ):
        assert parameter in attendee.split(":")[0].split(";")
    assert 1 == sum(line.startswith("ATTENDEE") for line in _unfolded(data))


def test_attendee_partstat_is_carried_over():
    """A member who already accepted keeps PARTSTAT=ACCEPTED in an update that did not move the meeting."""
    member = Attendee(email="bob@gent.example", name="Bob", partstat=PartStat.ACCEPTED)
    (event,) = _events(invitation(_meeting(sequence=1), member, "REQUEST", STAMP))
    assert "ACCEPTED" == event["ATTENDEE"].params["PARTSTAT"]


@pytest.mark.parametrize(
    ("changes", "conferences", "url"),
    [
        (
            {},
            [
                ("FEATURE=VIDEO", "LABEL=Join the web meeting", "https://meet.example/abc"),
                ("FEATURE=AUDIO,PHONE", "LABEL=Dial in (PIN 1234)", "tel:+3221234567"),
            ],
            "https://meet.example/abc",
        ),
        (
            {"kind": Kind.PHONE, "join_url": ""},
            [("FEATURE=AUDIO,PHONE", "LABEL=Dial in (PIN 1234)", "tel:+3221234567")],
            None,
        ),
        (
            {"dial_in": "", "pin": ""},
            [("FEATURE=VIDEO", "LABEL=Join the web meeting", "https://meet.example/abc")],
            "https://meet.example/abc",
        ),
    ],
    ids=["web-and-phone", "phone-only", "web-only"],
)
def test_join_details_in_description_location_url_and_conference(changes, conferences, url):
    """Link and dial-in with PIN appear in DESCRIPTION and LOCATION, the link in URL, each in a CONFERENCE."""
    meeting = _meeting(**changes)
    data = invitation(meeting, BOB, "REQUEST", STAMP)
    (event,) = _events(data)
    lines = [line for line in _unfolded(data) if line.startswith("CONFERENCE")]
    assert len(conferences) == len(lines)
    for (feature, label, value), line in zip(conferences, lines, strict=True):
        parameters, written = line.split(":", 1)
        assert {"VALUE=URI", feature, label} <= set(parameters.split(";")[1:])
        assert value == written
    assert url == (str(event["URL"]) if "URL" in event else None)
    for text in (str(event["DESCRIPTION"]), str(event["LOCATION"])):
        assert ("https://meet.example/abc" in text) == bool(meeting.join_url)
        assert ("+3221234567, PIN 1234" in text) == bool(meeting.dial_in)


def test_recurring_meeting_with_one_moved_and_one_cancelled_occurrence():
    """One RRULE with UNTIL in UTC, the cancelled occurrence as EXDATE, the moved one as its own VEVENT."""
    data = invitation(_series(), BOB, Method.REQUEST, STAMP, [MOVED, CANCELLED])
    master, moved = _events(data)
    assert "RECURRENCE-ID" not in master
    lines = _unfolded(data)
    assert 1 == sum(line.startswith("RRULE") for line in lines[lines.index("BEGIN:VEVENT") :])
    assert "RRULE:FREQ=WEEKLY;UNTIL=20270630T215959Z;INTERVAL=2;BYDAY=TU" == _line(data, "RRULE")
    assert "EXDATE;TZID=Europe/Brussels:20270406T140000" == _line(data, "EXDATE")
    assert MOVED.recurrence_id == moved.decoded("RECURRENCE-ID")
    assert "Europe/Brussels" == moved["RECURRENCE-ID"].params["TZID"]
    assert MOVED.start == moved.decoded("DTSTART")
    assert str(master["UID"]) == str(moved["UID"])


def test_occurrences_apply_moves_and_cancellations():
    """The series' occurrences keep their local hour across DST, moved ones move, cancelled ones go."""
    starts = [o.start for o in occurrences(_series(), [MOVED, CANCELLED])]
    local = [datetime(2027, m, d, 14, 0, tzinfo=BXL) for m, d in ((3, 9), (4, 20), (5, 4), (5, 18), (6, 1))]
    local += [datetime(2027, 6, d, 14, 0, tzinfo=BXL) for d in (15, 29)]
    assert [local[0], MOVED.start, *local[1:]] == starts


@pytest.mark.parametrize(
    ("rule", "wall", "expected_days"),
    [
        (
            Recurrence(frequency=Frequency.MONTHLY, byday=("2TU",), count=4),
            (2027, 3, 9, 10, 0),
            [(3, 9), (4, 13), (5, 11), (6, 8)],
        ),
        (
            Recurrence(frequency=Frequency.MONTHLY, byday=("-1FR",), count=3),
            (2027, 1, 29, 10, 0),
            [(1, 29), (2, 26), (3, 26)],
        ),
        (
            Recurrence(frequency=Frequency.MONTHLY, interval=2, count=3),
            (2027, 1, 15, 10, 0),
            [(1, 15), (3, 15), (5, 15)],
        ),
        (
            Recurrence(frequency=Frequency.WEEKLY, byday=("TU", "TH"), count=4),
            (2027, 3, 11, 10, 0),
            [(3, 11), (3, 16), (3, 18), (3, 23)],
        ),
    ],
    ids=["second-tuesday", "last-friday", "every-two-months", "tuesday-and-thursday"],
)
def test_rules_expand_as_rfc_5545_says(rule, wall, expected_days):
    """Monthly by weekday, by date and weekly on two days expand to the dates RFC 5545 gives."""
    meeting = _meeting(start=datetime(*wall, tzinfo=BXL), recurrence=rule)
    assert expected_days == [(o.start.month, o.start.day) for o in occurrences(meeting)]
    data = invitation(meeting, BOB, "REQUEST", STAMP)
    assert f"COUNT={rule.count}" in _line(data, "RRULE")


def test_cancel_of_the_whole_meeting():
    """CANCEL: same UID, raised SEQUENCE, STATUS:CANCELLED, the same VTIMEZONE, no moved occurrences."""
    data = invitation(_series(sequence=2), BOB, Method.CANCEL, STAMP, [MOVED, CANCELLED])
    calendar = _parse(data)
    (event,) = calendar.walk("VEVENT")
    assert "CANCEL" == str(calendar["METHOD"])
    assert ("m-1@network.example", 2, "CANCELLED") == (
        str(event["UID"]),
        event["SEQUENCE"],
        str(event["STATUS"]),
    )
    assert "Europe/Brussels" == event["DTSTART"].params["TZID"] == event["DTEND"].params["TZID"]
    assert ["Europe/Brussels"] == [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")]
    assert "RSVP" not in event["ATTENDEE"].params


def test_cancel_of_one_occurrence():
    """Cancelling one occurrence sends its VEVENT: RECURRENCE-ID, STATUS:CANCELLED, its moved time."""
    data = invitation(_series(sequence=3), BOB, Method.CANCEL, STAMP, [MOVED], occurrence=MOVED.recurrence_id)
    (event,) = _events(data)
    assert MOVED.recurrence_id == event.decoded("RECURRENCE-ID")
    assert MOVED.start == event.decoded("DTSTART")
    assert ("CANCELLED", 3) == (str(event["STATUS"]), event["SEQUENCE"])
    assert "RRULE" not in event


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _meeting(start=NAIVE), "aware"),
        (lambda: _meeting(tzid="Europe/Atlantis"), "IANA"),
        (lambda: _meeting(tzid="../etc/passwd"), "IANA"),
        (lambda: _meeting(tzid="America/Argentina"), "IANA"),
        (lambda: _meeting(tzid="a/" * 500 + "b"), "IANA"),
        (lambda: _meeting(start=datetime(9999, 12, 31, 23, 0, tzinfo=UTC), tzid="UTC"), "year"),
        (lambda: Recurrence(frequency=Frequency.WEEKLY, interval=10**20, count=3), "interval"),
        (lambda: _meeting(join_url=""), "join link"),
        (lambda: _meeting(kind=Kind.PHONE, dial_in=""), "dial-in"),
        (lambda: _meeting(dial_in="+32 2 123"), "tel:"),
        (lambda: _meeting(join_url="javascript:alert(1)"), "http"),
        (lambda: _meeting(uid="a\r\nb"), "UID"),
        (lambda: _meeting(duration=timedelta(0)), "positive"),
        (lambda: _meeting(organizer_email="nobody"), "mail address"),
        (
            lambda: _meeting(recurrence=Recurrence(frequency=Frequency.WEEKLY, byday=("WE",), count=3)),
            "first occurrence",
        ),
        (
            lambda: _meeting(
                start=datetime(2027, 1, 31, 10, 0, tzinfo=BXL),
                recurrence=Recurrence(frequency=Frequency.MONTHLY, count=3),
            ),
            "28th",
        ),
        (lambda: Recurrence(frequency=Frequency.WEEKLY, until=UNTIL, count=3), "exactly one"),
        (
            lambda: _meeting(
                recurrence=Recurrence(frequency=Frequency.WEEKLY, until=datetime(2027, 1, 1, tzinfo=UTC))
            ),
            "ends before",
        ),
        (lambda: Recurrence(frequency=Frequency.WEEKLY), "exactly one"),
        (lambda: Recurrence(frequency=Frequency.WEEKLY, byday=("2TU",), count=3), "plain weekdays"),
        (lambda: Recurrence(frequency=Frequency.WEEKLY, byday=("XX",), count=3), "weekday code"),
        (lambda: Occurrence(recurrence_id=datetime(2027, 3, 23, 14, 0, tzinfo=BXL)), "either"),
        (lambda: invitation(_meeting(), Attendee(email="not an address"), "REQUEST", STAMP), "mail address"),
        (lambda: invitation(_meeting(), BOB, "PUBLISH", STAMP), "REQUEST or CANCEL"),
        (lambda: invitation(_meeting(), BOB, "REQUEST", NAIVE), "DTSTAMP"),
        (lambda: invitation(_meeting(status=Status.CANCELLED), BOB, "REQUEST", STAMP), "CANCEL"),
        (lambda: invitation(_meeting(), BOB, "REQUEST", STAMP, [MOVED]), "recurring"),
        (
            lambda: invitation(
                _series(),
                BOB,
                "REQUEST",
                STAMP,
                [Occurrence(recurrence_id=datetime(2027, 3, 16, 14, 0, tzinfo=BXL), cancelled=True)],
            ),
            "not an occurrence",
        ),
        (lambda: invitation(_series(), BOB, "REQUEST", STAMP, [MOVED, MOVED]), "twice"),
        (lambda: invitation(_series(), BOB, "REQUEST", STAMP, occurrence=MOVED.recurrence_id), "CANCEL"),
    ],
)
def test_what_no_client_could_show_is_refused(build, message):
    """Meetings, rules and overrides that clients would misread raise CalendarError naming the problem."""
    with pytest.raises(CalendarError, match=message):
        build()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "reply_outlook_accepted.ics",
            Rsvp(
                uid="m-2027-circular-01@network.example",
                recurrence_id=None,
                email="jan.peeters@stad.gent.example",
                partstat=PartStat.ACCEPTED,
                sequence=1,
                dtstamp=datetime(2027, 1, 20, 10, 15, 30, tzinfo=UTC),
                comment="Tot dan!",
            ),
        ),
        (
            "reply_outlook_occurrence_declined.ics",
            Rsvp(
                uid="m-2027-circular-02@network.example",
                recurrence_id=datetime(2027, 4, 20, 12, 0, tzinfo=UTC),
                email="anna.schmidt@freiburg.example",
                partstat=PartStat.DECLINED,
                sequence=2,
                dtstamp=datetime(2027, 4, 1, 7, 12, tzinfo=UTC),
                comment="Leider bin ich an diesem Tag verhindert.",
            ),
        ),
        (
            "reply_apple_declined.ics",
            Rsvp(
                uid="m-2027-circular-01@network.example",
                recurrence_id=None,
                email="marie.dupont@ville-paris.example",
                partstat=PartStat.DECLINED,
                sequence=1,
                dtstamp=datetime(2027, 1, 19, 16, 45, 2, tzinfo=UTC),
            ),
        ),
        (
            "reply_gmail_tentative.ics",
            Rsvp(
                uid="m-2027-circular-01@network.example",
                recurrence_id=None,
                email="luca.rossi@comune.milano.example",
                partstat=PartStat.TENTATIVE,
                sequence=1,
                dtstamp=datetime(2027, 1, 21, 8, 30, 12, tzinfo=UTC),
            ),
        ),
        (
            "reply_thunderbird_occurrence_accepted.ics",
            Rsvp(
                uid="m-2027-circular-02@network.example",
                recurrence_id=datetime(2027, 3, 23, 13, 0, tzinfo=UTC),
                email="katrin.berger@wien.example",
                partstat=PartStat.ACCEPTED,
                sequence=3,
                dtstamp=datetime(2027, 3, 2, 8, 15, tzinfo=UTC),
            ),
        ),
    ],
    ids=["outlook", "outlook-occurrence", "apple", "gmail", "thunderbird-occurrence"],
)
def test_replies_from_real_clients(name, expected):
    """Exchange (no ORGANIZER, MAILTO: in capitals, Windows zones), Apple, Gmail and Thunderbird replies."""
    assert (expected,) == read_reply((ICS / name).read_bytes())


def test_reply_with_lf_line_ends_and_windows_1252_text():
    """A reply rewritten with bare LF and a Windows-1252 SUMMARY is still read."""
    data = (ICS / "reply_outlook_accepted.ics").read_bytes().replace(b"\r\n", b"\n")
    data = data.replace("Circulaire aankopen \u2013 kick-off".encode(), "Accepté: réunion".encode("cp1252"))
    (rsvp,) = read_reply(data)
    assert ("jan.peeters@stad.gent.example", PartStat.ACCEPTED) == (rsvp.email, rsvp.partstat)


def test_floating_recurrence_id_needs_a_zone():
    """A RECURRENCE-ID without a resolvable zone is refused, or read in the zone the caller names."""
    data = (
        b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:m-1@network.example\r\n"
        b"RECURRENCE-ID:20270323T140000\r\nDTSTAMP:20270301T000000Z\r\n"
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@gent.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(CalendarError, match="RECURRENCE-ID"):
        read_reply(data)
    (rsvp,) = read_reply(data, floating_tz=BXL)
    assert datetime(2027, 3, 23, 13, 0, tzinfo=UTC) == rsvp.recurrence_id


def _reply(*lines: str, method: str = "REPLY") -> bytes:
    body = "\r\n".join(
        ("BEGIN:VCALENDAR", f"METHOD:{method}", "BEGIN:VEVENT", *lines, "END:VEVENT", "END:VCALENDAR")
    )
    return f"{body}\r\n".encode()


ATTENDEE = "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@gent.example"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no complete VCALENDAR"),
        (b"hello world", "cannot be parsed"),
        (b"\x00\xff\xfe garbage \x81", "cannot be parsed"),
        (b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\n", "no complete VCALENDAR"),
        (_reply("UID:x", ATTENDEE, method="REQUEST"), "not REPLY"),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "missing"),
        (b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n", "no VEVENT"),
        (_reply(ATTENDEE), "no UID"),
        (_reply("UID:x"), "no ATTENDEE"),
        (_reply("UID:x", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:"), "not a mail address"),
        (_reply("UID:x", ATTENDEE, "RECURRENCE-ID:2027"), "RECURRENCE-ID"),
        (_reply("UID:x", ATTENDEE, "RECURRENCE-ID;VALUE=DATE:20270323"), "not a date with a time"),
        (_reply("UID:x", ATTENDEE, "DTSTAMP:yesterday"), "DTSTAMP"),
        (_reply("UID:x", ATTENDEE, "SEQUENCE:two"), "malformed"),
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "truncated",
        "request",
        "no-method",
        "no-event",
        "no-uid",
        "no-attendee",
        "empty-address",
        "broken-recurrence-id",
        "date-recurrence-id",
        "broken-dtstamp",
        "broken-sequence",
    ],
)
def test_malformed_replies_raise_calendar_error_only(data, message):
    """Every malformed REPLY raises CalendarError with a reason, never another exception."""
    with pytest.raises(CalendarError, match=message):
        read_reply(data)


def test_unknown_partstat_reads_as_needs_action():
    """An x-name PARTSTAT is treated as NEEDS-ACTION (RFC 5545 §3.2.12)."""
    (rsvp,) = read_reply(_reply("UID:x", "ATTENDEE;PARTSTAT=X-MAYBE-LATER:mailto:Bob@Gent.example"))
    assert (PartStat.NEEDS_ACTION, "bob@gent.example", 0, None) == (
        rsvp.partstat,
        rsvp.email,
        rsvp.sequence,
        rsvp.dtstamp,
    )


@pytest.mark.parametrize(
    ("booked", "proposed", "allowed", "reason"),
    [
        (
            [timedelta(hours=14)],
            timedelta(hours=3),
            False,
            (
                "this 3 h meeting would bring the group's meetings in 2027 to 17 h, "
                "over the 16 h (two days of 8 h) a year allows"
            ),
        ),
        (
            [timedelta(hours=12)],
            timedelta(hours=4),
            True,
            (
                "this 4 h meeting brings the group's meetings in 2027 to 16 h, "
                "within the 16 h (two days of 8 h) a year allows"
            ),
        ),
        (
            [timedelta(hours=12), timedelta(minutes=30)],
            [timedelta(minutes=90)] * 3,
            False,
            (
                "these 3 meetings (4 h 30 min in all) would bring the group's meetings in 2027 to 17 h, "
                "over the 16 h (two days of 8 h) a year allows"
            ),
        ),
        (
            [],
            timedelta(minutes=45),
            True,
            (
                "this 45 min meeting brings the group's meetings in 2027 to 45 min, "
                "within the 16 h (two days of 8 h) a year allows"
            ),
        ),
    ],
    ids=["over", "exactly-two-days", "series-over", "first-meeting"],
)
def test_two_days_a_year_budget(booked, proposed, allowed, reason):
    """The budget verdict and its sentence spell out the arithmetic (SPEC §2.6)."""
    verdict = meeting_budget(2027, booked, proposed)
    assert (allowed, reason) == (verdict.allowed, verdict.reason)
    assert timedelta(hours=16) == verdict.budget


def test_budget_hours_per_day_is_a_parameter():
    """A network counting 7 h 30 min days allows 15 h a year."""
    verdict = meeting_budget(2027, [timedelta(hours=14)], timedelta(hours=2), hours_per_day=7.5)
    assert not verdict.allowed
    assert verdict.reason.endswith("over the 15 h (two days of 7 h 30 min) a year allows")


def test_durations_by_year_split_a_series_at_new_year():
    """A monthly series from November counts its occurrences in the year each one falls in."""
    meeting = _meeting(
        start=datetime(2027, 11, 9, 14, 0, tzinfo=BXL),
        recurrence=Recurrence(frequency=Frequency.MONTHLY, byday=("2TU",), count=4),
    )
    assert {2027: [timedelta(minutes=90)] * 2, 2028: [timedelta(minutes=90)] * 2} == durations_by_year(
        meeting
    )


@pytest.mark.parametrize(
    ("method", "occurrence"),
    [
        pytest.param(Method.REQUEST, None, id="request"),
        pytest.param(Method.CANCEL, None, id="cancel"),
        pytest.param(Method.CANCEL, datetime(2027, 3, 23, 13, 0, tzinfo=UTC), id="cancel-one-occurrence"),
    ],
)
def test_invitations_for_many_attendees_equal_one_at_a_time(method: Method, occurrence: datetime | None):
    """The batch writer gives each attendee exactly the bytes of a single invitation, long names included."""
    meeting = _series(sequence=3)
    overrides = [
        Occurrence(
            recurrence_id=datetime(2027, 4, 6, 12, 0, tzinfo=UTC),
            start=datetime(2027, 4, 7, 9, 0, tzinfo=BXL),
        ),
        Occurrence(recurrence_id=datetime(2027, 4, 20, 12, 0, tzinfo=UTC), cancelled=True),
    ]
    people = [
        Attendee(
            email=f"member{i}@ville.example",
            name="Ånna Ölund-Straße " * (i % 4),
            partstat=list(PartStat)[i % 5],
        )
        for i in range(12)
    ]
    one_by_one = [invitation(meeting, a, method, STAMP, overrides, occurrence=occurrence) for a in people]
    assert one_by_one == invitations(meeting, people, method, STAMP, overrides, occurrence=occurrence)
    assert [] == invitations(meeting, [], method, STAMP)
