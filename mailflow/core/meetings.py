"""What the meeting mails say: template facts about a meeting, pure and testable on their own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from mailflow.core import calendar as cal

_UPCOMING = 6


def _zone(tzid: str) -> tzinfo:
    return UTC if tzid.upper() == "UTC" else ZoneInfo(tzid)


def local_long(moment: datetime, tzid: str) -> str:
    """A time as a person reads it: "Friday 12 March 2027, 14:00 CET (Europe/Brussels)"."""
    local = moment.astimezone(_zone(tzid))
    return f"{local:%A %d %B %Y, %H:%M} {local.tzname()} ({tzid})"


def local_short(moment: datetime, tzid: str) -> str:
    """A time short enough for a subject: "Fri 12 Mar 2027, 14:00 CET"."""
    local = moment.astimezone(_zone(tzid))
    return f"{local:%a %d %b %Y, %H:%M} {local.tzname()}"


def meeting_context(
    meeting: cal.Meeting,
    overrides: Sequence[cal.Occurrence],
    *,
    meeting_id: int,
    group_slug: str,
    group_name: str,
    now: datetime,
) -> dict[str, Any]:
    """Template facts about a meeting: its times in its zone and in UTC, how to join, what comes next."""
    upcoming = [i for i in cal.occurrences(meeting, overrides) if i.start + i.duration > now][:_UPCOMING]
    return {
        "meeting": {
            "id": meeting_id,
            "title": meeting.summary,
            "kind": meeting.kind.value,
            "status": "cancelled" if meeting.status is cal.Status.CANCELLED else "scheduled",
            "sequence": meeting.sequence,
            "start": local_long(meeting.start, meeting.tzid),
            "start_short": local_short(meeting.start, meeting.tzid),
            "end": local_long(meeting.start + meeting.duration, meeting.tzid),
            "start_utc": meeting.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_minutes": int(meeting.duration.total_seconds() // 60),
            "tzid": meeting.tzid,
            "join_url": meeting.join_url,
            "dial_in": meeting.dial_in.removeprefix("tel:"),
            "pin": meeting.pin,
            "description": meeting.description,
            "recurring": meeting.recurrence is not None,
            "next": [local_long(i.start, meeting.tzid) for i in upcoming],
        },
        "group": {"slug": group_slug, "name": group_name},
        "occurrence": None,
        "leaving": False,
    }
