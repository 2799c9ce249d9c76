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

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from mailflow.core.calendar import CalendarError, Frequency, Kind, Recurrence, zone_for

__all__ = ["Problem", "Schedule", "read_schedule", "zone_for_abbreviation"]


def _alternatives(names: Iterable[str]) -> str:
    """A regex alternation of the names, longest first so that "tues" wins over "tue"."""
    return "|".join(sorted(map(re.escape, names), key=len, reverse=True))


_MONTH_WORDS = (
    "january jan janvier janv januar jänner januari gennaio enero",  # codespell:ignore
    "february feb février fevrier févr fevr februar februari febbraio febrero",  # codespell:ignore
    "march mar mars märz maerz maart marzo",
    "april apr avril avr aprile abril",
    "may mai mei maggio mayo",
    "june jun juin juni giugno junio",  # codespell:ignore
    "july jul juillet juil juli luglio julio",  # codespell:ignore
    "august aug août aout augustus agosto",
    "september sep sept septembre settembre septiembre setiembre",
    "october oct octobre oktober okt ottobre octubre",  # codespell:ignore
    "november nov novembre noviembre",
    "december dec décembre decembre déc dezember dez dicembre diciembre",  # codespell:ignore
)
_MONTHS = {word: number for number, words in enumerate(_MONTH_WORDS, start=1) for word in words.split()}
_WEEKDAY_WORDS = (
    "monday mon lundi montag",
    "tuesday tue tues mardi dienstag",
    "wednesday wed mercredi mittwoch",
    "thursday thu thur thurs jeudi donnerstag",  # codespell:ignore
    "friday fri vendredi freitag",
    "saturday sat samedi samstag",
    "sunday sun dimanche sonntag",
)
_WEEKDAYS = {word: day for day, words in enumerate(_WEEKDAY_WORDS) for word in words.split()}
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_CARDINALS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_CARDINALS |= {"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_ORDINALS |= {"fifth": 5, "5th": 5, "last": -1}
# "every other week", "every second Tuesday": ordinals that count intervals.
_STEPS = {"other": 2} | {k: v for k, v in _ORDINALS.items() if v > 1}

_MONTH = _alternatives(_MONTHS)
_WEEKDAY = _alternatives(_WEEKDAYS)
_COUNT = rf"\d+|{_alternatives(_CARDINALS)}"
_STEP = rf"\d+|{_alternatives(_CARDINALS | _STEPS)}"
_ORDINAL = _alternatives(_ORDINALS)
_FLAGS = re.IGNORECASE
_SUFFIX = r"(?:st|nd|rd|th)"  # codespell:ignore
_ON_WEEKDAY = rf"(?:(?P<wd>{_WEEKDAY})\.?,?\s+(?:the\s+)?)?"
_DATE_PATTERNS = (
    re.compile(rf"{_ON_WEEKDAY}\b(?P<y>\d{{4}})-(?P<m>\d{{1,2}})-(?P<d>\d{{1,2}})(?:T(?=\d))?", _FLAGS),
    re.compile(rf"{_ON_WEEKDAY}\b(?P<d>\d{{1,2}})(?P<sep>[/.])(?P<m>\d{{1,2}})[/.](?P<y>\d{{4}})\b", _FLAGS),
    re.compile(
        rf"{_ON_WEEKDAY}\b(?P<d>\d{{1,2}})(?:{_SUFFIX}|er|\.)?\s*(?:of\s+)?(?P<mn>{_MONTH})\b\.?"
        rf"(?:,?\s+(?P<y>\d{{4}})\b)?",
        _FLAGS,
    ),
    re.compile(
        rf"{_ON_WEEKDAY}\b(?P<mn>{_MONTH})\.?\s+(?P<d>\d{{1,2}}){_SUFFIX}?\b(?:,?\s+(?P<y>\d{{4}})\b)?",
        _FLAGS,
    ),
)
_RELATIVE = re.compile(rf"\b(?:(?P<word>today|tomorrow)|next\s+(?P<wd>{_WEEKDAY}))\b", _FLAGS)
# Only full names: "sat", "sun" and "mon" are also words.
_BARE_WEEKDAY = re.compile(rf"\b(?P<wd>{_alternatives(w.split()[0] for w in _WEEKDAY_WORDS)})\b", _FLAGS)
_AMPM = r"(?P<ap>a\.?m\.?|p\.?m\.?)"
_TIME_PATTERNS = (
    re.compile(
        rf"\b(?P<h>[01]?\d|2[0-3])[:.](?P<mi>[0-5]\d)(?!\d)\s*{_AMPM}?(?!\s*(?:h\b|hours?|hrs?|min))", _FLAGS
    ),
    re.compile(rf"\b(?P<h>1[0-2]|0?[1-9])\s*{_AMPM}(?!\w)", _FLAGS),
    re.compile(r"\b(?P<h>[01]?\d|2[0-3])\s*uhr\b", _FLAGS),
    re.compile(r"\b(?P<noon>noon|midday)\b", _FLAGS),
)
_H_TIME = re.compile(r"\b(?P<h>[01]?\d|2[0-3])h(?P<mi>[0-5]\d)?\b", _FLAGS)
_AT = re.compile(r"(?:\bat|\bà|\bum|\bfrom|\bstarting|@)\s*$", _FLAGS)
_EARLIEST_H_TIME = 7
"""A bare "NhMM" from this hour on is a start time, below it a duration ("14h30" against "1h30")."""
_RANGE = re.compile(r"\s*(?:-|\u2013|\u2014|to|till|until)\s*", _FLAGS)
_ABBREVIATIONS: dict[str, tuple[str, bool | None]] = {
    "CET": ("Europe/Brussels", False),
    "CEST": ("Europe/Brussels", True),
    "MET": ("Europe/Brussels", False),
    "MEST": ("Europe/Brussels", True),
    "WET": ("Europe/Lisbon", False),
    "WEST": ("Europe/Lisbon", True),
    "EET": ("Europe/Athens", False),
    "EEST": ("Europe/Athens", True),
    "GMT": ("Europe/London", False),
    "BST": ("Europe/London", True),
    "UTC": ("UTC", None),
    "EST": ("America/New_York", False),
    "EDT": ("America/New_York", True),
    "CST": ("America/Chicago", False),
    "CDT": ("America/Chicago", True),
    "PST": ("America/Los_Angeles", False),
    "PDT": ("America/Los_Angeles", True),
}
"""Abbreviation -> (zone, written as daylight time); the network's zone wins when it uses the name."""
_ZONE = re.compile(
    r"(?P<offset>\b(?:utc|gmt)\s*(?P<sign>[+\-\u2212])\s*(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)"
    # Abbreviations only in capitals: "est" is French for "is".
    rf"|(?-i:\b(?P<abbr>{_alternatives(_ABBREVIATIONS)})\b(?:\s?/\s?[A-Z]{{3,4}}\b)?)"
    r"|(?P<iana>\b[a-z]+(?:/[a-z0-9_+\-]+)+)"
    r"|(?P<city>\b[a-z]+(?:[ _][a-z]+)?)\s+time\b",
    _FLAGS,
)
_REGIONS = ("Europe", "America", "Asia", "Africa", "Australia", "Pacific", "Atlantic")
_DURATIONS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\b(?P<h>\d{1,2})\s*h(?P<m>[0-5]\d)\b", _FLAGS), 0),
    (
        re.compile(
            r"\b(?P<h>\d{1,2})\s*(?:hours?|hrs?|h)\s*(?:and\s*)?(?P<m>\d{1,2})\s*(?:minutes?|mins?|m)\b",
            _FLAGS,
        ),
        0,
    ),
    (
        re.compile(
            r"\b(?:an?|one)\s+hour\s+and\s+a\s+half\b|\b(?:one|1)\s+and\s+a\s+half\s+hours?\b", _FLAGS
        ),
        90,
    ),
    (re.compile(r"\bhalf\s+an\s+hour\b", _FLAGS), 30),
    (re.compile(rf"\b(?P<n>\d{{1,2}}(?:[.,]\d{{1,2}})?|{_COUNT})\s*-?\s*(?:hours?|hrs?|h)\b", _FLAGS), 60),
    (re.compile(r"\b(?P<n>\d{1,3})\s*-?\s*(?:minutes?|mins?|m)\b", _FLAGS), 1),
)
_WORD_MINUTES = {"fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45, "sixty": 60, "ninety": 90}
_WORD_DURATION = re.compile(rf"\b(?P<w>{_alternatives(_WORD_MINUTES)})\s+minutes?\b", _FLAGS)
_BARE_MINUTES = 10
"""A bare number in a Duration field is minutes from this value on; below it, hours or minutes is asked."""
_MAX_DURATION = timedelta(hours=24)
_YEARS_AHEAD = 5
"""Dates and series ends further ahead than this are refused as typing mistakes."""
_LAST_SAFE_MONTHDAY = 28
"""Outlook moves a monthly meeting on the 29th-31st to a short month's last day; RFC 5545 skips it."""
_URL = re.compile(r"https?://[^\s<>\"']+", _FLAGS)
_PHONE = re.compile(r"(?<![\w+:.])(?:\+|00)\s*\d[\d\s\-./()]{4,24}\d")
_PIN = re.compile(
    r"\b(?:pin|passcode|access\s+code|conference\s+id|participant\s+code)\b(?:\s+code)?\s*[:#=]?\s*"
    r"(?P<pin>\d[\d ]{0,20}\d#?|\d#?)",
    _FLAGS,
)
_FIELD = re.compile(
    r"^[ \t>]*(?P<key>[A-Za-z][A-Za-z \-_]{0,24}?)[ \t]*[:=][ \t]*(?P<value>.*?)[ \t]*$", re.MULTILINE
)
_FIELD_KEYS = {
    "title": "title subject topic meetingtitle name",
    "when": "when date start time day starts starttime startdate dateandtime datetime",
    "duration": "duration length lasting",
    "zone": "zone timezone tz",
    "kind": "kind type format meetingtype",
    "link": "link url join joinurl joinlink meetinglink weblink web",
    "dial-in": "dialin dial dialinnumber callin bridge conferencenumber conferenceline",  # codespell:ignore
    "pin": "pin pincode code accesscode passcode conferenceid participantcode",
    "repeat": "repeat repeats recurrence recurring every frequency series",
}
_KEYS = {alias: name for name, aliases in _FIELD_KEYS.items() for alias in aliases.split()}
_CONFERENCE_HOST = re.compile(
    r"teams\.microsoft\.com|teams\.live\.com|zoom\.us|meet\.google\.com|webex\.com|meet\.jit\.si|whereby\.com"
    r"|gotomeet|bigbluebutton|/meet|/join",
    _FLAGS,
)
_LINK_CONTEXT = re.compile(r"join|link|meeting|video|call", _FLAGS)
_WEB_WORDS = re.compile(r"\b(?:web|video|online|teams|zoom|webex|google\s+meet|jitsi|virtual)\b", _FLAGS)
_PHONE_WORDS = re.compile(r"\b(?:phone|telephone|audio|conference\s+call|dial[- ]?in)\b", _FLAGS)
_DIAL_CONTEXT = re.compile(r"dial|call|bridge|conference|by\s+phone|audio|phone\s+in", _FLAGS)


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


def zone_for_abbreviation(abbreviation: str, default_tz: str, year: int) -> str | None:
    """The IANA zone meant by an abbreviation such as CET, BST or UTC, or None when it is not known.

    The network's zone wins when it goes by that abbreviation in ``year`` (CET for a network in
    Europe/Paris is Europe/Paris).
    """
    known = _ABBREVIATIONS.get(abbreviation.upper())
    if known is None:
        return None
    if known[1] is not None and abbreviation.upper() in _zone_names(default_tz, year):
        return default_tz
    return known[0]


@dataclass
class _Notes:
    problems: dict[str, str] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    def problem(self, name: str, message: str) -> None:
        self.problems.setdefault(name, message)


@dataclass
class _Text:
    """Text being read: each piece recognised is blanked so that no later pattern reads it again."""

    value: str

    def take(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        found = list(pattern.finditer(self.value))
        for match in found:
            self.blank(match.start(), match.end())
        return found

    def blank(self, start: int, end: int) -> None:
        self.value = self.value[:start] + " " * (end - start) + self.value[end:]

    def line_at(self, position: int) -> str:
        start = self.value.rfind("\n", 0, position) + 1
        end = self.value.find("\n", position)
        return self.value[start : end if end >= 0 else len(self.value)]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A repetition as written, before the start is known."""

    frequency: Frequency
    interval: int
    weekdays: tuple[int, ...] = ()
    ordinal: int = 0
    until: tuple[int | None, int, int] | None = None
    span: tuple[int, str] | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class _Time:
    """A time read from the text, with the zone written right after it and the end of a written range."""

    value: time
    zone: str
    start: int
    end: int
    until: time | None = None


def _fields(free: _Text) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for match in list(_FIELD.finditer(free.value)):
        name = _KEYS.get(re.sub(r"[\s\-_]", "", match.group("key").lower()))
        if name is not None:
            fields.setdefault(name, []).append(match.group("value"))
            free.blank(match.start(), match.end())
    return fields


def _zone_names(tzid: str, year: int) -> set[str]:
    if not _valid_zone(tzid):
        return set()
    zone = zone_for(tzid)
    return {datetime(year, month, 15, tzinfo=zone).tzname() or "" for month in (1, 7)}


def _valid_zone(name: str) -> bool:
    try:
        zone_for(name)
    except CalendarError:
        return False
    return True


def _link(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    for url in free.take(_URL):
        # Without a Link field, a URL counts when it is a conferencing address or sits on a line about
        # joining: a signature's web site is not a meeting.
        if "link" not in fields and (
            _CONFERENCE_HOST.search(url.group()) or _LINK_CONTEXT.search(free.line_at(url.start()))
        ):
            fields["link"] = [url.group()]
    if "link" not in fields:
        return ""
    found = _URL.search(" ".join(fields["link"]))
    if found is None:
        notes.problem("link", "the link is not a web address starting with https://")
        return ""
    return found.group().rstrip(".,;:)>]")


def _dial_in(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    number = " ".join(fields.get("dial-in", []))
    for match in free.take(_PHONE):
        # A number counts only beside words of dialling: a signature's "T: +32 …" is not a dial-in.
        if not number and _DIAL_CONTEXT.search(free.line_at(match.start())):
            number = match.group()
    if not number:
        return ""
    digits = re.sub(r"\(0\)|[\s\-./()]", "", number.split(",")[0])
    digits = "+" + digits[2:] if digits.startswith("00") else digits
    if re.fullmatch(r"\+\d{6,15}", digits) is None:
        notes.problem("dial-in", "write the dial-in number in international form, such as +32 2 123 45 67")
        return ""
    return f"tel:{digits}"


def _pin(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    raw = " ".join(fields.get("pin", []))
    for match in free.take(_PIN):
        raw = raw or match.group("pin")
    pin = re.sub(r"\s", "", raw)
    if pin and re.fullmatch(r"[A-Za-z0-9#*\-]{1,32}", pin) is None:
        notes.problem("pin", "the PIN should be digits (and #), up to 32 characters")
        return ""
    return pin


def _number(word: str) -> int:
    return int(word) if word.isdigit() else (_CARDINALS | _STEPS)[word.lower()]


_MONTHLY_NTH = re.compile(
    rf"\b(?:on\s+)?(?:the\s+|every\s+|each\s+)?(?P<ord>{_ORDINAL})\s+(?P<wd>{_WEEKDAY})s?\s+(?:of\s+|in\s+)?"
    rf"(?:every|each|the)\s+(?:(?P<n>{_STEP})\s+)?months?\b"
    rf"|\b(?:every|each)\s+(?:(?P<n2>{_STEP})\s+)?months?\s+on\s+the\s+(?P<ord2>{_ORDINAL})\s+(?P<wd2>{_WEEKDAY})\b",
    _FLAGS,
)
_WEEKLY_ON = re.compile(
    rf"\b(?:every|each)\s+(?:(?P<n>{_STEP})\s+)?(?P<wd>{_WEEKDAY})s?\b(?:\s+and\s+(?P<wd2>{_WEEKDAY})s?\b)?",
    _FLAGS,
)
_WEEKLY = re.compile(
    rf"\b(?:every|each)\s+(?:(?P<n>{_STEP})\s+)?weeks?\b|\b(?P<word>weekly|fortnightly|bi-?weekly)\b", _FLAGS
)
_MONTHLY = re.compile(
    rf"\b(?:every|each)\s+(?:(?P<n>{_STEP})\s+)?months?\b|\b(?P<word>monthly|quarterly)\b", _FLAGS
)
_WORD_INTERVALS = {"weekly": 1, "fortnightly": 2, "biweekly": 2, "bi-weekly": 2, "monthly": 1, "quarterly": 3}
_UNTIL = re.compile(r"\b(?:until|till|through|up\s+to|ending(?:\s+on)?|ends?(?:\s+on)?)\s+", _FLAGS)
_SPAN = re.compile(rf"\bfor\s+(?:the\s+next\s+)?(?P<n>{_COUNT})\s+(?P<unit>weeks?|months?|years?)\b", _FLAGS)
_TIMES_COUNT = re.compile(
    rf"\b(?:for\s+)?(?P<n>{_COUNT})\s+(?:times|meetings|occurrences|sessions)\b", _FLAGS
)


def _rule(text: _Text, notes: _Notes) -> _Rule | None:
    if found := text.take(_MONTHLY_NTH):
        g = found[0].groupdict()
        ordinal = _ORDINALS[(g["ord"] or g["ord2"]).lower()]
        weekday = _WEEKDAYS[(g["wd"] or g["wd2"]).lower()]
        rule = _Rule(Frequency.MONTHLY, _number(g["n"] or g["n2"] or "1"), (weekday,), ordinal)
    elif found := text.take(_WEEKLY_ON):
        g = found[0].groupdict()
        days = tuple(sorted({_WEEKDAYS[w.lower()] for w in (g["wd"], g["wd2"]) if w}))
        rule = _Rule(Frequency.WEEKLY, _number(g["n"] or "1"), days)
        if g["n"] and g["n"].lower() in _STEPS:
            notes.assumptions.append(
                f"“{found[0].group().strip()}” read as every {rule.interval} weeks; for a monthly meeting "
                "write “the second Tuesday of every month”"
            )
    elif found := text.take(_WEEKLY):
        g = found[0].groupdict()
        rule = _Rule(
            Frequency.WEEKLY, _WORD_INTERVALS[g["word"].lower()] if g["word"] else _number(g["n"] or "1")
        )
    elif found := text.take(_MONTHLY):
        g = found[0].groupdict()
        rule = _Rule(
            Frequency.MONTHLY, _WORD_INTERVALS[g["word"].lower()] if g["word"] else _number(g["n"] or "1")
        )
    else:
        return None
    return _rule_end(text, rule)


def _rule_end(text: _Text, rule: _Rule) -> _Rule:
    for keyword in _UNTIL.finditer(text.value):
        for pattern in _DATE_PATTERNS:
            if (match := pattern.match(text.value, keyword.end())) is not None:
                text.blank(keyword.start(), match.end())
                return dataclasses.replace(rule, until=_date_parts(match))
    if found := text.take(_SPAN):
        unit = found[0].group("unit").lower().rstrip("s")
        return dataclasses.replace(rule, span=(_number(found[0].group("n")), unit))
    if found := text.take(_TIMES_COUNT):
        return dataclasses.replace(rule, count=_number(found[0].group("n")))
    return rule


def _date_parts(match: re.Match[str]) -> tuple[int | None, int, int]:
    groups = match.groupdict()
    month = _MONTHS[groups["mn"].lower()] if groups.get("mn") else int(groups["m"])
    year = int(groups["y"]) if groups.get("y") else None
    return (year, month, int(groups["d"]))


def _resolve(parts: tuple[int | None, int, int], after: date) -> date:
    """The date itself, or for a date without a year the first such date on or after ``after``."""
    year, month, day = parts
    if year is not None:
        return date(year, month, day)
    # Nine years always hold a 29 February.
    for candidate_year in range(after.year, after.year + 9):
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if candidate >= after:
            return candidate
    raise ValueError(f"{day}/{month} is not a date")


def _day(text: _Text, today: date, rule: _Rule | None, notes: _Notes) -> date | None:
    days: dict[date, str] = {}
    for pattern in _DATE_PATTERNS:
        for match in text.take(pattern):
            found = _written_day(match, today, notes)
            if found is not None:
                days.setdefault(found, match.group().strip())
    for match in text.take(_RELATIVE):
        if match.group("word"):
            found = today + timedelta(days=0 if match.group("word").lower() == "today" else 1)
        else:
            found = _next_weekday(today, _WEEKDAYS[match.group("wd").lower()])
        days.setdefault(found, match.group().strip())
    if len(days) > 1:
        listed = " and ".join(_long(d) for d in sorted(days))
        notes.problem("date", f"more than one date was found ({listed}): write only the first meeting's date")
        return None
    if not days:
        return _implied_day(text, today, rule, notes)
    found = next(iter(days))
    if found < today:
        notes.problem("date", f"{_long(found)} is in the past")
        return None
    return found


def _written_day(match: re.Match[str], today: date, notes: _Notes) -> date | None:
    parts = _date_parts(match)
    written = match.group().strip()
    try:
        found = _resolve(parts, today)
    except ValueError:
        notes.problem("date", f"“{written}” is not a date in the calendar")
        return None
    weekday = match.group("wd")
    if weekday and _WEEKDAYS[weekday.lower()] != found.weekday():
        written_day = f"{found.day} {_MONTH_NAMES[found.month - 1]} {found.year}"
        notes.problem("date", f"{written_day} is a {_DAY_NAMES[found.weekday()]}, not a {weekday}")
    if match.groupdict().get("sep") == "/" and parts[1] <= 12 and parts[2] <= 12 and parts[1] != parts[2]:
        notes.assumptions.append(f"{written} read day first, as {_long(found)}")
    if parts[0] is None:
        notes.assumptions.append(f"“{written}” read as {_long(found)}")
    if found.year > today.year + _YEARS_AHEAD:
        notes.problem("date", f"{_long(found)} is more than {_YEARS_AHEAD} years ahead")
        return None
    return found


def _implied_day(text: _Text, today: date, rule: _Rule | None, notes: _Notes) -> date | None:
    """The first meeting's day when no date is written: from the rule's weekday, or a bare weekday."""
    if rule is not None and rule.weekdays:
        weekday = rule.weekdays[0]
    elif found := text.take(_BARE_WEEKDAY):
        weekday = _WEEKDAYS[found[0].group("wd").lower()]
    else:
        notes.problem("date", "no date was found: write it like “12 March 2027”")
        return None
    day = _next_weekday(today, weekday)
    if rule is not None and rule.ordinal:
        day = _first_nth_weekday(today + timedelta(days=1), weekday, rule.ordinal)
    notes.assumptions.append(f"no date was written: the first meeting is on {_long(day)}")
    return day


def _next_weekday(after: date, weekday: int) -> date:
    """The first such weekday strictly after ``after`` ("next Tuesday" said on a Tuesday is a week on)."""
    return after + timedelta(days=(weekday - after.weekday() - 1) % 7 + 1)


def _first_nth_weekday(after: date, weekday: int, ordinal: int) -> date:
    month = date(after.year, after.month, 1)
    while (candidate := _nth_weekday(month, weekday, ordinal)) is None or candidate < after:
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return candidate


def _nth_weekday(month: date, weekday: int, ordinal: int) -> date | None:
    if ordinal > 0:
        day = month + timedelta(days=(weekday - month.weekday()) % 7 + 7 * (ordinal - 1))
    else:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        last = following - timedelta(days=1)
        day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-ordinal - 1))
    return day if day.month == month.month else None


def _long(day: date) -> str:
    # Names from our own tables: strftime would follow the process's locale.
    return f"{_DAY_NAMES[day.weekday()]} {day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"


def _times(text: _Text) -> list[_Time]:
    found = [_time(m) for pattern in _TIME_PATTERNS for m in text.take(pattern)]
    for match in list(_H_TIME.finditer(text.value)):
        # "14h30" is a time after "at" or when no other time was written; "1h30" is then a duration.
        if _AT.search(text.value[: match.start()]) or (
            not found and int(match.group("h")) >= _EARLIEST_H_TIME
        ):
            text.blank(match.start(), match.end())
            found.append(_time(match))
    found.sort(key=lambda t: t.start)
    merged: list[_Time] = []
    for item in map(lambda t: _with_zone(text, t), found):  # noqa: C417
        previous = merged[-1] if merged else None
        if (
            previous
            and previous.until is None
            and previous.value < item.value
            and _RANGE.fullmatch(text.value[previous.end : item.start])
        ):
            merged[-1] = _Time(
                previous.value, previous.zone or item.zone, previous.start, item.end, item.value
            )
        else:
            merged.append(item)
    return merged


def _with_zone(text: _Text, item: _Time) -> _Time:
    """The time with the zone written right after it ("14:00 CET", "2pm (Brussels time)"), if any."""
    gap = re.compile(r"[ \t]{0,3}\(?[ \t]{0,2}").match(text.value, item.end)
    zone = _ZONE.match(text.value, gap.end() if gap else item.end)
    if zone is None or _zone_of(zone) is None:
        return item
    text.blank(zone.start(), zone.end())
    return _Time(item.value, zone.group(), item.start, zone.end())


def _time(match: re.Match[str]) -> _Time:
    groups = match.groupdict()
    if groups.get("noon"):
        return _Time(time(12), "", match.start(), match.end())
    hour = int(groups["h"])
    meridiem = (groups.get("ap") or "").lower().replace(".", "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    return _Time(time(hour, int(groups.get("mi") or 0)), "", match.start(), match.end())


def _zone_of(match: re.Match[str]) -> tuple[str, bool | None] | None:
    """The zone a _ZONE match names: (IANA zone or abbreviation, written as daylight time), or None."""
    groups = match.groupdict()
    if groups["offset"]:
        hours = int(groups["oh"])
        if (groups["om"] and int(groups["om"])) or hours > 14:
            return None
        # The Etc/GMT zones count the other way: UTC+1 is Etc/GMT-1.
        sign = "-" if groups["sign"] == "+" else "+"
        return ("UTC" if hours == 0 else f"Etc/GMT{sign}{hours}", None)
    if groups["abbr"]:
        return (groups["abbr"], _ABBREVIATIONS[groups["abbr"]][1])
    if groups["iana"]:
        names = [groups["iana"]]
    else:
        names = [f"{region}/{groups['city'].title().replace(' ', '_')}" for region in _REGIONS]
    return next(((name, None) for name in names if _valid_zone(name)), None)


def _zone(times: list[_Time], text: _Text, default_tz: str, today: date, notes: _Notes) -> str:
    """The meeting's zone: the one written after the time, in a Zone field or elsewhere, or the default.

    Several zones are fine only when each time carries its own ("14:00 CET / 13:00 GMT"): _start then
    checks that they name one instant. A Zone field or a sentence naming another zone is a problem.
    """
    attached = _resolved([t.zone for t in times if t.zone], default_tz, today, notes)
    general = _resolved(
        [m.group() for m in _ZONE.finditer(text.value) if _zone_of(m) is not None], default_tz, today, notes
    )
    listed = attached + [z for z in general if z not in attached]
    if not listed:
        notes.assumptions.append(f"no time zone was written: {default_tz} time assumed")
        return default_tz
    conflicting = len(general) > 1 or bool(attached and set(general) - set(attached))
    if conflicting or (len(attached) > 1 and not all(t.zone for t in times)):
        notes.problem("timezone", f"more than one time zone was found ({', '.join(listed)}): write one")
    return listed[0]


def _resolved(written: list[str], default_tz: str, today: date, notes: _Notes) -> list[str]:
    resolved: list[str] = []
    for raw in written:
        match = _ZONE.fullmatch(raw.strip(" ()"))
        zone = _zone_of(match) if match else None
        if zone is None:
            continue
        tzid = zone_for_abbreviation(zone[0], default_tz, today.year) or zone[0]
        if tzid not in resolved:
            resolved.append(tzid)
        if zone[1] is not None:
            notes.assumptions.append(f"{zone[0]} read as {tzid} time")
    return resolved


def _start(day: date | None, times: list[_Time], tzid: str, notes: _Notes) -> datetime | None:
    if not times:
        notes.problem("time", "no start time was found: write it like “14:00”")
        return None
    if day is None:
        return None
    if len({_instant(day, t, tzid) for t in times}) > 1:
        listed = ", ".join(f"{t.value:%H:%M}" for t in times)
        notes.problem("time", f"more than one start time was found ({listed}): write one")
        return None
    zone = zone_for(tzid)
    local = datetime.combine(day, times[0].value, tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        notes.problem(
            "time", f"{local:%H:%M} does not exist on {_long(day)} in {tzid}: the clocks go forward"
        )
        return None
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        notes.assumptions.append(f"{local:%H:%M} happens twice on {_long(day)} in {tzid}: the first is meant")
    _season_note(local, times[0].zone, notes)
    return local


def _instant(day: date, item: _Time, tzid: str) -> datetime:
    match = _ZONE.fullmatch(item.zone.strip(" ()")) if item.zone else None
    zone = _zone_of(match) if match else None
    if zone is not None:
        tzid = _ABBREVIATIONS.get(zone[0], zone)[0]
    return datetime.combine(day, item.value, tzinfo=zone_for(tzid)).astimezone(UTC)


def _season_note(local: datetime, written: str, notes: _Notes) -> None:
    """Say so when "CET" is written for a summer date (or "CEST" for a winter one): clock time is kept."""
    abbreviation = written.strip(" ()").split("/")[0].strip()
    daylight = _ABBREVIATIONS.get(abbreviation, ("", None))[1]
    if daylight is not None and bool(local.dst()) != daylight:
        offset = local.strftime("%z")
        notes.assumptions.append(
            f"{abbreviation} on {_long(local.date())} is {local.tzname()} (UTC{offset[:3]}:{offset[3:]}): "
            "the clock time written is kept"
        )


def _duration(
    fields: dict[str, list[str]], sources: list[_Text], times: list[_Time], notes: _Notes
) -> timedelta | None:
    found = [
        datetime.combine(date.min, t.until) - datetime.combine(date.min, t.value)
        for t in times
        if t.until is not None
    ]
    if "duration" in fields:
        sources = [_Text(" ; ".join(fields["duration"]))]
        bare = re.fullmatch(r"\s*(\d{1,3})\s*", " ".join(fields["duration"]))
        if bare and int(bare.group(1)) < _BARE_MINUTES:
            notes.problem(
                "duration", f"is “{bare.group(1)}” hours or minutes? Write “90 minutes” or “2 hours”"
            )
            return None
        if bare:
            found.append(timedelta(minutes=int(bare.group(1))))
    for source in sources:
        found.extend(_durations(source))
    distinct = sorted(set(found))
    if not distinct:
        notes.problem("duration", "no duration was found: write it like “90 minutes” or “1h30”")
        return None
    if len(distinct) > 1:
        listed = ", ".join(f"{int(d.total_seconds()) // 60} min" for d in distinct)
        notes.problem("duration", f"more than one duration was found ({listed}): write one")
        return None
    if not timedelta(0) < distinct[0] <= _MAX_DURATION:
        notes.problem("duration", "a meeting lasts more than nothing and less than a day")
        return None
    return distinct[0]


def _durations(text: _Text) -> list[timedelta]:
    found: list[timedelta] = []
    for pattern, unit in _DURATIONS:
        for match in text.take(pattern):
            groups = match.groupdict()
            if groups.get("h") is not None:
                found.append(timedelta(hours=int(groups["h"]), minutes=int(groups["m"])))
            elif groups.get("n") is not None:
                amount = groups["n"].replace(",", ".")
                number = float(amount) if amount[0].isdigit() else _number(amount)
                found.append(timedelta(minutes=round(number * unit)))
            else:
                found.append(timedelta(minutes=unit))
    found.extend(timedelta(minutes=_WORD_MINUTES[m.group("w").lower()]) for m in text.take(_WORD_DURATION))
    return found


def _recurrence(rule: _Rule, start: datetime | None, tzid: str, notes: _Notes) -> Recurrence | None:
    if start is None:
        return None
    until = _until(rule, start, tzid)
    problem = _rule_mismatch(rule, start) or (until if isinstance(until, str) else "")
    if problem:
        notes.problem("recurrence", problem)
        return None
    byday = tuple(f"{rule.ordinal}{_CODES[d]}" if rule.ordinal else _CODES[d] for d in rule.weekdays)
    try:
        return Recurrence(
            frequency=rule.frequency,
            interval=rule.interval,
            byday=byday,
            until=until if isinstance(until, datetime) else None,
            count=rule.count,
        )
    except CalendarError as error:
        notes.problem("recurrence", str(error))
        return None


def _until(rule: _Rule, start: datetime, tzid: str) -> datetime | str | None:
    """The series' UNTIL in UTC, None when it ends by a count, or a sentence saying what is wrong."""
    if rule.until is not None:
        return _until_date(rule.until, start, tzid)
    if rule.span is not None:
        return _until_span(rule.span, start, tzid)
    if rule.count is None:
        return "the series has no end: add “until 30 June 2027” or “for six months”"
    return None


def _until_date(parts: tuple[int | None, int, int], start: datetime, tzid: str) -> datetime | str:
    try:
        last = _resolve(parts, start.date())
    except ValueError:
        return "the end date of the series is not a date in the calendar"
    if not start.date() <= last <= start.date().replace(year=start.year + _YEARS_AHEAD, day=28):
        return f"the series should end after its first meeting and within {_YEARS_AHEAD} years"
    return datetime.combine(last, time(23, 59, 59), tzinfo=zone_for(tzid)).astimezone(UTC)


def _until_span(span: tuple[int, str], start: datetime, tzid: str) -> datetime | str:
    amount, unit = span
    if amount * {"year": 365, "month": 31, "week": 7}[unit] > _YEARS_AHEAD * 366:
        return f"a series may run {_YEARS_AHEAD} years at most"
    end = _add_months(start.replace(tzinfo=None), {"year": 12 * amount, "month": amount}.get(unit, 0))
    end += timedelta(weeks=amount if unit == "week" else 0)
    # "For six months" from 9 March ends before 9 September: the last second before is the UNTIL.
    return (end.replace(tzinfo=zone_for(tzid)) - timedelta(seconds=1)).astimezone(UTC)


def _rule_mismatch(rule: _Rule, start: datetime) -> str:
    weekday = start.weekday()
    if rule.weekdays and weekday not in rule.weekdays:
        days = " and ".join(f"{_DAY_NAMES[d]}s" for d in rule.weekdays)
        return f"{_long(start.date())} is a {_DAY_NAMES[weekday]}, but the meetings are on {days}"
    if rule.ordinal and _nth_weekday(start.date().replace(day=1), weekday, rule.ordinal) != start.date():
        return f"{_long(start.date())} is not the day of the month the rule names"
    if rule.frequency is Frequency.MONTHLY and not rule.weekdays and start.day > _LAST_SAFE_MONTHDAY:
        return (
            f"not every month has a day {start.day}: choose a day up to the 28th, or write "
            "“the last Friday of every month”"
        )
    return ""


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later, or that month's last day when it is shorter."""
    years, month0 = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    following = date(year + (month0 + 1) // 12, (month0 + 1) % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))


def _kind(fields: dict[str, list[str]], text: str, join_url: str, dial_in: str, notes: _Notes) -> Kind | None:
    kind = None
    web, phone = bool(_WEB_WORDS.search(text)), bool(_PHONE_WORDS.search(text))
    if "kind" in fields:
        value = " ".join(fields["kind"])
        kind = Kind.WEB if _WEB_WORDS.search(value) else Kind.PHONE if _PHONE_WORDS.search(value) else None
        if kind is None:
            notes.problem("kind", f"“{value.strip()}” is neither web nor phone")
    elif join_url or dial_in:
        kind = Kind.WEB if join_url else Kind.PHONE
    elif web != phone:
        kind = Kind.WEB if web else Kind.PHONE
    else:
        notes.problem("kind", "say whether it is a web or a phone meeting (“Kind: web”)")
    if kind is Kind.WEB and not join_url:
        notes.problem("link", "a web meeting needs its link (“Link: https://…”)")
    if kind is Kind.PHONE and not dial_in:
        notes.problem("dial-in", "a phone meeting needs its dial-in number (“Dial-in: +32 2 123 45 67”)")
    return kind
