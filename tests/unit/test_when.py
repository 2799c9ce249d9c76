"""Scheduling mails read into a proposal: free text, Key: value fields, problems and assumptions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailflow.core.calendar import (
    Attendee,
    CalendarError,
    Frequency,
    Kind,
    Meeting,
    Method,
    Recurrence,
    invitation,
    occurrences,
)
from mailflow.core.when import read_schedule, zone_for_abbreviation

TODAY = date(2027, 1, 15)
BXL = ZoneInfo("Europe/Brussels")
LINK = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc"


def _at(*wall: int, zone: str = "Europe/Brussels") -> datetime:
    return datetime(*wall, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("text", "start", "duration"),
    [
        ("12 March 2027, 14:00 CET, 90 minutes", _at(2027, 3, 12, 14, 0), 90),
        ("2027-03-12 14:00 Europe/Brussels 1h30", _at(2027, 3, 12, 14, 0), 90),
        ("Tuesday 9 March 2027 at 10am CET for 2 hours", _at(2027, 3, 9, 10, 0), 120),
        ("2027-03-12T14:00 Europe/Brussels, one hour", _at(2027, 3, 12, 14, 0), 60),
        ("March 12, 2027 at 2:30 pm CET, an hour and a half", _at(2027, 3, 12, 14, 30), 90),
        ("Fri 12th of March 2027, 9.30 am, 45 min", _at(2027, 3, 12, 9, 30), 45),
        ("le 12 mars 2027 à 14h30, durée 1h30", _at(2027, 3, 12, 14, 30), 90),
        ("am 9. März 2027 um 14 Uhr, 2 Stunden: 2 hours", _at(2027, 3, 9, 14, 0), 120),
        ("12.03.2027 14:00-15:30", _at(2027, 3, 12, 14, 0), 90),
        ("12 March 2027 from 14:00 to 14:45", _at(2027, 3, 12, 14, 0), 45),
        ("12 March 2027 at noon, half an hour", _at(2027, 3, 12, 12, 0), 30),
        ("12 March 2027 14:00 Brussels time, 1.5 hours", _at(2027, 3, 12, 14, 0), 90),
        ("12 March 2027 9:00 New York time, 60 minutes", _at(2027, 3, 12, 9, 0, zone="America/New_York"), 60),
        ("12 March 2027 13:00 GMT, 1 hour", _at(2027, 3, 12, 13, 0, zone="Europe/London"), 60),
        ("12 March 2027 13:00 UTC, 1 hour", datetime(2027, 3, 12, 13, 0, tzinfo=ZoneInfo("UTC")), 60),
        ("12 March 2027 15:00 UTC+2, 1 hour", _at(2027, 3, 12, 15, 0, zone="Etc/GMT-2"), 60),
        ("All times CET. We meet on 12 March 2027, 14:00, for 1 hour", _at(2027, 3, 12, 14, 0), 60),
        ("14:00 CET / 13:00 GMT on 12 March 2027, 1 hour", _at(2027, 3, 12, 14, 0), 60),
        ("12 March, 14:00, 90 minutes", _at(2027, 3, 12, 14, 0), 90),
        ("3 January, 10:00, 90 minutes", _at(2028, 1, 3, 10, 0), 90),
        ("tomorrow at 16:00 for 30 minutes", _at(2027, 1, 16, 16, 0), 30),
        ("next Tuesday at 9:30, 45 minutes", _at(2027, 1, 19, 9, 30), 45),
    ],
)
def test_free_text_dates_times_zones_and_durations(text, start, duration):
    """Dates, times, zones and durations are read from the ways people write them."""
    schedule = read_schedule(f"{text}\nJoin: {LINK}", today=TODAY)
    assert () == schedule.problems
    assert start == schedule.start
    assert str(start.tzinfo) == schedule.tzid
    assert timedelta(minutes=duration) == schedule.duration


def test_field_style_in_any_order_with_extra_lines():
    """Key: value lines are read case-insensitively in any order; other lines are ignored."""
    text = (
        "Hello all,\n"
        "PIN: 1234\n"
        "dial-in: +32 (0)2 123 45 67\n"
        "KIND: phone\n"
        "Title: Circular procurement \u2013 kick-off\n"
        "Duration: 60\n"
        "When: 12 March 2027, 14:00\n"
        "Zone: Europe/Brussels\n"
        "Looking forward to it, Anne\n"
    )
    schedule = read_schedule(text, today=TODAY)
    assert () == schedule.problems
    assert (
        "Circular procurement \u2013 kick-off",
        _at(2027, 3, 12, 14, 0),
        timedelta(minutes=60),
        Kind.PHONE,
        "",
        "tel:+3221234567",
        "1234",
    ) == (
        schedule.title,
        schedule.start,
        schedule.duration,
        schedule.kind,
        schedule.join_url,
        schedule.dial_in,
        schedule.pin,
    )


@pytest.mark.parametrize(
    ("text", "kind", "join_url", "dial_in", "pin"),
    [
        (f"12 March 2027 14:00, 1h. Join: {LINK}", Kind.WEB, LINK, "", ""),
        (
            "12 March 2027 14:00, 1h, on https://zoom.us/j/987654321.",
            Kind.WEB,
            "https://zoom.us/j/987654321",
            "",
            "",
        ),
        (
            "12 March 2027 14:00, 1h, phone meeting: dial in on 0032 2 123 45 67, PIN 9876#",
            Kind.PHONE,
            "",
            "tel:+3221234567",
            "9876#",
        ),
        (
            (
                f"Kind: web\nLink: {LINK}\nDial-in: +44 20 7946 0000\nConference ID: 123 456 789#\n"
                "When: 12 March 2027 14:00\nDuration: 1h"
            ),
            Kind.WEB,
            LINK,
            "tel:+442079460000",
            "123456789#",
        ),
        (
            f"12 March 2027 14:00 for 1h. Join: {LINK}\n\n--\nAnne Facilitator\nT: +32 2 555 12 12\nhttps://www.gent.be\n",
            Kind.WEB,
            LINK,
            "",
            "",
        ),
    ],
    ids=["link-line", "conference-host", "phone-free-text", "fields-with-both", "signature-ignored"],
)
def test_join_details(text, kind, join_url, dial_in, pin):
    """Links, dial-in numbers and PINs are found; a signature's phone number and web site are not."""
    schedule = read_schedule(text, today=TODAY)
    assert () == schedule.problems
    assert (kind, join_url, dial_in, pin) == (
        schedule.kind,
        schedule.join_url,
        schedule.dial_in,
        schedule.pin,
    )


@pytest.mark.parametrize(
    ("text", "start", "rule"),
    [
        (
            "every second Tuesday for six months, 10:00 CET, 1h",
            _at(2027, 1, 19, 10, 0),
            Recurrence(
                frequency=Frequency.WEEKLY,
                interval=2,
                byday=("TU",),
                until=datetime(2027, 7, 19, 7, 59, 59, tzinfo=UTC),
            ),
        ),
        (
            "every 2 weeks until 30 June 2027, first meeting Tuesday 9 March 2027 at 14:00, 90 min",
            _at(2027, 3, 9, 14, 0),
            Recurrence(
                frequency=Frequency.WEEKLY, interval=2, until=datetime(2027, 6, 30, 21, 59, 59, tzinfo=UTC)
            ),
        ),
        (
            "the second Tuesday of every month for a year at 15:00, 45 minutes",
            _at(2027, 2, 9, 15, 0),
            Recurrence(
                frequency=Frequency.MONTHLY,
                byday=("2TU",),
                until=datetime(2028, 2, 9, 13, 59, 59, tzinfo=UTC),
            ),
        ),
        (
            "last Friday of each month, 6 meetings, from 29 January 2027 11:00, 1h",
            _at(2027, 1, 29, 11, 0),
            Recurrence(frequency=Frequency.MONTHLY, byday=("-1FR",), count=6),
        ),
        (
            "every Tuesday and Thursday at 9:00 for 6 meetings from 9 March 2027, 30 minutes",
            _at(2027, 3, 9, 9, 0),
            Recurrence(frequency=Frequency.WEEKLY, byday=("TU", "TH"), count=6),
        ),
        (
            "Repeat: monthly for 3 months\nWhen: 15 February 2027 10:00\nDuration: 1h",
            _at(2027, 2, 15, 10, 0),
            Recurrence(frequency=Frequency.MONTHLY, until=datetime(2027, 5, 15, 7, 59, 59, tzinfo=UTC)),
        ),
        (
            "fortnightly until 31 March, 12 February 2027 10:00, 1h",
            _at(2027, 2, 12, 10, 0),
            Recurrence(
                frequency=Frequency.WEEKLY, interval=2, until=datetime(2027, 3, 31, 21, 59, 59, tzinfo=UTC)
            ),
        ),
    ],
    ids=[
        "every-second-tuesday",
        "every-2-weeks-until",
        "second-tuesday-monthly",
        "last-friday",
        "two-days",
        "field",
        "fortnightly",
    ],
)
def test_recurrences(text, start, rule):
    """Weekly and monthly repetitions with an end date, a span or a count become a Recurrence."""
    schedule = read_schedule(f"{text}\nLink: {LINK}", today=TODAY)
    assert () == schedule.problems
    assert (start, rule) == (schedule.start, schedule.recurrence)


def test_every_second_tuesday_says_how_it_was_read():
    """'Every second Tuesday' is read as fortnightly, and the reading is listed for the confirmation."""
    schedule = read_schedule(f"every second Tuesday for six months, 10:00, 1h {LINK}", today=TODAY)
    assert any("every 2 weeks" in note for note in schedule.assumptions)
    assert any("Tuesday 19 January 2027" in note for note in schedule.assumptions)


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("Hello, can we meet soon?", "date", "no date"),
        ("Hello, can we meet soon?", "time", "no start time"),
        ("Hello, can we meet soon?", "duration", "no duration"),
        ("Hello, can we meet soon?", "kind", "web or a phone"),
        ("12 March 2026 10:00, 1h", "date", "in the past"),
        ("Monday 9 March 2027 at 14:00, 1 hour", "date", "9 March 2027 is a Tuesday, not a Monday"),
        ("30 February 2027 10:00, 1h", "date", "not a date in the calendar"),
        ("12 March 2027 10:00 or 15 March 2027 10:00, 1h", "date", "more than one date"),
        ("12 March 2027 at 10:00 or 14:00, 1h", "time", "more than one start time"),
        ("28 March 2027 02:30 for 1h", "time", "clocks go forward"),
        ("When: 12 March 2027 10:00\nDuration: 2", "duration", "hours or minutes"),
        ("12 March 2027 10:00, 1 hour, or maybe 2 hours", "duration", "more than one duration"),
        ("12 March 2027 10:00 for 1h, a web meeting", "link", "needs its link"),
        ("Kind: phone\nWhen: 12 March 2027 10:00\nDuration: 1h", "dial-in", "dial-in number"),
        (
            "Kind: phone\nDial-in: 02 123 45 67\nWhen: 12 March 2027 10:00\nDuration: 1h",
            "dial-in",
            "international",
        ),
        ("Kind: carrier pigeon\nWhen: 12 March 2027 10:00\nDuration: 1h", "kind", "neither web nor phone"),
        ("12 March 2027 10:00, 1h, every week", "recurrence", "no end"),
        ("every Tuesday until 30 June 2027, from 12 March 2027 10:00, 1h", "recurrence", "a Friday, but"),
        ("monthly for 6 months from 31 January 2027 10:00, 1h", "recurrence", "day 31"),
        (
            "When: 12 March 2027 10:00 CET\nZone: Europe/London\nDuration: 2h",
            "timezone",
            "more than one time zone",
        ),
    ],
)
def test_problems_name_the_field(text, field, words):
    """What is missing or ambiguous is reported for its field, with words the help reply can use."""
    problems = {p.field: p.message for p in read_schedule(text, today=TODAY).problems}
    assert field in problems
    assert words in problems[field]


@pytest.mark.parametrize(
    ("text", "default_tz", "tzid", "note"),
    [
        ("12 March 2027 14:00, 1h", "Europe/Brussels", "Europe/Brussels", "no time zone was written"),
        ("12 March 2027 14:00 CET, 1h", "Europe/Paris", "Europe/Paris", "CET read as Europe/Paris time"),
        (
            "12 March 2027 14:00 CET, 1h",
            "Europe/London",
            "Europe/Brussels",
            "CET read as Europe/Brussels time",
        ),
        ("12 July 2027 14:00 CET, 1h", "Europe/Brussels", "Europe/Brussels", "is CEST (UTC+02:00)"),
        ("12/03/2027 14:00, 1h", "Europe/Brussels", "Europe/Brussels", "read day first"),
        ("31 October 2027 02:30, 1h", "Europe/Brussels", "Europe/Brussels", "happens twice"),
        (
            "12 March, 14:00, 1h",
            "Europe/Brussels",
            "Europe/Brussels",
            "“12 March” read as Friday 12 March 2027",
        ),
    ],
)
def test_assumptions_are_listed(text, default_tz, tzid, note):
    """Readings chosen among several are listed, and the network's zone is used for its own abbreviations."""
    schedule = read_schedule(f"{text} {LINK}", today=TODAY, default_tz=default_tz)
    assert () == schedule.problems
    assert tzid == schedule.tzid
    assert any(note in assumption for assumption in schedule.assumptions), schedule.assumptions


def test_lowercase_words_are_not_zones():
    """French 'est' is not EST: abbreviations count only in capitals."""
    schedule = read_schedule(f"La réunion est le 12 mars 2027 à 14h30, pour 1h30. {LINK}", today=TODAY)
    assert ("Europe/Brussels", _at(2027, 3, 12, 14, 30)) == (schedule.tzid, schedule.start)


@pytest.mark.parametrize(
    ("abbreviation", "default_tz", "expected"),
    [
        ("CET", "Europe/Brussels", "Europe/Brussels"),
        ("cest", "Europe/Berlin", "Europe/Berlin"),
        ("CET", "Europe/Lisbon", "Europe/Brussels"),
        ("GMT", "Europe/Dublin", "Europe/Dublin"),
        ("BST", "Europe/Brussels", "Europe/London"),
        ("EET", "Europe/Brussels", "Europe/Athens"),
        ("UTC", "Europe/Brussels", "UTC"),
        ("XYZ", "Europe/Brussels", None),
    ],
)
def test_zone_for_abbreviation(abbreviation, default_tz, expected):
    """Abbreviations map to IANA zones, the network's own zone first."""
    assert expected == zone_for_abbreviation(abbreviation, default_tz, 2027)


def test_a_complete_schedule_becomes_an_invitation():
    """What the parser returns is what calendar.Meeting accepts: the two modules fit together."""
    schedule = read_schedule(
        f"Title: Kick-off\nWhen: every second Tuesday for six months, 10:00 CET\nDuration: 1h\nLink: {LINK}",
        today=TODAY,
    )
    assert schedule.complete
    assert schedule.start is not None
    assert schedule.duration is not None
    assert schedule.kind is not None
    meeting = Meeting(
        uid="m-9@network.example",
        sequence=0,
        summary=schedule.title,
        start=schedule.start,
        duration=schedule.duration,
        tzid=schedule.tzid,
        kind=schedule.kind,
        organizer_email="interest-groups@network.example",
        join_url=schedule.join_url,
        recurrence=schedule.recurrence,
    )
    assert 13 == len(occurrences(meeting))
    body = invitation(
        meeting, Attendee(email="bob@gent.example"), Method.REQUEST, datetime(2027, 1, 15, tzinfo=UTC)
    )
    assert b"RRULE:FREQ=WEEKLY;UNTIL=20270719T075959Z;INTERVAL=2;BYDAY=TU" in body


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("31 December 9999 23:00 EST, 1h", "date"),
        ("every week for 99999 years from 12 March 2027 10:00, 1h", "recurrence"),
        ("every week until 31 December 2099 from 12 March 2027 10:00, 1h", "recurrence"),
        ("every week until 1 March 2027 from 12 March 2027 10:00, 1h", "recurrence"),
        ("every 99999999999999999999 weeks for 2 months from 12 March 2027 10:00, 1h", "recurrence"),
        ("12 March 2027 10:00 for 99999999999999999999 minutes", "duration"),
        ("12 March 2027 10:00 " + "a/" * 2000 + " 1h", None),
        ("12 March 2027 10:00 America/Argentina, 1h", None),
        ("\x00\ufeff12/13/2027 25:61 \U0001d518 +0 ()", "date"),
    ],
)
def test_hostile_text_gives_problems_not_exceptions(text, field):
    """Mail is written by anyone: absurd numbers and odd zone names become problems, never exceptions."""
    schedule = read_schedule(f"{text}\nLink: {LINK}", today=TODAY)
    if field is not None:
        assert field in {p.field for p in schedule.problems}


def test_a_bad_network_zone_is_a_configuration_error():
    """The default zone comes from configuration: a wrong one raises CalendarError at once."""
    with pytest.raises(CalendarError, match="IANA"):
        read_schedule("12 March 2027 10:00, 1h", today=TODAY, default_tz="Europe/Nowhere")
