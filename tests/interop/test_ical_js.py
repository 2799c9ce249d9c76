"""Invitations read by an independent parser: ical.js, the library Thunderbird uses (issue 3, SPEC §4).

Needs ``node`` and the npm package ical.js 2.x; ``ICALJS_DIR`` names the folder whose ``node_modules``
holds it (``mkdir -p /tmp/icaljs && cd /tmp/icaljs && npm init -y && npm install ical.js@2``, then
``ICALJS_DIR=/tmp/icaljs``).
The tests skip, saying why, only when one of the two is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mailflow.core.calendar import (
    Attendee,
    Frequency,
    Kind,
    Meeting,
    Method,
    Occurrence,
    Recurrence,
    invitation,
    occurrences,
)

CHECKER = Path(__file__).with_name("ical_check.mjs")
STAMP = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
MEMBER = Attendee(email="marie.dupont@ville-paris.example", name="Marie Dupont")
BXL = ZoneInfo("Europe/Brussels")


def _run(*files: Path) -> tuple[int, dict]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(CHECKER), *map(str, files)], capture_output=True, text=True, check=False, timeout=60
    )
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module", autouse=True)
def _ical_js():
    """Skip the module when node or ical.js is missing; CI installs both."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (CI: apt-get install nodejs npm)")
    status, report = _run()
    if "ical.js not found" in report.get("error", ""):
        pytest.skip("ical.js not found: cd DIR && npm init -y && npm install ical.js@2, then ICALJS_DIR=DIR")
    assert 2 == status, report


def _meeting(tzid: str, wall: tuple[int, ...], **changes: object) -> Meeting:
    zone = UTC if tzid == "UTC" else ZoneInfo(tzid)
    values: dict[str, object] = {
        "uid": f"interop-{tzid.replace('/', '-')}@network.example",
        "sequence": 1,
        "summary": "Groupe « achats circulaires » \u2013 réunion 🌍",
        "description": "Ordre du jour : bilan; suite, décisions\nDeuxième ligne",
        "start": datetime(*wall, tzinfo=zone),
        "duration": timedelta(minutes=90),
        "tzid": tzid,
        "kind": Kind.WEB,
        "organizer_email": "interest-groups@network.example",
        "organizer_name": "Anne Facilitator",
        "join_url": "https://meet.example/j/123?pwd=a;b,c",
        "dial_in": "tel:+3221234567",
        "pin": "1234#",
    }
    values.update(changes)
    return Meeting(**values)  # type: ignore[arg-type]


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(folder: Path, name: str, data: bytes, expected: dict[str, object]) -> Path:
    path = folder / f"{name}.ics"
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps(expected))
    return path


SINGLE = [
    ("Europe/Brussels", (2027, 3, 9, 14, 0), "2027-03-09T13:00:00Z"),
    ("Europe/Brussels", (2027, 7, 6, 14, 0), "2027-07-06T12:00:00Z"),
    ("America/New_York", (2027, 3, 16, 9, 0), "2027-03-16T13:00:00Z"),
    ("Europe/London", (2027, 10, 26, 10, 0), "2027-10-26T09:00:00Z"),
    ("Asia/Tokyo", (2027, 3, 9, 18, 0), "2027-03-09T09:00:00Z"),
    ("Australia/Sydney", (2027, 4, 6, 20, 0), "2027-04-06T10:00:00Z"),
    ("UTC", (2027, 3, 9, 13, 0), "2027-03-09T13:00:00Z"),
]


def test_single_meetings_in_several_zones_pass_ical_js(tmp_path):
    """ical.js parses each invitation, finds the SPEC §4 shape and converts the start to the expected UTC."""
    files = []
    for tzid, wall, start_utc in SINGLE:
        meeting = _meeting(tzid, wall)
        end_utc = _utc(meeting.start + meeting.duration)
        name = f"{tzid.replace('/', '-')}-{wall[1]}"
        files.append(
            _write(
                tmp_path,
                name,
                invitation(meeting, MEMBER, Method.REQUEST, STAMP),
                {"start_utc": start_utc, "end_utc": end_utc},
            )
        )
    status, report = _run(*files)
    assert (0, True) == (status, report["ok"]), json.dumps(report, indent=1)
    assert [start for _, _, start in SINGLE] == [f["computed"]["start_utc"] for f in report["files"]]


def test_recurring_meeting_and_its_cancellations_pass_ical_js(tmp_path):
    """ical.js expands the series (RRULE, EXDATE, moved occurrence) to the same instants as calendar.py."""
    rule = Recurrence(
        frequency=Frequency.WEEKLY, interval=2, byday=("TU",), until=datetime(2027, 6, 30, 21, 59, tzinfo=UTC)
    )
    series = _meeting("Europe/Brussels", (2027, 3, 9, 14, 0), recurrence=rule)
    moved = Occurrence(
        recurrence_id=datetime(2027, 3, 23, 14, 0, tzinfo=BXL), start=datetime(2027, 3, 24, 15, 0, tzinfo=BXL)
    )
    cancelled = Occurrence(recurrence_id=datetime(2027, 4, 6, 14, 0, tzinfo=BXL), cancelled=True)
    changes = [moved, cancelled]
    starts = [_utc(o.start) for o in occurrences(series, changes)]
    monthly = _meeting(
        "America/New_York",
        (2027, 1, 12, 9, 0),
        recurrence=Recurrence(frequency=Frequency.MONTHLY, byday=("2TU",), count=6),
        kind=Kind.PHONE,
        join_url="",
    )
    files = [
        _write(
            tmp_path,
            "series",
            invitation(series, MEMBER, Method.REQUEST, STAMP, changes),
            {"start_utc": "2027-03-09T13:00:00Z", "occurrences_utc": starts},
        ),
        _write(
            tmp_path,
            "monthly-phone",
            invitation(monthly, MEMBER, Method.REQUEST, STAMP),
            {
                "start_utc": "2027-01-12T14:00:00Z",
                "occurrences_utc": [_utc(o.start) for o in occurrences(monthly)],
            },
        ),
        _write(
            tmp_path,
            "cancel-series",
            invitation(series, MEMBER, Method.CANCEL, STAMP, changes),
            {"start_utc": "2027-03-09T13:00:00Z"},
        ),
        _write(
            tmp_path,
            "cancel-one",
            invitation(series, MEMBER, Method.CANCEL, STAMP, changes, occurrence=moved.recurrence_id),
            {"start_utc": "2027-03-24T14:00:00Z"},
        ),
    ]
    status, report = _run(*files)
    assert (0, True) == (status, report["ok"]), json.dumps(report, indent=1)
    assert 8 == len(report["files"][0]["computed"]["occurrences_utc"])
    assert "2027-04-20T12:00:00Z" in report["files"][0]["computed"]["occurrences_utc"]
    assert ["REQUEST", "REQUEST", "CANCEL", "CANCEL"] == [f["method"] for f in report["files"]]


def test_the_checker_reports_violations(tmp_path):
    """The check is not vacuous: RDATEs, LF line ends, unquoted CN, quoted FEATURE, a wrong start all fail."""
    good = invitation(_meeting("Europe/Brussels", (2027, 3, 9, 14, 0)), MEMBER, Method.REQUEST, STAMP)
    auto = icalendar.Calendar.from_ical(good)
    for vtimezone in auto.walk("VTIMEZONE"):
        auto.subcomponents.remove(vtimezone)
    auto.add_missing_timezones()
    broken = good.replace(b'CN="Marie Dupont"', b"CN=Marie").replace(
        b"FEATURE=AUDIO,PHONE", b'FEATURE="AUDIO,PHONE"'
    )
    expected = {"start_utc": "2027-03-09T13:00:00Z"}
    files = [
        _write(tmp_path, "auto-vtimezone", auto.to_ical(), expected),
        _write(tmp_path, "lf", good.replace(b"\r\n", b"\n"), expected),
        _write(tmp_path, "quoting", broken, expected),
        _write(tmp_path, "wrong-start", good, {"start_utc": "2027-03-09T14:00:00Z"}),
    ]
    status, report = _run(*files)
    assert 1 == status
    violations = {Path(f["file"]).stem: " | ".join(f["violations"]) for f in report["files"]}
    assert "RDATE" in violations["auto-vtimezone"]
    assert "CRLF" in violations["lf"]
    assert "unquoted CN" in violations["quoting"]
    assert "quoted value" in violations["quoting"]
    assert "expected 2027-03-09T14:00:00Z" in violations["wrong-start"]
