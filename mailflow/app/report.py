"""``mailflow report facilitators --year YYYY``: who facilitated a group, and for how many months (SPEC §2.3).

Facilitating Participants get a 50% discount on their participant fee; the secretariat needs, per year, each
organisation that facilitated and for how many months. The facilitation periods are the facilitator terms
(:class:`~mailflow.store.schema.FacilitatorTerm`) and nothing else: the app opens a term when a facilitator
starts (an approved START whose starter may facilitate, a facilitator declared in config by ``mailflow init``)
and ends it when they stop (``left``: they left the group; ``replaced``: config named another; ``closed``: the
group closed). A term still open runs until "now" (the runtime's clock), so the report of the current year
counts only what has happened. A term is also cut at its group's closing, should it run past it (running
``mailflow init`` again after a group with a declared facilitator closed opens a term in the closed group).

**Organisation.** A term counts for the organisation it recorded when it began (``organisation_id``), not
the contact's organisation today: a facilitator who later moved to another organisation, or whose address
the registry later gave to another, still counts for the one they facilitated for. Only a term recorded
without an organisation (a facilitator declared in config before the registry knew their domain) counts for
the contact's current organisation.

**Months.** Days are calendar days in the network's time zone (``[network] timezone``); a day counts when
the organisation facilitated at any moment of it. A calendar month of the year counts when the organisation
facilitated on at least half of its days: each month is rounded to the nearest whole month, a tie going to
the facilitator. Counting every month touched would give a mid-month handover's month to both organisations
and a single day's appointment a whole month; counting only whole months would refuse the month to a
facilitator appointed on the 2nd. An organisation facilitating two groups in the same month counts that month
once (the days of all its groups are united first). A group that is still ``forming`` counts: its facilitator
is already at work gathering participants. Each row also gives ``days`` and ``counted_months`` so the count
can be checked by hand.

**Eligibility.** Only an organisation whose registry status is ``participant`` is ``eligible`` for the
discount. Strategic partners, other organisations and facilitators without an organisation are listed too,
with ``eligible`` false and a ``reason``: SPEC §2.3 says they should not facilitate, so the secretariat
should see it rather than have it hidden. The status is today's; the registry keeps no history of it.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.runtime import Runtime
from mailflow.errors import MailflowError
from mailflow.store.schema import Contact, FacilitatorTerm, Group, Organisation

Row = dict[str, Any]

FIRST_YEAR, LAST_YEAR = 2000, 2100
"""The years a report may be asked for."""

_TICK = timedelta(microseconds=1)
_REASONS = {
    "strategic_partner": "a Strategic Partner, not a Participant (SPEC §2.3)",
    "none": "not a network Participant",
}
_NO_ORGANISATION = "no organisation in the registry for this address"


@dataclass(frozen=True, slots=True)
class Period:
    """One contact facilitating one group from ``start`` until ``end`` (None: still facilitating)."""

    group: str
    contact: str
    organisation_id: int | None
    start: datetime
    end: datetime | None


def parse_year(text: str | None) -> int:
    """The report's year from ``--year``.

    Raises:
        MailflowError: the year is missing, not a number, or outside 2000..2100.
    """
    if text is None:
        raise MailflowError("--year is required, e.g. --year 2027")
    try:
        year = int(text.strip())
    except ValueError:
        raise MailflowError(f"--year: {text!r} is not a year; give four digits, e.g. 2027") from None
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise MailflowError(f"--year: {year} is out of range; give a year from {FIRST_YEAR} to {LAST_YEAR}")
    return year


def facilitators(runtime: Runtime, year: int) -> list[Row]:
    """One row per organisation that facilitated a group in ``year``: Participants first, by name.

    Each row has ``organisation`` (None for a contact without one), ``country``, ``status``, ``eligible``,
    ``reason`` (why not eligible, else None), ``months`` (0..12), ``counted_months`` (``YYYY-MM``), ``days``,
    ``groups`` (slugs), ``contacts`` and ``periods`` (``group``, ``contact``, ``from`` and ``to`` as local
    dates, both days included, ``to`` None while it runs).
    """
    zone = ZoneInfo(runtime.settings.network.timezone)
    now = runtime.clock()
    with runtime.sessions() as session:
        periods = facilitation_periods(session)
        organisations = {o.id: o for o in session.scalars(select(Organisation))}
    # An organisation's periods are counted together; a contact without one stands alone.
    by_key: dict[int | str, list[Period]] = defaultdict(list)
    for period in periods:
        by_key[period.contact if period.organisation_id is None else period.organisation_id].append(period)
    rows: list[Row] = []
    for key, own in by_key.items():
        days = facilitated_days(own, year, zone, now)
        if not days:
            continue
        months = counted_months(days, year)
        organisation = organisations.get(key) if isinstance(key, int) else None
        status = organisation.status if organisation else None
        in_year = [p for p in own if _days_of(p, year, zone, now)]
        rows.append(
            {
                "organisation": organisation.name if organisation else None,
                "country": organisation.country if organisation else None,
                "status": status,
                "eligible": status == "participant",
                "reason": None if status == "participant" else _REASONS.get(status or "", _NO_ORGANISATION),
                "months": len(months),
                "counted_months": [f"{year}-{month:02d}" for month in months],
                "days": len(days),
                "groups": sorted({p.group for p in in_year}),
                "contacts": sorted({p.contact for p in in_year}),
                "periods": [_period_row(p, zone) for p in in_year],
            }
        )
    rows.sort(
        key=lambda r: (
            not r["eligible"],
            r["organisation"] is None,
            (r["organisation"] or "").casefold(),
            r["contacts"],
        )
    )
    return rows


def facilitation_periods(session: Session) -> list[Period]:
    """Every facilitator term on record, cut at its group's closing, by group, contact and start.

    A term's organisation is the one it recorded; the contact's current one only when it recorded none.
    """
    terms = session.execute(
        select(
            Group.slug,
            Group.closed_at,
            Contact.email,
            FacilitatorTerm.organisation_id,
            Contact.organisation_id,
            FacilitatorTerm.started_at,
            FacilitatorTerm.ended_at,
        )
        .select_from(FacilitatorTerm)
        .join(Group, FacilitatorTerm.group_id == Group.id)
        .join(Contact, FacilitatorTerm.contact_id == Contact.id)
        .order_by(Group.slug, Contact.email, FacilitatorTerm.started_at, FacilitatorTerm.id)
    )
    periods = []
    for slug, closed_at, email, term_org, contact_org, start, ended in terms:
        end = ended
        if closed_at is not None and (end is None or end > closed_at):
            end = closed_at
        if end is None or end > start:
            periods.append(Period(slug, email, contact_org if term_org is None else term_org, start, end))
    return periods


def facilitated_days(periods: Iterable[Period], year: int, zone: tzinfo, now: datetime) -> set[date]:
    """The days of ``year`` (in ``zone``) on which any of ``periods`` ran, up to ``now``."""
    days: set[date] = set()
    for period in periods:
        days |= _days_of(period, year, zone, now)
    return days


def _days_of(period: Period, year: int, zone: tzinfo, now: datetime) -> set[date]:
    first = datetime(year, 1, 1, tzinfo=zone)
    after = datetime(year + 1, 1, 1, tzinfo=zone)
    start = max(period.start, first)
    end = min(period.end or now, now, after)
    if end <= start:
        return set()
    day, last = start.astimezone(zone).date(), (end - _TICK).astimezone(zone).date()
    return {day + timedelta(days=n) for n in range((last - day).days + 1)}


def counted_months(days: set[date], year: int) -> list[int]:
    """The months (1..12) of ``year`` in which ``days`` cover at least half of the month's days."""
    per_month: dict[int, int] = defaultdict(int)
    for day in days:
        if day.year == year:
            per_month[day.month] += 1
    return [m for m in range(1, 13) if 2 * per_month[m] >= calendar.monthrange(year, m)[1]]


def _local_day(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).date().isoformat()


def _period_row(period: Period, zone: tzinfo) -> Row:
    return {
        "group": period.group,
        "contact": period.contact,
        "from": _local_day(period.start, zone),
        "to": _local_day(period.end - _TICK, zone) if period.end else None,
    }


CSV_COLUMNS = (
    "organisation",
    "country",
    "status",
    "eligible",
    "months",
    "counted_months",
    "days",
    "groups",
    "contacts",
    "periods",
    "reason",
)
"""The CSV header; list fields are joined with ``;`` and periods written ``group contact from..to``."""


def csv_text(rows: list[Row]) -> str:
    """The report as CSV with a header row (``eligible`` as ``true``/``false``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        periods = [f"{p['group']} {p['contact']} {p['from']}..{p['to'] or ''}" for p in row["periods"]]
        writer.writerow(
            [
                row["organisation"] or "",
                row["country"] or "",
                row["status"] or "",
                "true" if row["eligible"] else "false",
                row["months"],
                ";".join(row["counted_months"]),
                row["days"],
                ";".join(row["groups"]),
                ";".join(row["contacts"]),
                ";".join(periods),
                row["reason"] or "",
            ]
        )
    return out.getvalue()


def table_rows(rows: list[Row]) -> list[Row]:
    """The rows shaped for the plain table: lists joined, a contact named where there is no organisation."""
    return [
        {
            **row,
            "organisation": row["organisation"] or ", ".join(row["contacts"]),
            "eligible": "yes" if row["eligible"] else "no",
            "groups": ", ".join(row["groups"]),
        }
        for row in rows
    ]
