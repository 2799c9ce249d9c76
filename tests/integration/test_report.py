"""``mailflow report facilitators --year``: who facilitated, for how many months, for the fee discount.

Every test runs on SQLite and on PostgreSQL. The report reads the facilitator terms the app writes. Short
histories are made through the real workflow (a START approved, a LEAVE, a JOIN again; ``init`` with a
declared facilitator, then another; CLOSE answering the end-of-period question; a registry import); histories
over several years are inserted as term rows. The report is read through ``mailflow.cli.main``; the tests of
ongoing or future periods call the app with the test clock, since the command line runs on the wall clock.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailflow.app import queries
from mailflow.app.lifecycle import group_end
from mailflow.app.process import Pipeline
from mailflow.app.registry import import_file
from mailflow.app.report import Period, counted_months, facilitated_days, facilitators
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.app.schedule import tick
from mailflow.app.setup import initialise
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.core.model import Verdict
from mailflow.intake.base import Disposition
from mailflow.store import repo
from mailflow.store.schema import Contact, FacilitatorTerm, Group, Organisation, OutboxMessage
from mailflow.testing import DEFAULT_GROUPS, outlook_reply, request_mail, write_config
from tests.conftest import Clock

ANNA = "anna@ghent.example"
SARA = "sara@malmo.example"
BRUSSELS = ZoneInfo("Europe/Brussels")
REGISTRY_HEADER = "organisation,country,status,domains,contact_email,contact_name\n"


def _at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _local(year: int, month: int, day: int) -> datetime:
    """Midnight in Brussels, the network's time zone: the first moment of that day."""
    return datetime(year, month, day, tzinfo=BRUSSELS)


def _report(config_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config_path), "report", "facilitators", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(config_path: Path, capsys: pytest.CaptureFixture[str], year: int) -> dict[str, dict]:
    code, out, err = _report(config_path, capsys, "--year", str(year), "--json")
    assert 0 == code, err
    return {row["organisation"] or ",".join(row["contacts"]): row for row in json.loads(out)}


def _mail(runtime: Runtime, sender: str, subject: str, body: str = "Hello") -> None:
    raw = request_mail(sender, subject, body, date=runtime.clock())
    assert [Disposition.PROCESSED] == Pipeline(runtime).accept_many([(raw, "file", "")])


def _approve_pending(runtime: Runtime) -> None:
    [pending] = queries.requests(runtime, "pending_approval")
    assert "approved" == queries.decide(runtime, pending["id"], Verdict.APPROVE)


def _declare(tmp_path: Path, database_url: str, facilitator: str, when: datetime) -> None:
    """Rewrite the config with ``facilitator`` declared for food and run ``mailflow init`` at ``when``."""
    groups = DEFAULT_GROUPS.replace(
        'status = "active"', f'status = "active"\nfacilitator = "{facilitator}"', 1
    )
    declared = build_runtime(load_settings(write_config(tmp_path, database_url, groups=groups)))
    declared.clock = Clock(when)
    initialise(declared)
    declared.engine.dispose()


def _import(runtime: Runtime, tmp_path: Path, rows: str) -> None:
    registry = tmp_path / "more-registry.csv"
    registry.write_text(REGISTRY_HEADER + rows, encoding="utf-8")
    import_file(runtime, registry)


def _terms(runtime: Runtime, slug: str) -> list[tuple[str, str, bool]]:
    """The group's terms as (contact, ended_reason, still open), oldest first."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(Contact.email, FacilitatorTerm.ended_reason, FacilitatorTerm.ended_at)
            .join(Contact, FacilitatorTerm.contact_id == Contact.id)
            .join(Group, FacilitatorTerm.group_id == Group.id)
            .where(Group.slug == slug)
            .order_by(FacilitatorTerm.started_at, FacilitatorTerm.id)
        )
        return [(email, reason, ended is None) for email, reason, ended in rows]


def _facilitation(runtime: Runtime, slug: str, email: str, start: datetime, end: datetime | None) -> None:
    """A facilitator term row as the app writes it: ended (as ``left``) when ``end`` is given, open if not."""
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == slug)).one()
        contact = session.scalar(select(Contact).where(Contact.email == email))
        if contact is None:
            organisation = repo.organisation_for_address(session, email)
            contact = Contact(
                email=email, organisation_id=organisation.id if organisation else None, created_at=start
            )
            session.add(contact)
            session.flush()
        session.add(
            FacilitatorTerm(
                group_id=group.id,
                contact_id=contact.id,
                organisation_id=contact.organisation_id,
                started_at=start,
                ended_at=end,
                ended_reason="left" if end else "",
            )
        )


def test_a_facilitator_who_left_and_came_back_keeps_the_months_they_facilitated(
    runtime: Runtime, clock: Clock, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """START approved, LEAVE, JOIN again: one term, ended by the LEAVE; the rejoined member adds none."""
    clock.now = _at(2025, 2, 3)
    _mail(runtime, ANNA, "START Green cleaning products", "We want to share tender criteria for cleaning.")
    clock.now = _at(2025, 2, 3, 10)
    _approve_pending(runtime)
    slug = next(g["slug"] for g in queries.groups(runtime) if g["name"] == "Green cleaning products")
    clock.now = _at(2025, 3, 1)
    _mail(runtime, SARA, f"JOIN {slug}")
    _approve_pending(runtime)
    clock.now = _at(2025, 6, 20)
    _mail(runtime, ANNA, f"LEAVE {slug}")
    clock.now = _at(2025, 9, 10)
    _mail(runtime, ANNA, f"JOIN {slug}")
    _approve_pending(runtime)
    # The workflow rewrote Anna's membership as a member's; her term keeps what she did.
    assert {ANNA: "member", SARA: "member"} == {
        m["contact_email"]: m["role"] for m in queries.members(runtime, slug)
    }
    assert [(ANNA, "left", False)] == _terms(runtime, slug)

    rows = _json(config_path, capsys, 2025)

    assert ["City of Ghent"] == list(rows)
    ghent = rows["City of Ghent"]
    assert (True, None, 5) == (ghent["eligible"], ghent["reason"], ghent["months"])
    assert ["2025-02", "2025-03", "2025-04", "2025-05", "2025-06"] == ghent["counted_months"]
    assert [{"group": slug, "contact": ANNA, "from": "2025-02-03", "to": "2025-06-20"}] == ghent["periods"]
    assert {} == _json(config_path, capsys, 2026)


def test_a_strategic_partner_starting_a_group_does_not_facilitate(
    runtime: Runtime, clock: Clock, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A Strategic Partner's approved START makes it a member only (SPEC §2.3): nobody is reported."""
    clock.now = _at(2025, 4, 7)
    _mail(runtime, "jordi@catalonia.example", "START Green cleaning products", "We want to share criteria.")
    _approve_pending(runtime)

    assert {} == _json(config_path, capsys, 2025)


def test_a_facilitator_replaced_in_config_ends_when_the_new_one_begins(
    runtime: Runtime, clock: Clock, tmp_path: Path, database_url: str
):
    """``init`` with a new declared facilitator ends the old one's term and makes them a member."""
    _declare(tmp_path, database_url, ANNA, _at(2025, 1, 6))
    _declare(tmp_path, database_url, SARA, _at(2025, 7, 1))
    assert {ANNA: "member", SARA: "facilitator"} == {
        m["contact_email"]: m["role"] for m in queries.members(runtime, "food")
    }
    assert [(ANNA, "replaced", False), (SARA, "", True)] == _terms(runtime, "food")
    clock.now = _at(2025, 12, 31, 12)

    rows = {r["organisation"]: r for r in facilitators(runtime, 2025)}

    # Both facilitated on 1 July; the month goes to Malmo, which had all the rest of it.
    assert (6, "2025-07-01") == (rows["City of Ghent"]["months"], rows["City of Ghent"]["periods"][0]["to"])
    assert (["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12"], "2025-07-01", None) == (
        rows["City of Malmo"]["counted_months"],
        rows["City of Malmo"]["periods"][0]["from"],
        rows["City of Malmo"]["periods"][0]["to"],
    )


def test_closing_the_group_ends_its_facilitators_term(
    runtime: Runtime, clock: Clock, tmp_path: Path, database_url: str
):
    """CLOSE ends the facilitator's term: no month counts after it, even when ``init`` runs again later."""
    _declare(tmp_path, database_url, SARA, _at(2027, 1, 4))
    with runtime.sessions() as session:
        end = group_end(session.scalars(select(Group).where(Group.slug == "food")).one(), runtime)
    tick(runtime, end - timedelta(days=30))
    with runtime.sessions() as session:
        question = session.scalars(
            select(OutboxMessage.raw).where(OutboxMessage.kind == "group_end", OutboxMessage.to_addr == SARA)
        ).one()
    clock.now = end - timedelta(days=20)
    Pipeline(runtime).accept(outlook_reply(question, SARA, "CLOSE"), "file", "")
    with runtime.sessions() as session:
        closed_at = session.scalars(select(Group.closed_at).where(Group.slug == "food")).one()
    assert closed_at is not None
    assert date(2028, 11, 5) == closed_at.astimezone(BRUSSELS).date()
    assert [(SARA, "closed", False)] == _terms(runtime, "food")
    clock.now = _at(2029, 6, 1)

    malmo = {r["organisation"]: r for r in facilitators(runtime, 2028)}["City of Malmo"]

    # January to October; November's five days before the closing are under half of it.
    assert (10, 310) == (malmo["months"], malmo["days"])
    assert [{"group": "food", "contact": SARA, "from": "2027-01-04", "to": "2028-11-05"}] == malmo["periods"]
    assert [] == facilitators(runtime, 2029)
    # init with the facilitator still declared does not reopen the closed group's facilitation.
    _declare(tmp_path, database_url, SARA, _at(2029, 1, 15))
    assert [(SARA, "closed", False)] == _terms(runtime, "food")
    assert [] == facilitators(runtime, 2029)


def test_a_term_counts_for_the_organisation_it_was_recorded_for(
    runtime: Runtime, clock: Clock, tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A facilitator the registry later moves to another organisation still counts for the first one."""
    clock.now = _at(2025, 2, 3)
    _mail(runtime, ANNA, "START Green cleaning products", "We want to share tender criteria for cleaning.")
    _approve_pending(runtime)
    _import(runtime, tmp_path, f"City of Haarlem,Netherlands,participant,haarlem.example,{ANNA},Anna\n")
    with runtime.sessions() as session:
        now_in = session.scalar(
            select(Organisation.name)
            .join(Contact, Contact.organisation_id == Organisation.id)
            .where(Contact.email == ANNA)
        )
    assert "City of Haarlem" == now_in

    rows = _json(config_path, capsys, 2025)

    assert ["City of Ghent"] == list(rows)
    assert (11, [ANNA]) == (rows["City of Ghent"]["months"], rows["City of Ghent"]["contacts"])


def test_a_term_recorded_without_organisation_counts_for_the_contacts_current_one(
    runtime: Runtime, tmp_path: Path, database_url: str, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A facilitator declared before the registry knew their domain counts for the one it knows later."""
    lea = "lea@lund.example"
    _declare(tmp_path, database_url, lea, _at(2025, 1, 6))

    before = _json(config_path, capsys, 2025)
    _import(runtime, tmp_path, "City of Lund,Sweden,participant,lund.example,,\n")
    after = _json(config_path, capsys, 2025)

    assert [lea] == list(before)
    assert (None, False, 12) == (before[lea]["organisation"], before[lea]["eligible"], before[lea]["months"])
    assert ["City of Lund"] == list(after)
    assert (True, 12, [lea]) == (
        after["City of Lund"]["eligible"],
        after["City of Lund"]["months"],
        after["City of Lund"]["contacts"],
    )


def test_months_over_several_years_and_two_groups_in_one_month(
    runtime: Runtime, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A month counts with half its days facilitated or more, once however many groups were led."""
    _facilitation(runtime, "circular", SARA, _at(2024, 7, 15), _at(2026, 2, 10))
    _facilitation(runtime, "food", ANNA, _at(2025, 1, 1, 0), _at(2025, 4, 1, 0))
    _facilitation(runtime, "ict", "piet@ghent.example", _at(2025, 3, 1), _at(2025, 5, 10))

    in_2024, in_2025, in_2026 = (_json(config_path, capsys, year) for year in (2024, 2025, 2026))

    # 17 of July's 31 days count; the rest of 2024 is whole months.
    assert (6, 170) == (in_2024["City of Malmo"]["months"], in_2024["City of Malmo"]["days"])
    assert 12 == in_2025["City of Malmo"]["months"]
    # 31 days of January count, 10 of February's 28 do not.
    assert ["2026-01"] == in_2026["City of Malmo"]["counted_months"]
    # Food (January to March) and ICT (March to 10 May) overlap in March: four months, not five.
    ghent = in_2025["City of Ghent"]
    assert (["2025-01", "2025-02", "2025-03", "2025-04"], ["food", "ict"]) == (
        ghent["counted_months"],
        ghent["groups"],
    )
    assert [ANNA, "piet@ghent.example"] == ghent["contacts"]
    assert {"City of Malmo"} == set(in_2024)


def test_strategic_partners_and_unregistered_facilitators_are_listed_as_not_eligible(
    runtime: Runtime, clock: Clock
):
    """Only Participants are eligible; others are listed after them with the reason."""
    clock.now = _at(2025, 12, 31, 12)
    _facilitation(runtime, "big-buyers", "jordi@catalonia.example", _at(2025, 1, 1), None)
    _facilitation(runtime, "food", "someone@elsewhere.example", _at(2025, 3, 1), _at(2025, 5, 1))
    _facilitation(runtime, "circular", "joost@haarlem.example", _at(2025, 6, 1), None)

    rows = facilitators(runtime, 2025)

    assert [
        ("City of Haarlem", "participant", True, 7),
        ("Region of Catalonia", "strategic_partner", False, 12),
        (None, None, False, 2),
    ] == [(r["organisation"], r["status"], r["eligible"], r["months"]) for r in rows]
    assert "Strategic Partner" in rows[1]["reason"]
    assert (["someone@elsewhere.example"], "no organisation") == (rows[2]["contacts"], rows[2]["reason"][:15])
    assert None is rows[0]["periods"][0]["to"]


def test_an_open_term_counts_up_to_now(runtime: Runtime, clock: Clock):
    """The current year counts what has happened so far: June's first ten days are not yet half of it."""
    _facilitation(runtime, "circular", "joost@haarlem.example", _at(2026, 1, 10), None)
    clock.now = _at(2026, 6, 10)

    [haarlem] = facilitators(runtime, 2026)

    # January (22 days) to May; June has had 10 days so far.
    assert (5, None) == (haarlem["months"], haarlem["periods"][0]["to"])
    clock.now = _at(2026, 6, 30)
    assert 6 == facilitators(runtime, 2026)[0]["months"]


def test_csv_and_table_output(runtime: Runtime, config_path: Path, capsys: pytest.CaptureFixture[str]):
    """``--csv`` prints a header and one row per organisation; the plain output is a table."""
    _facilitation(runtime, "food", ANNA, _local(2025, 1, 1), _local(2025, 3, 1))
    _facilitation(runtime, "ict", "jordi@catalonia.example", _local(2025, 1, 1), _local(2025, 2, 1))

    code, out, err = _report(config_path, capsys, "--year", "2025", "--csv")
    assert 0 == code, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [("City of Ghent", "true", "2", "food"), ("Region of Catalonia", "false", "1", "ict")] == [
        (r["organisation"], r["eligible"], r["months"], r["groups"]) for r in rows
    ]
    assert f"food {ANNA} 2025-01-01..2025-02-28" == rows[0]["periods"]

    code, out, err = _report(config_path, capsys, "--year", "2025")
    assert 0 == code, err
    header, ghent, catalonia = out.splitlines()
    assert header.split()[:5] == ["organisation", "country", "status", "eligible", "months"]
    assert ("yes", "no") == (ghent.split()[5], catalonia.split()[5])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--year", "1999"), "--year: 1999 is out of range; give a year from 2000 to 2100"),
        (("--year", "20x5"), "--year: '20x5' is not a year; give four digits, e.g. 2027"),
        ((), "--year is required, e.g. --year 2027"),
        (("--year", "2025", "--json", "--csv"), "give --json or --csv, not both"),
    ],
)
def test_bad_arguments_are_one_clear_line(
    config_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
):
    """A bad or missing year, or two output formats, stop with one line on stderr and status 1."""
    code, out, err = _report(config_path, capsys, *args)

    assert (1, "", f"mailflow: error: {message}\n") == (code, out, err)


@pytest.mark.parametrize(
    ("days", "year", "expected"),
    [
        ({date(2025, 1, d) for d in range(1, 16)}, 2025, []),  # 15 of 31: under half
        ({date(2025, 1, d) for d in range(1, 17)}, 2025, [1]),  # 16 of 31
        ({date(2025, 2, d) for d in range(15, 29)}, 2025, [2]),  # 14 of 28: exactly half
        ({date(2024, 2, d) for d in range(16, 30)}, 2024, []),  # 14 of a leap February's 29
        ({date(2024, 12, 31), date(2026, 1, 1)}, 2025, []),  # other years' days do not count
    ],
)
def test_a_month_counts_from_half_its_days(days: set[date], year: int, expected: list[int]):
    """The month rule: rounded to the nearest whole month, a tie counting for the facilitator."""
    assert expected == counted_months(days, year)


def test_days_are_counted_in_the_network_time_zone():
    """A period that begins at 23:30 UTC on 31 January begins on 1 February in Brussels."""
    period = Period("food", ANNA, 1, datetime(2025, 1, 31, 23, 30, tzinfo=UTC), _at(2025, 2, 2))

    days = facilitated_days([period], 2025, BRUSSELS, _at(2026, 1, 1))

    assert {date(2025, 2, 1), date(2025, 2, 2)} == days
