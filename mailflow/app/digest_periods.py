"""Digest periods: weekly from a weekday's hour, monthly from the 1st's hour, in the network's time zone.

A tick at time T sends the digest of the last period that ended at or before T, so a tick every minute sends
it once just after the boundary, and a tick hours or days late still sends it, once, for the period that
ended. Times are compared in UTC: two aware datetimes with the same ``ZoneInfo`` compare by wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailflow.config import DigestSettings

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FREQUENCIES = ("weekly", "monthly")
"""The frequencies that send a digest; ``off`` sends none."""


@dataclass(frozen=True, slots=True)
class Period:
    """One digest period, ``start`` included and ``end`` excluded, both aware UTC.

    Attributes:
        frequency: ``weekly`` or ``monthly``.
        start: when the period began.
        end: when it ended (the next one's start).
        zone: the network's time zone, in which the period's boundaries fall on the hour.
    """

    frequency: str
    start: datetime
    end: datetime
    zone: str

    @property
    def key(self) -> str:
        """The period in once-keys: ``weekly/2026-11-23T08:00:00+01:00``."""
        return f"{self.frequency}/{self.start.astimezone(ZoneInfo(self.zone)).isoformat()}"

    def label(self) -> str:
        """The period as a person reads it: "23 to 29 November 2026", "November 2026"."""
        zone = ZoneInfo(self.zone)
        first = self.start.astimezone(zone).date()
        last = self.end.astimezone(zone).date() - timedelta(days=1)
        if self.frequency == "monthly":
            return f"{first:%B %Y}"
        if first.year != last.year:
            return f"{first.day} {first:%B %Y} to {last.day} {last:%B %Y}"
        if first.month != last.month:
            return f"{first.day} {first:%B} to {last.day} {last:%B %Y}"
        return f"{first.day} to {last.day} {last:%B %Y}"

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in the period."""
        return self.start <= moment.astimezone(UTC) < self.end


def _at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def _month_before(day: date) -> date:
    return date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1)


def last_period(frequency: str, now: datetime, settings: DigestSettings, timezone: str) -> Period:
    """The last ``weekly`` or ``monthly`` period that ended at or before ``now``.

    Raises:
        ValueError: ``frequency`` is neither ``weekly`` nor ``monthly``.
    """
    zone = ZoneInfo(timezone)
    now = now.astimezone(UTC)
    local = now.astimezone(zone).date()
    if frequency == "weekly":
        weekday = WEEKDAYS.index(settings.weekday)
        boundary = local - timedelta(days=(local.weekday() - weekday) % 7)
        if _at(boundary, settings.hour, zone) > now:
            boundary -= timedelta(days=7)
        previous = boundary - timedelta(days=7)
    elif frequency == "monthly":
        boundary = local.replace(day=1)
        if _at(boundary, settings.hour, zone) > now:
            boundary = _month_before(boundary)
        previous = _month_before(boundary)
    else:
        raise ValueError(f"no digest period for {frequency!r}")
    return Period(frequency, _at(previous, settings.hour, zone), _at(boundary, settings.hour, zone), timezone)


def horizon(frequency: str) -> timedelta:
    """How far ahead a digest lists meetings: four weeks in a weekly digest, two months in a monthly one."""
    return timedelta(days=28) if frequency == "weekly" else timedelta(days=62)
