"""Benchmark of a digest run for a large network: member digests and the network digest, rendered and queued.

Each run gets a fresh temp folder and database (a SQLite file, or a new PostgreSQL schema on 127.0.0.1) and a
year of simulated activity, inserted with SQLAlchemy Core (setup, not timed): organisations, 10,000 contacts
with memberships spread over 50 groups, facilitators' updates, decided requests, memberships begun over the
year, meetings with their attendances, groups forming. Then the digests fall due: ``mailflow tick --now`` as
a subprocess (wall time with start-up, peak RSS), or ``mailflow.app.schedule.tick`` per job in a fresh Python
process. Each run is checked: the outbox holds what tick reported, exactly the digests the rules ask for, a
second tick queues nothing, and a sample of the mails is parsed in full. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import itertools
import json
import math
import os
import pstats
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from mailflow.app import schedule
from mailflow.app.digest_periods import FREQUENCIES, horizon, last_period
from mailflow.app.meeting_rows import last_end, occurrence_key, overrides_of, recurrence_columns, to_core
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.config import Settings, load_settings
from mailflow.core import calendar as cal
from mailflow.core.compose import render
from mailflow.store.schema import (
    Attendance,
    Base,
    Contact,
    Event,
    Group,
    GroupUpdate,
    Meeting,
    MeetingOccurrence,
    Membership,
    Organisation,
    OrgDomain,
    OutboxMessage,
    Request,
)
from mailflow.testing import SERVICE, write_config


def _load_bench(name: str) -> ModuleType:
    """bench/<name>.py, under a name that cannot shadow a package of PyPI (``requests``)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mt = _load_bench("meetings")  # timed (wall time, VmHWM, stdout of a child), _one_line
rq = mt.rq  # PG_URL, APPROVERS, Children, mailflow, run_cli, _execute, reader, vm_hwm_mib, table, _f

NOW = "2027-03-01T07:05:00+00:00"  # Monday 1 March 2027, 08:05 in Brussels: a week and a month just ended
JOB_NAMES = ("member_digests", "network_digest")
KINDS = {"member_digests": "digest", "network_digest": "network_digest"}
TARGET_SECONDS, TARGET_MB = 10.0, 300.0
TARGET_MIB = TARGET_MB * 1e6 / 2**20  # VmHWM is in KiB: 300 MB is 286 MiB
SAMPLE = 20  # member digests parsed in full per run (and a few network digests)
LOG_LINE = re.compile(r"^(\S+ \S+) INFO mailflow\.schedule: tick (\w+): ", re.MULTILINE)
CHILD_LOG = "meetings.log"  # where meetings.py's ``timed`` writes a child's stderr
TICK_LINE = re.compile(r"^(\w+): (\d+) queued, (\d+) already sent$")
DOMAIN = SERVICE.rpartition("@")[2]

# -- the simulated network ----------------------------------------------------------------------------------

PLACES = (
    "Aarhus",
    "Barcelona",
    "Bergen",
    "Bologna",
    "Bonn",
    "Bratislava",
    "Bristol",
    "Brno",
    "Cork",
    "Dresden",
    "Eindhoven",
    "Espoo",
    "Gdansk",
    "Ghent",
    "Girona",
    "Graz",
    "Groningen",
    "Lahti",
    "Leuven",
    "Lille",
    "Ljubljana",
    "Lyon",
    "Malmo",
    "Mannheim",
    "Nantes",
    "Oulu",
    "Porto",
    "Poznan",
    "Riga",
    "Rotterdam",
    "Split",
    "Tampere",
    "Tartu",
    "Torino",
    "Turku",
    "Utrecht",
    "Valencia",
    "Vilnius",
    "Wroclaw",
    "Zagreb",
)
FIRST = (
    ("Anna", "anna"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("María", "maria"),
    ("Jean-Luc", "jeanluc"),
    ("Aoife", "aoife"),
    ("Giulia", "giulia"),
    ("Björn", "bjorn"),
    ("Çağla", "cagla"),
    ("Tomás", "tomas"),
    ("Eva", "eva"),
)
LAST = (
    ("Ångström", "angstrom"),
    ("Müller", "muller"),
    ("Dubois", "dubois"),
    ("Kowalski", "kowalski"),
    ("Rossi", "rossi"),
    ("Ó Súilleabháin", "osuilleabhain"),
    ("Jansen", "jansen"),
    ("García", "garcia"),
    ("Nielsen", "nielsen"),
    ("Papadopoulou", "papadopoulou"),
)
TOPICS = (
    "Circular Construction",
    "Zero-Emission Buses",
    "Sustainable Food and Catering",
    "Socially Responsible ICT",
    "Clean Vehicles",
    "Green Public Lighting",
    "Textiles and Workwear",
    "Low-Carbon Concrete",
    "Furniture Reuse",
    "Cleaning Products",
    "Energy Performance Contracting",
    "Healthcare Supplies",
    "Innovation Procurement",
    "Data Centres",
    "Waste Collection",
    "School Meals",
    "Heat Pumps",
    "Paper and Print",
    "Fair Trade Coffee",
    "Water Infrastructure",
    "Road Maintenance",
    "Electric Charging Points",
    "Human Rights in Supply Chains",
    "Public Buildings Renovation",
    "Office IT Lifecycle",
)
SENTENCES = (
    "We compared the tender criteria that five members used for the same product group last year.",
    "The working session on life-cycle costing drew twelve organisations; the slides are on the drive.",
    "Two members published joint market consultations, and suppliers answered in larger numbers than usual.",
    "A draft of the common specification is ready for comments until the end of the month.",
    "Our next step is a short survey on how contract management checks the promised emissions cuts.",
    "The legal subgroup looked at how far social clauses can go under the current directives.",
    "Several cities asked for model clauses in more languages; volunteers to translate are welcome.",
    "The pilot with the regional procurement centre ends in June, with a report to the whole network.",
    "We invite members to share award decisions that used carbon footprints as a criterion.",
    "A supplier day is planned for the autumn; please tell us which product groups matter most to you.",
    "The results of the benchmarking exercise show wide differences in prices for comparable quality.",
    "Thanks to everyone who sent examples of verification schemes; the overview is attached to the minutes.",
    "See https://network.example/groups/resources for the documents mentioned in this update.",
)
AIMS = (
    "Share tender documents and results, and agree on common criteria.",
    "Pool demand across members to reach suppliers that a single authority cannot.",
    "Build a library of model clauses and contract management checks.",
)
ZONES = ("Europe/Brussels",) * 8 + ("Europe/Lisbon", "Europe/Helsinki", "Europe/London", "UTC")
NEEDS, YES, NO, MAYBE = (
    cal.PartStat.NEEDS_ACTION.value,
    cal.PartStat.ACCEPTED.value,
    cal.PartStat.DECLINED.value,
    cal.PartStat.TENTATIVE.value,
)
ANSWERS_AHEAD = ((NEEDS, 45), (YES, 30), (MAYBE, 10), (NO, 15))
ANSWERS_PAST = ((NEEDS, 25), (YES, 45), (MAYBE, 10), (NO, 20))


def _choice(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * rng.random() if end > start else start


def _weighted_sample(rng: random.Random, items: Sequence[int], weights: Sequence[float], k: int) -> list[int]:
    """``k`` distinct items, each drawn with its weight (Efraimidis and Spirakis)."""
    keyed = sorted(
        ((rng.random() ** (1.0 / w), i) for i, w in zip(items, weights, strict=True)), reverse=True
    )
    return [i for _, i in keyed[:k]]


def _business(
    rng: random.Random, around: datetime, tzid: str, weekdays: Sequence[int] = range(5)
) -> datetime:
    """A meeting start in working hours in ``tzid``, on one of ``weekdays`` on or after ``around``'s day."""
    zone = cal.zone_for(tzid)
    day = around.astimezone(zone).date()
    while day.weekday() not in weekdays:
        day += timedelta(days=1)
    start = clock_time(rng.choice((9, 10, 14, 15)), rng.choice((0, 30)))
    return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _update_text(rng: random.Random) -> str:
    paragraphs = [
        " ".join(rng.sample(SENTENCES, rng.randint(1, 4))) for _ in range(rng.choice((1, 2, 2, 3, 6)))
    ]
    return "\n\n".join(paragraphs)


@dataclass
class World:
    """The network that ``populate`` made, and how long that took (setup, not timed)."""

    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    contacts_by_choice: dict[str, int] = field(default_factory=dict)
    orgs_by_status: dict[str, int] = field(default_factory=dict)
    groups_by_status: dict[str, int] = field(default_factory=dict)
    groups_per_contact: dict[int, int] = field(default_factory=dict)
    largest_group: int = 0
    meetings_ahead: int = 0


class _Builder:
    """Generates the rows of one simulated network; ``insert`` writes them in one transaction."""

    def __init__(self, contacts: int, groups: int, now: datetime, seed: int) -> None:
        self.rng, self.now = random.Random(seed), now  # noqa: S311 - a reproducible simulation, no secrets
        self.year_ago = now - timedelta(days=365)
        self.world = World()
        self._orgs(max(1, contacts // 20))
        self._contacts(contacts)
        self._groups(groups)
        self._memberships()

    # -- organisations, contacts, groups ------------------------------------------------------------------

    def _orgs(self, count: int) -> None:
        rng, now = self.rng, self.now
        statuses = (("participant", 65), ("strategic_partner", 10), ("none", 25))
        self.orgs = []
        for k in range(count):
            place = PLACES[k % len(PLACES)] + (f" {k // len(PLACES) + 1}" if k >= len(PLACES) else "")
            self.orgs.append(
                {
                    "name": f"City of {place}",
                    "country": "",
                    "status": _choice(rng, statuses),
                    "created_at": now - timedelta(days=900),
                    "updated_at": now - timedelta(days=900),
                    "domain": f"{_slug(place)}.example",
                }
            )
        self.participant_orgs = [k for k, o in enumerate(self.orgs) if o["status"] == "participant"]

    def _contacts(self, count: int) -> None:
        rng = self.rng
        choices = (("weekly", 75), ("monthly", 15), ("off", 10))
        self.contacts = []
        self.by_org: defaultdict[int, list[int]] = defaultdict(list)
        for i in range(count):
            org = i * len(self.orgs) // count
            (first, a), (last, b) = rng.choice(FIRST), rng.choice(LAST)
            self.contacts.append(
                {
                    "email": f"{a}.{b}.{i}@{self.orgs[org]['domain']}",
                    "name": "" if rng.random() < 0.1 else f"{first} {last}",
                    "org": org,
                    "digest": _choice(rng, choices),
                }
            )
            self.by_org[org].append(i)

    def _groups(self, count: int) -> None:
        rng, now = self.rng, self.now
        forming = max(1, round(count * 0.12))
        closed = round(count * 0.04)
        statuses = ["forming"] * forming + ["closed"] * closed
        statuses += ["active"] * (count - len(statuses))
        self.groups = []
        taken: set[int] = set()
        for g, status in enumerate(statuses):
            topic = TOPICS[g % len(TOPICS)] + (f" {g // len(TOPICS) + 1}" if g >= len(TOPICS) else "")
            row: dict[str, Any] = {
                "slug": _slug(topic),
                "name": topic,
                "aliases": [],
                "status": status,
                "associated": False,
                "description": "",
                "aim": rng.choice(AIMS),
                "declared": False,
                "activated_at": None,
                "ends_at": None,
                "closed_at": None,
            }
            if status == "active":
                # Inside its two-year period with more than the 60 days' notice left: no end question.
                row["activated_at"] = now - timedelta(days=rng.uniform(30, 600))
                row["created_at"] = row["activated_at"] - timedelta(days=rng.uniform(20, 120))
                row["ends_at"] = row["activated_at"] + timedelta(days=730)
            elif status == "closed":
                row["activated_at"] = now - timedelta(days=rng.uniform(800, 1000))
                row["created_at"] = row["activated_at"] - timedelta(days=60)
                row["closed_at"] = row["ends_at"] = now - timedelta(days=rng.uniform(30, 300))
            else:
                row["created_at"] = now - timedelta(days=rng.uniform(10, 300))
            self.groups.append(row)
        active = [g for g, row in enumerate(self.groups) if row["status"] == "active"]
        forming_ids = [g for g, row in enumerate(self.groups) if row["status"] == "forming"]
        # Some news of the group's life: one group became active last week and one earlier in the month;
        # two groups were started last week; two active groups are associated (no call to join them).
        for g, days in zip(active[:2], (3, 17), strict=False):
            self.groups[g]["activated_at"] = now - timedelta(days=days)
            self.groups[g]["ends_at"] = now + timedelta(days=730 - days)
        for g in forming_ids[:2]:
            self.groups[g]["created_at"] = now - timedelta(days=rng.uniform(1, 6))
        for g in active[-2:]:
            self.groups[g]["associated"] = True
        # A facilitator from a participant organisation for every group: someone who facilitates no other.
        for row in self.groups:
            while True:
                person = rng.choice(self.by_org[rng.choice(self.participant_orgs)])
                if person not in taken:
                    taken.add(person)
                    row["facilitator"] = person
                    break

    # -- memberships ----------------------------------------------------------------------------------------

    def _joined(self, group: dict[str, Any]) -> datetime:
        """Most joined before the year; about a third during it (the new memberships of the year)."""
        start, latest = group["created_at"], group["closed_at"] or self.now - timedelta(hours=2)
        if self.rng.random() < 0.3 or start >= self.year_ago:
            return _between(self.rng, max(start, self.year_ago), latest)
        return _between(self.rng, start, min(self.year_ago, latest))

    def _memberships(self) -> None:
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        for g, group in enumerate(self.groups):
            self._seat(g, group["facilitator"], "facilitator", group["created_at"])
        self._forming_members()
        self._spread_members()
        rng, now = self.rng, self.now
        for (g, _person), row in self.members.items():
            group = self.groups[g]
            if group["status"] == "closed":
                row["status"], row["left_at"] = "left", group["closed_at"]
            elif row["role"] == "member" and rng.random() < 0.04:
                left = _between(rng, row["joined_at"], now - timedelta(hours=1))
                row["status"], row["left_at"] = "left", left
        first: dict[int, datetime] = {}
        for (_g, person), row in self.members.items():
            first[person] = min(first.get(person, row["joined_at"]), row["joined_at"])
        for person, contact in enumerate(self.contacts):
            joined = first.get(person, now - timedelta(days=rng.uniform(30, 900)))
            contact["created_at"] = joined - timedelta(days=rng.uniform(0, 20))

    def _forming_members(self) -> None:
        """A forming group: a few people of at most two participant organisations (three make it active)."""
        rng = self.rng
        for g, group in enumerate(self.groups):
            if group["status"] == "forming":
                home = self.contacts[group["facilitator"]]["org"]
                other = rng.choice([k for k in self.participant_orgs if k != home] or [home])
                for org in (home, other):
                    for person in rng.sample(self.by_org[org], min(3, len(self.by_org[org]))):
                        self._seat(g, person, "member", self._joined(group))

    def _spread_members(self) -> None:
        """Everyone: most in one to three groups, some in none; popular groups much larger than the rest."""
        rng = self.rng
        pool = [g for g, group in enumerate(self.groups) if group["status"] != "forming"]
        order = rng.sample(range(len(pool)), len(pool))
        weights = [1.0 / (rank + 4) for rank in order]
        spread = ((0, 10), (1, 45), (2, 28), (3, 12), (4, 2.5), (5, 1.5), (6, 1))
        for person in range(len(self.contacts)):
            for g in _weighted_sample(rng, pool, weights, min(_choice(rng, spread), len(pool))):
                self._seat(g, person, "member", self._joined(self.groups[g]))

    def _seat(self, g: int, person: int, role: str, joined: datetime) -> None:
        if (g, person) not in self.members:
            self.members[g, person] = {"role": role, "status": "active", "joined_at": joined, "left_at": None}

    # -- the year's activity --------------------------------------------------------------------------------

    def requests(
        self, contact_ids: list[int], org_ids: list[int], group_ids: list[int]
    ) -> list[dict[str, Any]]:
        """Approved joins for the year's new memberships, some rejected, the year's starts, three pending."""
        rng, now = self.rng, self.now
        approver = rq.APPROVERS[0]
        base = {"topic": "", "aim": "", "question": "", "reason": "", "inbound_id": None, "message_id": ""}
        rows = []

        def add(kind: str, state: str, person: int, g: int, decided: datetime | None, **more: Any) -> None:
            created = (decided or now) - timedelta(hours=rng.uniform(1, 120))
            rows.append(
                base
                | {
                    "kind": kind,
                    "state": state,
                    "contact_id": contact_ids[person],
                    "organisation_id": org_ids[self.contacts[person]["org"]],
                    "group_id": group_ids[g],
                    "text": f"{kind.upper()} {self.groups[g]['slug']}",
                    "created_at": created,
                    "updated_at": decided or created,
                    "decided_at": decided,
                    "decided_by": approver if decided else None,
                }
                | more
            )

        for (g, person), row in self.members.items():
            if row["role"] == "member" and row["joined_at"] >= self.year_ago:
                add("join", "approved", person, g, row["joined_at"])
        for g, group in enumerate(self.groups):
            if group["created_at"] >= self.year_ago:
                add("start", "approved", group["facilitator"], g, group["created_at"], topic=group["name"])
        open_groups = [g for g, group in enumerate(self.groups) if group["status"] != "closed"]
        for _ in range(len(rows) // 12):
            g, person = rng.choice(open_groups), rng.randrange(len(self.contacts))
            if (g, person) not in self.members:
                when = _between(rng, self.year_ago, now - timedelta(hours=1))
                add("join", "rejected", person, g, when, reason="Not a member of the network.")
        for _ in range(3):  # younger than the reminder's 72 hours: no approval reminder
            g, person = rng.choice(open_groups), rng.randrange(len(self.contacts))
            if (g, person) not in self.members:
                add("join", "pending_approval", person, g, None, created_at=now - timedelta(hours=20))
        return rows

    def updates(self, contact_ids: list[int], group_ids: list[int]) -> list[dict[str, Any]]:
        """Facilitators' updates every two to six weeks; three groups went quiet over three months ago."""
        rng, now = self.rng, self.now
        rows = []
        quiet = 0
        for g, group in enumerate(self.groups):
            if group["activated_at"] is None:
                continue
            end = group["closed_at"] or now
            if group["status"] == "active" and not group["associated"] and quiet < 3 and rng.random() < 0.2:
                end, quiet = now - timedelta(days=rng.uniform(100, 150)), quiet + 1
            moment = group["activated_at"] + timedelta(days=rng.uniform(3, 30))
            person = group["facilitator"]
            while moment < end:
                rows.append(
                    {
                        "group_id": group_ids[g],
                        "contact_id": contact_ids[person],
                        "author": self.contacts[person]["email"],
                        "title": ""
                        if rng.random() < 0.2
                        else f"{rng.choice(('Spring', 'Autumn', 'Monthly'))} news",
                        "text": _update_text(rng),
                        "inbound_id": None,
                        "created_at": moment,
                    }
                )
                moment += timedelta(days=rng.uniform(10, 40))
        return rows

    def meetings(self, contact_ids: list[int], group_ids: list[int]) -> list[dict[str, Any]]:
        """Past meetings of the year, one ahead for most groups, a series for some; a few cancelled."""
        rng, now = self.rng, self.now
        rows = []
        for g, group in enumerate(self.groups):
            if group["status"] != "active":
                continue
            plans: list[tuple[datetime, cal.Recurrence | None]] = [
                (now - timedelta(days=rng.uniform(7, 330)), None) for _ in range(rng.choice((1, 2, 2)))
            ]
            if rng.random() < 0.85:  # at least 3 days ahead: no meeting reminder is due at NOW
                plans.append((now + timedelta(days=rng.uniform(3, 75)), None))
            if rng.random() < 0.2:
                rule = (
                    cal.Recurrence(frequency=cal.Frequency.MONTHLY, count=10)
                    if rng.random() < 0.5
                    else cal.Recurrence(frequency=cal.Frequency.WEEKLY, interval=2, count=14)
                )
                plans.append((now - timedelta(days=rng.uniform(60, 150)), rule))
            earliest = group["activated_at"] + timedelta(days=2)
            rows += [
                self._meeting(g, around, rule, contact_ids, group_ids)
                for around, rule in plans
                if around >= earliest  # none before the group began; none in the 24 hours after NOW
            ]
        return rows

    def _meeting(
        self,
        g: int,
        around: datetime,
        rule: cal.Recurrence | None,
        contact_ids: list[int],
        group_ids: list[int],
    ) -> dict[str, Any]:
        rng, group = self.rng, self.groups[g]
        tzid = rng.choice(ZONES)
        # Series on Wednesday to Friday: none of their occurrences falls in the 24 hours after NOW (a Monday).
        start = _business(rng, around, tzid, (2, 3, 4) if rule else range(5))
        created = min(start - timedelta(days=rng.uniform(5, 40)), self.now - timedelta(days=1))
        web = rng.random() < 0.8
        person = group["facilitator"]
        updated = rng.random() < 0.2
        return {
            "group_id": group_ids[g],
            "uid": f"{rng.getrandbits(96):024x}@{DOMAIN}",
            "sequence": int(updated),
            "answers_from_sequence": int(updated),
            "status": "cancelled" if rng.random() < 0.05 else "scheduled",
            "title": f"{group['name']}: {rng.choice(('exchange', 'working session', 'kick-off', 'review'))}",
            "kind": "web" if web else "phone",
            "starts_at": start,
            "duration_minutes": rng.choice((60, 90, 120)),
            "tzid": tzid,
            "join_url": f"https://meet.example/{group['slug']}/{rng.getrandbits(32):08x}" if web else "",
            "dial_in": "" if web and rng.random() < 0.7 else f"tel:+3225{rng.randrange(10**6):06d}",
            "pin": "" if web else f"{rng.randrange(10**4):04d}",
            "description": "Agenda and papers follow a week before." if rng.random() < 0.5 else "",
            **recurrence_columns(rule),
            "organizer_id": contact_ids[person],
            "created_by": self.contacts[person]["email"],
            "created_at": created,
            "updated_at": created + timedelta(days=1) if updated else created,
            "_g": g,  # not a column: the group's index, for the attendances
        }

    def overrides(self, meeting: dict[str, Any]) -> list[dict[str, Any]]:
        """A series may have one occurrence ahead moved by a day and one cancelled."""
        if not meeting["frequency"] or self.rng.random() < 0.5:
            return []
        core = to_core(Meeting(**_columns(meeting)), "", SERVICE)
        ahead = [i.recurrence_id for i in cal.occurrences(core) if i.start > self.now + timedelta(days=3)]
        if len(ahead) < 2:
            return []
        moved, dropped = ahead[0], ahead[1]
        base = {"duration_minutes": None, "updated_at": meeting["created_at"]}
        return [
            base | {"recurrence_id": moved, "starts_at": moved + timedelta(days=1), "cancelled": False},
            base | {"recurrence_id": dropped, "starts_at": None, "cancelled": True},
        ]

    def attendances(
        self, meeting: dict[str, Any], meeting_id: int, occurrences: list[datetime], contact_ids: list[int]
    ) -> list[dict[str, Any]]:
        """Who was invited and how they answered: the members of its creation, and who joined before its end.

        A member who left keeps the row, no longer invited. A few answered one occurrence of a series apart.
        """
        rng = self.rng
        g, created, ends = meeting["_g"], meeting["created_at"], meeting["ends_at"]
        answers = ANSWERS_AHEAD if ends > self.now else ANSWERS_PAST
        rows = []
        for (group, person), seat in self.members.items():
            if group != g or seat["joined_at"] >= ends or (seat["left_at"] and seat["left_at"] <= created):
                continue
            email = self.contacts[person]["email"]
            invited_at = max(created, seat["joined_at"])
            partstat = _choice(rng, answers)
            answered = None if partstat == NEEDS else _between(rng, invited_at, min(ends, self.now))
            row = {
                "meeting_id": meeting_id,
                "contact_id": contact_ids[person],
                "email": email,
                "occurrence": "",
                "partstat": partstat,
                "invited": seat["left_at"] is None,
                "answered_at": answered,
                "updated_at": answered or invited_at,
            }
            rows.append(row)
            if occurrences and rng.random() < 0.05:
                other = _choice(rng, ANSWERS_AHEAD)
                rows.append(row | {"occurrence": occurrence_key(rng.choice(occurrences)), "partstat": other})
        return rows


def _columns(meeting: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meeting.items() if not k.startswith("_")}


def _preference(contact: dict[str, Any]) -> dict[str, Any]:
    """The audit row of a contact's DIGEST monthly|off, a day after they were first known."""
    return {
        "kind": "digest_preference",
        "actor": contact["email"],
        "from_state": "weekly",
        "to_state": contact["digest"],
        "detail": "",
        "created_at": contact["created_at"] + timedelta(days=1),
    }


def _ids(conn: Any, column: Any, key: Any, values: Sequence[Any]) -> list[int]:
    """The ids of the rows just inserted, in the order of ``values`` (their unique ``key`` column)."""
    found = dict(conn.execute(select(key, column)).all())
    return [found[v] for v in values]


def populate(url: str, contacts: int, groups: int, now: datetime, seed: int) -> World:
    """A year of a network's life, inserted with SQLAlchemy Core in one transaction."""
    start = time.perf_counter()
    build = _Builder(contacts, groups, now, seed)
    world = build.world
    engine = create_engine(url)
    counts: Counter[str] = Counter()
    try:
        with engine.begin() as conn:
            tables = {t.__tablename__: t.__table__ for t in (Organisation, OrgDomain, Contact, Group)}

            def put(table: Any, rows: list[dict[str, Any]]) -> None:
                if rows:
                    conn.execute(insert(table), rows)
                counts[table.name] += len(rows)

            put(tables["organisations"], [{k: v for k, v in o.items() if k != "domain"} for o in build.orgs])
            org_ids = _ids(conn, Organisation.id, Organisation.name, [o["name"] for o in build.orgs])
            put(
                tables["org_domains"],
                [
                    {"organisation_id": i, "domain": o["domain"]}
                    for i, o in zip(org_ids, build.orgs, strict=True)
                ],
            )
            put(
                tables["contacts"],
                [
                    {k: c[k] for k in ("email", "name", "created_at", "digest")}
                    | {"organisation_id": org_ids[c["org"]]}
                    for c in build.contacts
                ],
            )
            contact_ids = _ids(conn, Contact.id, Contact.email, [c["email"] for c in build.contacts])
            put(
                tables["groups"],
                [
                    {k: v for k, v in g.items() if k != "facilitator"}
                    | {"facilitator_id": contact_ids[g["facilitator"]]}
                    for g in build.groups
                ],
            )
            group_ids = _ids(conn, Group.id, Group.slug, [g["slug"] for g in build.groups])
            put(
                Membership.__table__,
                [
                    row
                    | {"group_id": group_ids[g], "contact_id": contact_ids[p]}
                    | {"organisation_id": org_ids[build.contacts[p]["org"]]}
                    for (g, p), row in build.members.items()
                ],
            )
            put(Request.__table__, build.requests(contact_ids, org_ids, group_ids))
            put(GroupUpdate.__table__, build.updates(contact_ids, group_ids))
            meetings = build.meetings(contact_ids, group_ids)
            overrides = [build.overrides(m) for m in meetings]
            for meeting, changed in zip(meetings, overrides, strict=True):
                core = to_core(Meeting(**_columns(meeting)), "", SERVICE)
                moved = [
                    cal.Occurrence(
                        recurrence_id=o["recurrence_id"], start=o["starts_at"], cancelled=o["cancelled"]
                    )
                    for o in changed
                ]
                meeting["ends_at"] = last_end(core, moved)
                meeting["_occurrences"] = (
                    [i.recurrence_id for i in cal.occurrences(core, moved)] if meeting["frequency"] else []
                )
            put(Meeting.__table__, [_columns(m) for m in meetings])
            meeting_ids = _ids(conn, Meeting.id, Meeting.uid, [m["uid"] for m in meetings])
            put(
                MeetingOccurrence.__table__,
                [
                    o | {"meeting_id": i}
                    for i, changed in zip(meeting_ids, overrides, strict=True)
                    for o in changed
                ],
            )
            for i, meeting in zip(meeting_ids, meetings, strict=True):
                put(Attendance.__table__, build.attendances(meeting, i, meeting["_occurrences"], contact_ids))
            put(
                Event.__table__,
                [_preference(c) for c in build.contacts if c["digest"] != "weekly"],
            )
        if engine.dialect.name == "postgresql":
            # Planner statistics, as autovacuum keeps them on a live database; a query on just-inserted
            # tables without any is planned blind (load_groups took 0.4 s instead of 0.01 s).
            with engine.begin() as conn:
                for table in Base.metadata.sorted_tables:
                    conn.execute(text(f'ANALYZE "{table.name}"'))
    finally:
        engine.dispose()
    world.seconds = time.perf_counter() - start
    world.rows = dict(counts)
    world.contacts_by_choice = dict(Counter(c["digest"] for c in build.contacts))
    world.orgs_by_status = dict(Counter(o["status"] for o in build.orgs))
    world.groups_by_status = dict(Counter(g["status"] for g in build.groups))
    world.groups_by_status["of them associated"] = sum(g["associated"] for g in build.groups)
    active_seats = Counter(p for (_, p), row in build.members.items() if row["status"] == "active")
    world.groups_per_contact = dict(sorted(Counter(active_seats.get(p, 0) for p in range(contacts)).items()))
    world.largest_group = max(
        Counter(g for (g, _), row in build.members.items() if row["status"] == "active").values()
    )
    world.meetings_ahead = sum(m["ends_at"] > now and m["status"] == "scheduled" for m in meetings)
    return world


# -- workspace ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(db: str) -> Iterator[tuple[Path, str, Path, Any]]:
    """A temp folder, a fresh database, an initialised config without declared groups, the child processes.

    As ``requests.py``'s ``workspace`` (a PostgreSQL run gets a schema of its own, dropped after), but the
    config declares no group and no registry is imported: every group and organisation is the bench's own.
    """
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailflow-digests-")))
        url = f"sqlite:///{folder / 'mailflow.db'}"
        if db == "postgresql":
            schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(rq.PG_URL, isolation_level="AUTOCOMMIT")
            stack.callback(admin.dispose)
            rq._execute(admin, f'CREATE SCHEMA "{schema}"')  # noqa: SLF001 - requests.py's helper
            stack.callback(rq._execute, admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # noqa: SLF001
            url = f"{rq.PG_URL}?options=-csearch_path%3D{schema}"
        children = rq.Children()
        stack.callback(children.close)
        config = write_config(folder, url, groups="", approvers=rq.APPROVERS)
        rq.run_cli(config, "init")
        yield folder, url, config, children


# -- checks -------------------------------------------------------------------------------------------------

OUTBOX = OutboxMessage.__table__


def expected_readers(session: Session, settings: Settings, now: datetime) -> set[str]:
    """Who should get a member digest, worked out from the stored rows by the rules of issue 4 (item 2).

    A contact whose choice is weekly (monthly) gets the digest of the last week (month) when one of the
    open groups they belonged to before the period ended has news in it (an organisation's first
    membership, an update, a decision on a join or start, the group's creation) or a meeting ahead within
    four weeks (two months), or when a group was started in the period that is forming and not theirs.
    Occurrences of series come from mailflow's calendar code, everything else from plain queries.
    """
    zone = settings.network.timezone
    groups = {
        row.id: row
        for row in session.execute(
            select(Group.id, Group.status, Group.associated, Group.created_at).where(Group.status != "closed")
        )
    }
    seats: defaultdict[tuple[str, str], list[tuple[int, datetime]]] = defaultdict(list)
    for email, digest, group_id, joined in session.execute(
        select(Contact.email, Contact.digest, Membership.group_id, Membership.joined_at)
        .join(Membership, Membership.contact_id == Contact.id)
        .where(Membership.status == "active")
    ):
        if group_id in groups:
            seats[email, digest].append((group_id, joined))
    starts: defaultdict[int, list[datetime]] = defaultdict(list)
    for meeting in session.scalars(select(Meeting).where(Meeting.status == "scheduled")):
        if meeting.group_id in groups:
            core = to_core(meeting, "", SERVICE)
            starts[meeting.group_id] += [
                i.start for i in cal.occurrences(core, overrides_of(session, meeting.id))
            ]
    first = func.min(Membership.joined_at)
    firsts = session.execute(
        select(Membership.group_id, first)
        .where(Membership.status == "active", Membership.organisation_id.is_not(None))
        .group_by(Membership.group_id, Membership.organisation_id)
    ).all()
    wanted: set[str] = set()
    for frequency in FREQUENCIES:
        period = last_period(frequency, now, settings.digests, zone)
        lo, hi = period.start, period.end
        news = {g for g, row in groups.items() if lo <= row.created_at < hi}
        news |= {g for g, joined in firsts if lo <= joined < hi}
        news |= set(
            session.scalars(
                select(GroupUpdate.group_id).where(GroupUpdate.created_at >= lo, GroupUpdate.created_at < hi)
            )
        )
        news |= set(
            session.scalars(
                select(Request.group_id).where(
                    Request.kind.in_(("join", "start")),
                    Request.state.in_(("approved", "rejected")),
                    Request.decided_at >= lo,
                    Request.decided_at < hi,
                    Request.group_id.is_not(None),
                )
            )
        )
        limit = now + horizon(frequency)
        ahead = {g for g, found in starts.items() if any(now < s <= limit for s in found)}
        calls = {
            g
            for g, row in groups.items()
            if row.status == "forming" and not row.associated and lo <= row.created_at < hi
        }
        for (email, digest), mine in seats.items():
            before = {g for g, joined in mine if joined < hi}
            if digest == frequency and before and (before & (news | ahead) or calls - {g for g, _ in mine}):
                wanted.add(email)
    return wanted


def expected_network(session: Session, settings: Settings, now: datetime) -> set[str]:
    """Who should get the network digest: contacts of Participants and Strategic Partners known before the
    period ended, except those who switched digests off."""
    period = last_period(settings.digests.network, now, settings.digests, settings.network.timezone)
    return set(
        session.scalars(
            select(Contact.email)
            .join(Organisation, Organisation.id == Contact.organisation_id)
            .where(
                Organisation.status.in_(("participant", "strategic_partner")),
                Contact.created_at < period.end,
                Contact.digest != "off",
            )
        )
    )


def check_mail(raw: bytes, to: str, kind: str) -> int:
    """Parse one digest in full; return the size of its text part. Raises ValueError on what is wrong."""
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    if not isinstance(message, EmailMessage) or message["X-Mailflow"] != kind:
        raise ValueError(f"X-Mailflow {message['X-Mailflow']!r}")
    unsubscribe = str(message["List-Unsubscribe"] or "")
    if not re.fullmatch(r"<mailto:[^?>]+\?subject=DIGEST%20off>", unsubscribe):
        raise ValueError(f"List-Unsubscribe {unsubscribe!r}")
    if not str(message["List-Id"] or "").startswith("<"):
        raise ValueError(f"List-Id {message['List-Id']!r}")
    if to not in str(message["To"]).lower() or not str(message["Message-ID"]).startswith("<digest."):
        raise ValueError(f"To {message['To']!r}, Message-ID {message['Message-ID']!r}")
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    if not isinstance(plain, EmailMessage) or not isinstance(html, EmailMessage):
        raise TypeError("no text or no HTML part")
    body = plain.get_content()
    if "digest" not in body or not html.get_content().strip():
        raise ValueError(f"text part: {body[:80]!r}")
    return len(body)


def verify(url: str, config: Path, now: datetime, queued: dict[str, int]) -> dict[str, Any]:
    """The outbox after a run: what tick reported, exactly the digests the rules ask for, a sample parsed.

    Returns the problems found by kind (``digest`` or ``network_digest``), the number of mails parsed and
    the mean sizes.
    """
    settings = load_settings(config)
    problems: dict[str, list[str]] = {kind: [] for kind in KINDS.values()}
    found: dict[str, Any] = {"checked": 0, "bytes": {}, "text_chars": {}}
    with rq.reader(url) as session:
        rows = session.execute(
            select(OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.to_addr)
            .where(OUTBOX.c.kind.in_(list(KINDS.values())))
            .order_by(OUTBOX.c.id)
        ).all()
        by_kind: dict[str, list[Any]] = {kind: [r for r in rows if r.kind == kind] for kind in KINDS.values()}
        for job, kind in KINDS.items():
            mine = by_kind[kind]
            if len(mine) != queued.get(job, -1):
                problems[kind].append(
                    f"{len(mine)} {kind} rows in the outbox, tick reported {queued.get(job)}"
                )
            if len({r.to_addr for r in mine}) != len(mine):
                problems[kind].append(
                    f"{kind}: {len(mine) - len({r.to_addr for r in mine})} recipients twice"
                )
        want = expected_readers(session, settings, now)
        got = {r.to_addr for r in by_kind["digest"]}
        if got != want:
            problems["digest"].append(
                f"member digests: {len(got - want)} unexpected, {len(want - got)} missing"
            )
        want = expected_network(session, settings, now) | {settings.secretariat.approvers[0]}
        got = {r.to_addr for r in by_kind["network_digest"]}
        if got != want:
            problems["network_digest"].append(
                f"network digest: {len(got - want)} unexpected, {len(want - got)} missing"
            )
        sizes = session.execute(
            select(OUTBOX.c.kind, func.avg(func.length(OUTBOX.c.raw)))
            .where(OUTBOX.c.kind.in_(list(KINDS.values())))
            .group_by(OUTBOX.c.kind)
        ).all()
        found["bytes"] = {kind: float(size) for kind, size in sizes}
        for kind, count in (("digest", SAMPLE), ("network_digest", 5)):
            mine = by_kind[kind]
            picks = (
                sorted({round(i * (len(mine) - 1) / max(count - 1, 1)) for i in range(count)}) if mine else []
            )
            chars = []
            for k in picks:
                raw = session.execute(select(OUTBOX.c.raw).where(OUTBOX.c.id == mine[k].id)).scalar_one()
                try:
                    chars.append(check_mail(raw, mine[k].to_addr, kind))
                except (ValueError, TypeError, KeyError) as exc:
                    problems[kind].append(f"{kind} to {mine[k].to_addr}: {exc}")
            found["checked"] += len(picks)
            found["text_chars"][kind] = statistics.mean(chars) if chars else None
    found["problems"] = problems
    return found


# -- measuring ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One job (or the whole tick) in one mode on one database, over the repetitions: s, MiB, bytes.

    ``cli``: ``mailflow tick --now`` as a process, all of its jobs, wall time with start-up. ``inproc``:
    ``schedule.tick`` with one job in a fresh process; ``collect`` is the job's own time (reading and putting
    the digests together), the rest of ``seconds`` the keys' lookup and the queueing (render, insert, commit);
    ``render`` is rendering all of the job's mails once more, alone, without the database.
    """

    db: str
    mode: str
    job: str
    contacts: int
    groups: int
    seconds: list[float] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    collect: list[float] = field(default_factory=list)
    render: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    again_seconds: list[float] = field(default_factory=list)
    again_queued: list[int] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)  # cli: mails queued by each job of the last tick
    spans: dict[str, list[float]] = field(default_factory=dict)  # cli: each digest job's time, from the log
    mail_bytes: float | None = None
    text_chars: float | None = None
    checked: int = 0
    setup_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    profile: dict[str, list[float]] = field(default_factory=dict)


def parse_tick(out: str) -> dict[str, tuple[int, int]]:
    """``mailflow tick``'s report: (queued, already sent) per job."""
    found = {}
    for line in out.splitlines():
        if match := TICK_LINE.match(line.strip()):
            found[match[1]] = (int(match[2]), int(match[3]))
    if not all(job in found for job in JOB_NAMES):
        raise RuntimeError(f"tick printed no line for a digest job: {out[-500:]!r}")
    return found


def job_spans(log: str) -> dict[str, float]:
    """Each job's time inside one ``mailflow tick``, from the stamps of its log lines ``tick <job>: …``.

    A job that queued or found something logs one line when it is done: its span runs from the line before
    (the jobs in between found nothing, which is quick). The first job that logs gets no span.
    """
    stamps = [
        (match[2], datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f"))  # noqa: DTZ007 - differences only
        for match in LOG_LINE.finditer(log)
    ]
    return {job: (at - before).total_seconds() for (_, before), (job, at) in itertools.pairwise(stamps)}


def _note(run: Run, found: dict[str, Any], kind: str) -> None:
    run.checked += found["checked"]
    run.mail_bytes = found["bytes"].get(kind, run.mail_bytes)
    run.text_chars = found["text_chars"].get(kind) or run.text_chars


def measure_cli(runs: dict[str, Run], db: str, args: argparse.Namespace, now: datetime) -> World:
    """``mailflow tick --now`` twice as processes on a fresh network: the first queues, the second nothing."""
    run = runs["tick"]
    with workspace(db) as (folder, url, config, children):
        world = populate(url, args.contacts, args.groups, now, args.seed)
        run.setup_seconds.append(world.seconds)
        cmd = rq.mailflow(config, "tick", "--now", now.isoformat())
        wall, peak, out = mt.timed(children, cmd, folder)
        first = parse_tick(out)
        spans = job_spans((folder / CHILD_LOG).read_text(encoding="utf-8"))
        for job in JOB_NAMES:
            run.spans.setdefault(job, []).append(spans.get(job, math.nan))
        again_wall, _, again_out = mt.timed(children, cmd, folder)
        again = parse_tick(again_out)
        run.seconds.append(wall)
        run.peak_mib.append(peak)
        run.queued.append(sum(first[job][0] for job in JOB_NAMES))
        run.other = {job: q for job, (q, _) in first.items()}
        run.again_seconds.append(again_wall)
        run.again_queued.append(sum(q for q, _ in again.values()))
        if again_queued := {job: q for job, (q, _) in again.items() if q}:
            run.problems.append(f"the second tick queued {again_queued}")
        found = verify(url, config, now, {job: first[job][0] for job in JOB_NAMES})
        run.problems += [p for kind in KINDS.values() for p in found["problems"][kind]]
        _note(run, found, "digest")
    return world


def measure_inproc(
    runs: dict[str, Run], db: str, args: argparse.Namespace, now: datetime, profile: Path | None = None
) -> World:
    """Each digest job through ``schedule.tick`` in a fresh process (this script's ``--child``), twice."""
    with workspace(db) as (folder, url, config, children):
        world = populate(url, args.contacts, args.groups, now, args.seed)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(config),
            "--now",
            now.isoformat(),
        ]
        if profile is not None:
            cmd += ["--profile", str(profile / db)]
        _, _, out = mt.timed(children, cmd, folder)
        queued = {}
        for entry in json.loads(out):
            run = runs[entry["job"]]
            run.setup_seconds.append(world.seconds)
            run.seconds.append(entry["seconds"])
            run.collect.append(entry["collect"])
            run.render.append(entry["render"])
            run.queued.append(entry["queued"])
            run.peak_mib.append(entry["peak_mib"])
            run.again_seconds.append(entry["again_seconds"])
            run.again_queued.append(entry["again_queued"])
            run.profile = entry.get("profile", run.profile)
            queued[entry["job"]] = entry["queued"]
            if entry["again_queued"]:
                run.problems.append(
                    f"again: {entry['again_queued']} queued, {entry['again_already']} already sent"
                )
            if not entry["peak_reset"]:
                run.problems.append("VmHWM could not be reset: the peak includes the jobs before")
        found = verify(url, config, now, queued)
        for job, kind in KINDS.items():
            runs[job].problems += found["problems"][kind]
            _note(runs[job], found, kind)
    return world


# -- the in-process child -----------------------------------------------------------------------------------


def _status_mib(name: str) -> float:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return int(status.partition(f"{name}:")[2].split()[0]) / 1024


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux 4.0 and later): each job's own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


class _Timed:
    """A job as ``schedule.tick`` calls it, timed; it keeps what the job found due for ``render_alone``."""

    def __init__(self, job: Any) -> None:
        self.job, self.seconds, self.due = job, 0.0, []

    def __call__(self, session: Session, runtime: Runtime, now: datetime) -> Any:
        start = time.perf_counter()
        try:
            self.due = self.job(session, runtime, now)
        finally:
            self.seconds = time.perf_counter() - start
        return self.due

    def render_alone(self, runtime: Runtime, now: datetime) -> float:
        """Render the mails the job found due once more, as ``Mailer.queue`` does, writing nothing."""
        identity, templates = runtime.identity, runtime.templates
        start = time.perf_counter()
        for item in self.due:
            message_id = runtime.new_message_id(item.mail.id_prefix)
            render(
                templates, item.mail, identity=identity, message_id=message_id, date=now, bodies=item.bodies
            )
        return time.perf_counter() - start


COMPONENTS = {  # name -> (a fragment of the file's path, function names): cumulative time, summed over names
    "the tick (run_jobs)": ("mailflow/app/jobs.py", ("run_jobs",)),
    "job: the digests put together": ("mailflow/app/digests.py", ("member_digests", "network_digest")),
    "· load_members, load_network": ("mailflow/app/digest_activity.py", ("load_members", "load_network")),
    "· load_groups, load_news": ("mailflow/app/digest_activity.py", ("load_groups", "load_news")),
    "· load_ahead, load_answers": ("mailflow/app/digest_activity.py", ("load_ahead", "load_answers")),
    "· each reader's facts (_Facts.context)": ("mailflow/app/digests.py", ("context",)),
    "keys already sent (sent_keys, in the job and after)": ("mailflow/app/jobs.py", ("sent_keys",)),
    "queueing (_queue_batch)": ("mailflow/app/jobs.py", ("_queue_batch",)),
    "· Mailer.queue": ("mailflow/app/effects.py", ("queue",)),
    "·· compose.render": ("mailflow/core/compose.py", ("render",)),
    "··· Jinja (render_bodies)": ("mailflow/core/compose.py", ("render_bodies",)),
    "··· text and HTML parts, quoted-printable (_body)": ("mailflow/core/compose.py", ("_body",)),
    "··· MIME (mime.build)": ("mailflow/core/mime.py", ("build",)),
    "· record_event": ("mailflow/app/events.py", ("record_event",)),
    "· commit": ("sqlalchemy/orm/session.py", ("commit",)),
    "SQL: DBAPI execute, all": (
        "sqlalchemy/engine/default.py",
        ("do_execute", "do_executemany", "do_execute_no_params"),
    ),
}
_NESTED = ("· commit",)  # a name that several nested functions carry: the largest stands for all


def breakdown(profiler: cProfile.Profile) -> dict[str, list[float]]:
    """Cumulative seconds and calls of the components above."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    result = {}
    for name, (fragment, functions) in COMPONENTS.items():
        found = sorted(
            (value[3], value[1])  # (cumulative time, primitive calls)
            for (path, _, function), value in stats.items()
            if fragment in path.replace(os.sep, "/") and function in functions
        )
        found = found[-1:] if name in _NESTED else found
        result[name] = [sum(f[0] for f in found), sum(f[1] for f in found)]
    return result


def child(config: Path, now: datetime, profile: Path | None) -> int:
    """Each digest job through ``schedule.tick``, then once more (it must queue nothing); print JSON."""
    runtime = build_runtime(load_settings(config))
    with runtime.engine.connect() as conn:  # connected before timing, as a running service is
        conn.execute(text("SELECT 1"))
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in JOB_NAMES:
        job = _Timed(schedule.JOBS[name])
        entry: dict[str, Any] = {"job": name, "peak_reset": _reset_peak(), "rss_before": _status_mib("VmRSS")}
        profiler = cProfile.Profile() if profile is not None else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        try:
            result = schedule.tick(runtime, now, jobs={name: job})
        finally:
            if profiler is not None:
                profiler.disable()
        entry["seconds"] = time.perf_counter() - start
        entry["peak_mib"] = _status_mib("VmHWM")
        entry["collect"], entry["due"] = job.seconds, len(job.due)
        entry["queued"], entry["already"] = result.queued[name], result.already[name]
        start = time.perf_counter()
        again = schedule.tick(runtime, now, jobs=[name])
        entry["again_seconds"] = time.perf_counter() - start
        entry["again_queued"], entry["again_already"] = again.queued[name], again.already[name]
        entry["render"] = job.render_alone(runtime, now)
        job.due = []
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile / f"{name}.prof")
            entry["profile"] = breakdown(profiler)
        entries.append(entry)
    runtime.engine.dispose()
    print(json.dumps(entries))
    return 0


# -- report -------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    return rq._f(value, digits)  # noqa: SLF001 - the same number format as requests.py


def _spread(values: Sequence[float], digits: int = 2) -> str:
    """The median, and the range when there is more than one value."""
    if not values:
        return "-"
    if len(values) == 1 or min(values) == max(values):
        return _f(values[0], digits)
    return f"{_f(statistics.median(values), digits)} ({_f(min(values), digits)} to {_f(max(values), digits)})"


def _rate(run: Run) -> str:
    rates = [q / s for q, s in zip(run.queued, run.seconds, strict=False) if s > 0]
    return _spread(rates, 0)


def verdicts(runs: Sequence[Run]) -> list[list[str]]:
    """Each target beside what was measured (the slowest repetition), and whether it is met."""
    rows = []
    order = ("member_digests", "network_digest", "tick")
    for run in sorted(runs, key=lambda r: order.index(r.job)):
        if run.db != "sqlite" or run.problems or not run.seconds or run.mode == "profile":
            continue
        what = {
            "member_digests": "member digests, in-process",
            "network_digest": "network digest, in-process (reported apart)",
            "tick": "`mailflow tick`, the whole process (every job, start-up)",
        }[run.job]
        slow, top = max(run.seconds), max(run.peak_mib)
        measured = f"{max(run.queued):,} mails in {slow:.2f} s (slowest)"
        rows.append((f"{what}: < {TARGET_SECONDS:.0f} s", measured, slow < TARGET_SECONDS))
        label = f"{what}: < {TARGET_MB:.0f} MB ({TARGET_MIB:.0f} MiB)"
        rows.append((label, f"{top:.0f} MiB", top < TARGET_MIB))
        for job, spans in run.spans.items():
            if spans and not any(math.isnan(x) for x in spans):
                label = (
                    f"{job.replace('_', ' ')} inside `mailflow tick` (log stamps): < {TARGET_SECONDS:.0f} s"
                )
                rows.append(
                    (label, f"{run.other.get(job, 0):,} mails in {max(spans):.2f} s", max(spans) < 10)
                )
    return [[target, measured, "met" if met else "**not met**"] for target, measured, met in rows]


def _world_table(worlds: dict[str, World]) -> str:
    head = "what," + ",".join(worlds)
    first = next(iter(worlds.values()))
    lines = [
        ("setup s (not timed)", [_f(w.seconds, 1) for w in worlds.values()]),
        *((f"rows: {table}", [_f(w.rows.get(table)) for w in worlds.values()]) for table in first.rows),
        (
            "organisations by status",
            [", ".join(f"{k} {v}" for k, v in w.orgs_by_status.items()) for w in worlds.values()],
        ),
        (
            "contacts by digest choice",
            [", ".join(f"{k} {v}" for k, v in w.contacts_by_choice.items()) for w in worlds.values()],
        ),
        (
            "groups by status",
            [", ".join(f"{k} {v}" for k, v in w.groups_by_status.items()) for w in worlds.values()],
        ),
        (
            "contacts by number of active memberships",
            [", ".join(f"{k}: {v}" for k, v in w.groups_per_contact.items()) for w in worlds.values()],
        ),
        ("largest group (active members)", [_f(w.largest_group) for w in worlds.values()]),
        ("meetings still ahead", [_f(w.meetings_ahead) for w in worlds.values()]),
    ]
    return rq.table(head, [f"| {name} | {' | '.join(values)} |" for name, values in lines])


def report(runs: Sequence[Run], worlds: dict[str, World]) -> str:
    """The Markdown tables: the runs, the network they ran on, the profile when asked, the targets."""
    head = "db,mode,job,contacts,mails queued,time s,mails/s,collect s,keys+queue s,render alone s,peak MiB"
    head += ",again: queued / s,mail KiB,parsed,problems"
    rows = []
    for r in (r for r in runs if r.mode != "profile"):
        queue = [s - c for s, c in zip(r.seconds, r.collect, strict=False)]
        queued = _spread(r.queued, 0) if r.mode != "cli" else _cli_queued(r)
        again = f"{_f(max(r.again_queued, default=None))} / {_spread(r.again_seconds)}"
        rows.append(
            f"| {r.db} | {r.mode} | {r.job} | {r.contacts:,} | {queued} | {_spread(r.seconds)} | {_rate(r)} "
            f"| {_spread(r.collect)} | {_spread(queue)} | {_spread(r.render)} | {_spread(r.peak_mib, 0)} "
            f"| {again} | {_f((r.mail_bytes or 0) / 1024 or None, 1)} | {r.checked} "
            f"| {mt._one_line('; '.join(dict.fromkeys(r.problems))) or 'none'} |"  # noqa: SLF001
        )
    reps = max((len(r.seconds) for r in runs), default=0)
    out = [f"## Digest runs ({reps} repetition{'s' if reps != 1 else ''}: median (range))\n"]
    out += [rq.table(head, rows)]
    if spans := [_span_row(r) for r in runs if r.mode == "cli" and r.spans]:
        out += ["\n## Inside `mailflow tick`, from its log stamps (s)\n"]
        out += [rq.table("db,member digests,network digest,the rest: start-up and other jobs", spans)]
    if worlds:
        out += [
            "\n## The simulated network (each run inserts it afresh; the same seed)\n",
            _world_table(worlds),
        ]
    for db in dict.fromkeys(r.db for r in runs if r.mode == "profile" and r.profile):
        mine = [r for r in runs if r.db == db and r.mode == "profile" and r.profile]
        lines = [f"| {name} | " + " | ".join(_ms(r, name) for r in mine) + " |" for name in COMPONENTS]
        head = "component: ms per mail (calls)," + ",".join(r.job for r in mine)
        out += [f"\n## Where the time goes: {db}, under cProfile\n", rq.table(head, lines)]
    targets = [f"| {' | '.join(row)} |" for row in verdicts(runs)]
    return "\n".join([*out, "\n## Targets (SQLite)\n", rq.table("target,measured,verdict", targets)])


def _span_row(run: Run) -> str:
    member, network = (run.spans.get(job, []) for job in JOB_NAMES)
    rest = [w - a - b for w, a, b in zip(run.seconds, member, network, strict=False)]
    return f"| {run.db} | {_spread(member)} | {_spread(network)} | {_spread(rest)} |"


def _cli_queued(run: Run) -> str:
    jobs = run.other
    other = sum(q for job, q in jobs.items() if job not in JOB_NAMES)
    split = f"{_f(jobs.get(JOB_NAMES[0]))} member, {_f(jobs.get(JOB_NAMES[1]))} network"
    return f"{_spread(run.queued, 0)} digests ({split}) + {other} other mails"


def _ms(run: Run, name: str) -> str:
    seconds, calls = run.profile[name]
    mails = max(run.queued, default=0) or 1
    return f"{seconds * 1000 / mails:.3f} ({calls:,.0f})" if calls else "-"


def _new_runs(db: str, mode: str, args: argparse.Namespace) -> dict[str, Run]:
    jobs = ("tick",) if mode == "cli" else JOB_NAMES
    return {job: Run(db, mode, job, args.contacts, args.groups) for job in jobs}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the Markdown report and write JSON when asked."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--modes", nargs="+", choices=["cli", "inproc"], default=["cli", "inproc"])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions, each on a fresh network")
    parser.add_argument(
        "--now", default=NOW, help="the tick's time (ISO 8601); default: just after a week ended"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="also profile each job in process; .prof files go here")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # inproc: the config of the process
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if args.child:
        return child(args.child, now, args.profile)
    if args.contacts < 100 or args.groups < 10 or args.repeat < 1:
        parser.error("--contacts must be at least 100, --groups at least 10, --repeat at least 1")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up as Ctrl-C does
    jobs = [(db, mode) for db in args.db for mode in args.modes]
    groups = {job: _new_runs(*job, args) for job in jobs}
    groups |= {(db, "profile"): _new_runs(db, "profile", args) for db in args.db if args.profile}
    worlds: dict[str, World] = {}
    load, started, complete = os.getloadavg()[0], time.perf_counter(), False
    try:
        for rep in range(args.repeat):
            for db, mode in jobs:
                runs = groups[db, mode]
                try:
                    measure = measure_cli if mode == "cli" else measure_inproc
                    worlds[db] = measure(runs, db, args, now)
                except Exception as exc:  # recorded beside the numbers; Ctrl-C still stops the bench
                    next(iter(runs.values())).problems.append(f"{type(exc).__name__}: {exc}")
                print(
                    f"repetition {rep + 1}, {db} {mode}: {[asdict(r) for r in runs.values()]}",
                    file=sys.stderr,
                )
        for db in args.db if args.profile else ():
            try:
                measure_inproc(groups[db, "profile"], db, args, now, args.profile.resolve())
            except Exception as exc:
                next(iter(groups[db, "profile"].values())).problems.append(f"{type(exc).__name__}: {exc}")
        complete = True
    except KeyboardInterrupt:
        print("interrupted: children stopped, temp folders and schemas removed", file=sys.stderr)
    runs = [run for mine in groups.values() for run in mine.values()]
    command = " ".join([".venv/bin/python bench/digests.py", *(sys.argv[1:] if argv is None else argv)])
    elapsed, loads = time.perf_counter() - started, f"{load:.1f} → {os.getloadavg()[0]:.1f}"
    print(
        f"\n`{command}`: {os.cpu_count()} CPUs, load {loads}, {elapsed:,.0f} s, tick at {now.isoformat()}\n"
    )
    print(report(runs, worlds))
    if args.out:
        results = {"command": command, "complete": complete, "seconds": elapsed, "load": loads}
        results |= {"runs": [asdict(r) for r in runs], "worlds": {db: asdict(w) for db, w in worlds.items()}}
        results["targets"] = verdicts(runs)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main())
