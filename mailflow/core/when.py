"""What a facilitator types to schedule a meeting, read into a typed proposal (SPEC §4, issue 3).

Two shapes are understood, also mixed: free text ("Tuesday 9 March 2027 at 10am CET for 2 hours, every
second Tuesday for six months") and ``Key: value`` lines in any order (``When``, ``Duration``, ``Zone``,
``Kind``, ``Link``, ``Dial-in``, ``PIN``, ``Title``, ``Repeat``; keys case-insensitive, other lines
ignored). What is missing or ambiguous is listed by field, so the shell can answer with a help reply
that names it; readings chosen among several are listed as assumptions, for the confirmation mail.

Pure: ``today`` and the network's default zone are arguments. Numeric dates are read day first
(12/03/2027 is 12 March), as the network's members write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailflow.core._when_dates import _day, _recurrence, _rule
from mailflow.core._when_fields import _dial_in, _fields, _kind, _link, _Notes, _pin, _Text
from mailflow.core._when_times import _duration, _start, _times, _zone, zone_for_abbreviation
from mailflow.core.calendar import Kind, Recurrence, zone_for

__all__ = ["Problem", "Schedule", "read_schedule", "zone_for_abbreviation"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the shell must ask the facilitator about: the field, and a sentence that says what.

    ``field`` is one of date, time, timezone, duration, kind, link, dial-in, pin, recurrence.
    """

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """What was read from a scheduling mail.

    Attributes:
        title: the meeting's title, or "" (the shell chooses a default).
        start: the first meeting's start, aware, in ``tzid``; None when it could not be read.
        tzid: the IANA zone of the meeting (or "UTC").
        duration: the meeting's length, or None.
        kind: web or phone, or None.
        join_url: the web link, or "".
        dial_in: the dial-in number as ``tel:+…``, or "".
        pin: the PIN or conference code, or "".
        recurrence: the repetition rule, or None for a single meeting.
        problems: what is missing or ambiguous, one per field at most; empty when the proposal is complete.
        assumptions: readings chosen among several (for example "CET read as Europe/Brussels time"), to
            repeat in the confirmation.
    """

    title: str = ""
    start: datetime | None = None
    tzid: str = ""
    duration: timedelta | None = None
    kind: Kind | None = None
    join_url: str = ""
    dial_in: str = ""
    pin: str = ""
    recurrence: Recurrence | None = None
    problems: tuple[Problem, ...] = ()
    assumptions: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when nothing is missing or ambiguous."""
        return not self.problems


def read_schedule(text: str, *, today: date, default_tz: str = "Europe/Brussels") -> Schedule:
    """Read a facilitator's scheduling mail.

    Args:
        text: the new text of the mail (quoted history and signature already removed); the shell may
            put the subject on the first line.
        today: the date the mail is read, in the network's zone; a date without a year is the first
            such date on or after it (a meeting later the same day stays this year).
        default_tz: the network's IANA zone, used when no zone is written, and for CET/CEST, GMT/BST and
            the like when it goes by those names.

    Returns:
        The proposal, with its problems and assumptions.

    Raises:
        CalendarError: ``default_tz`` is not a zone (a configuration mistake, not the writer's).
    """
    zone_for(default_tz)
    notes = _Notes()
    free = _Text(text.replace("\u00a0", " "))
    fields = _fields(free)
    join_url = _link(fields, free, notes)
    dial_in = _dial_in(fields, free, notes)
    pin = _pin(fields, free, notes)
    main = _Text(" ; ".join(fields["when"])) if "when" in fields else free
    rule = _rule(_Text(" ; ".join(fields["repeat"])) if "repeat" in fields else main, notes)
    day = _day(main, today, rule, notes)
    times = _times(main)
    tzid = _zone(
        times, _Text(" ; ".join(fields["zone"])) if "zone" in fields else main, default_tz, today, notes
    )
    duration = _duration(fields, [main, free], times, notes)
    start = _start(day, times, tzid, notes)
    recurrence = _recurrence(rule, start, tzid, notes) if rule is not None else None
    return Schedule(
        title=" ".join(" ".join(fields.get("title", [])).split())[:200],
        start=start,
        tzid=tzid,
        duration=duration,
        kind=_kind(fields, text, join_url, dial_in, notes),
        join_url=join_url,
        dial_in=dial_in,
        pin=pin,
        recurrence=recurrence,
        problems=tuple(Problem(name, message) for name, message in notes.problems.items()),
        assumptions=tuple(notes.assumptions),
    )
