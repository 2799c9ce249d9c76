"""The calendar's vocabulary: its error, the iTIP and iCalendar enumerations, recurrence rules and zones.

Private to :mod:`mailflow.core.calendar`, which re-exports the public names.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "Z"})
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)")
_EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+")
_TZID = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,30}(?:/[A-Za-z0-9_+\-]{1,30}){0,2}")
_MAX_INTERVAL = 99


class CalendarError(ValueError):
    """A meeting cannot be written as given, or a calendar body cannot be read as an iMIP REPLY."""


class Method(enum.StrEnum):
    """The iTIP methods the service sends."""

    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


class Kind(enum.StrEnum):
    """How members join a meeting."""

    WEB = "web"
    PHONE = "phone"


class Frequency(enum.StrEnum):
    """The recurrence frequencies a facilitator can ask for."""

    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class Status(enum.StrEnum):
    """A meeting's iCalendar STATUS."""

    CONFIRMED = "CONFIRMED"
    TENTATIVE = "TENTATIVE"
    CANCELLED = "CANCELLED"


class PartStat(enum.StrEnum):
    """An attendee's participation status (RFC 5545 §3.2.12)."""

    NEEDS_ACTION = "NEEDS-ACTION"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    TENTATIVE = "TENTATIVE"
    DELEGATED = "DELEGATED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recurrence:
    """A weekly or monthly rule, bounded by ``until`` (an aware instant, written in UTC) or ``count``.

    ``byday`` holds RFC 5545 weekday codes: ``("TU",)`` for weekly rules, ``("2TU",)`` or ``("-1FR",)``
    for "the second Tuesday" or "the last Friday" of a month; empty means the start's weekday (weekly)
    or day of the month (monthly).
    """

    frequency: Frequency
    interval: int = 1
    byday: tuple[str, ...] = ()
    until: datetime | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        """Refuse rules that are unbounded or that clients would read differently."""
        if (self.until is None) == (self.count is None):
            raise CalendarError("a recurrence needs exactly one of until and count")
        if self.until is not None and self.until.tzinfo is None:
            raise CalendarError("a recurrence's until must be an aware datetime")
        if self.count is not None and self.count < 1:
            raise CalendarError("a recurrence's count must be at least 1")
        if not 1 <= self.interval <= _MAX_INTERVAL:
            raise CalendarError(f"a recurrence's interval must be 1 to {_MAX_INTERVAL}")
        for code in self.byday:
            found = _BYDAY.fullmatch(code)
            if found is None:
                raise CalendarError(f"{code!r} is not a weekday code such as TU, 2TU or -1FR")
            if found.group(1) and self.frequency is Frequency.WEEKLY:
                raise CalendarError(f"a weekly rule takes plain weekdays, not {code!r}")


def _check_address(address: str, role: str) -> None:
    if not _EMAIL.fullmatch(address):
        raise CalendarError(f"the {role} address {address!r} is not a mail address")


def zone_for(tzid: str) -> tzinfo:
    """The zone an IANA name such as "Europe/Brussels" names; ``datetime.UTC`` for "UTC".

    Raises:
        CalendarError: the name is not a zone of the zoneinfo database.
    """
    if tzid.upper() in _UTC_NAMES:
        return UTC
    # The shape is checked first: ZoneInfo looks an unknown key up as a module path in the tzdata
    # package, and a deep one ("a/a/a/…") exhausts the recursion limit.
    if not _TZID.fullmatch(tzid):
        raise CalendarError(f"{tzid[:80]!r} is not an IANA time zone such as Europe/Brussels")
    try:
        return ZoneInfo(tzid)
    except (ValueError, KeyError, OSError) as exc:
        # ZoneInfoNotFoundError is a KeyError; a folder such as "America/Argentina" is an OSError.
        raise CalendarError(f"{tzid!r} is not an IANA time zone such as Europe/Brussels") from exc
