"""The words, abbreviations and patterns scheduling mails are read with, in the languages members write.

Private to :mod:`mailflow.core.when`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta


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


def _long(day: date) -> str:
    # Names from our own tables: strftime would follow the process's locale.
    return f"{_DAY_NAMES[day.weekday()]} {day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"
