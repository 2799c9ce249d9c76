"""The digests as scheduled jobs: each member's digest of their groups, and the network's digest (SPEC §2.4).

A member digest goes to each contact of an active membership whose choice is ``weekly`` or ``monthly``, once
per period, covering the last period that ended: the organisations that joined their groups, the
facilitators' updates, the secretariat's decisions, the meetings ahead with the contact's own answer to each
invitation, and the groups still forming that need participants. A digest with nothing new and no meeting
ahead is not sent. The network digest goes every ``[digests] network`` period to every contact of a
Participant or Strategic Partner organisation, with a copy to the secretariat.

Both jobs read the period's activity once (a fixed number of queries, whatever the number of contacts) and
put each digest together in memory from shared, read-only facts; :func:`mailflow.app.schedule.tick` then
queues each :class:`~mailflow.app.jobs.Due` once, keyed by recipient and period.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailflow.app.digest_activity import (
    Ahead,
    GroupRow,
    Reader,
    Seat,
    answer_of,
    chosen_explicitly,
    load_ahead,
    load_answers,
    load_groups,
    load_members,
    load_network,
    load_news,
)
from mailflow.app.digest_facts import GroupNews, GroupUpdates, MeetingAnswer, Section
from mailflow.app.digest_mail import (
    digest_headers,
    effective_choice,
    handle_digest,
    handle_digest_reply,
    schedule_context,
)
from mailflow.app.digest_periods import FREQUENCIES, Period, horizon, last_period
from mailflow.app.effects import Mailer
from mailflow.app.jobs import Due, Job, sent_keys
from mailflow.app.runtime import Runtime
from mailflow.core import calendar as cal
from mailflow.core.intent import DIGEST_PREFIX, is_digest_reply
from mailflow.core.plans import Mail

__all__ = [
    "JOBS",
    "handle_digest",
    "handle_digest_reply",
    "is_digest_reply",
    "member_digests",
    "network_digest",
]

log = logging.getLogger("mailflow.digests")

_NETWORK_MEETINGS = 15
_NETWORK_UPDATES = 20
_NEEDS_ACTION = cal.PartStat.NEEDS_ACTION.value


def _readers_by_choice(session: Session, runtime: Runtime, readers: list[Reader]) -> dict[str, list[Reader]]:
    """The readers grouped by their effective choice: ``weekly``, ``monthly`` or ``off``."""
    default = runtime.settings.digests.default
    explicit = chosen_explicitly(session) if default != "weekly" else set()
    chosen: dict[str, list[Reader]] = {"weekly": [], "monthly": [], "off": []}
    for reader in readers:
        chosen.setdefault(effective_choice(reader.frequency, reader.email, default, explicit), []).append(
            reader
        )
    return chosen


@dataclass(frozen=True, slots=True)
class _Facts:
    """What one period's member digests are made of, shared by every reader."""

    news: dict[int, GroupNews]
    ahead: dict[int, list[Ahead]]
    answers: dict[tuple[int, str], dict[str, str]]
    forming: list[tuple[int, GroupNews]]
    limit: datetime
    period_end: datetime

    def context(self, reader: Reader, seats: list[Seat]) -> dict[str, Any] | None:
        """One contact's digest facts, or None when it would say nothing new and list no meeting ahead.

        Only the groups the contact belonged to when the period ended count: who joined since then has
        had the welcome mail and hears of the group from the next digest on.
        """
        if all(seat.joined_at >= self.period_end for seat in seats):
            return None
        sections: list[Section] = []
        unanswered = 0
        for group_id, role, joined_at in seats:
            if joined_at >= self.period_end:
                continue
            news = self.news.get(group_id)
            if news is None:
                continue
            meetings: list[MeetingAnswer] = []
            for item in self.ahead.get(group_id, ()):
                if item.start > self.limit:
                    break
                answer = answer_of(self.answers, item, reader.email)
                unanswered += answer == _NEEDS_ACTION
                meetings.append(MeetingAnswer(item.facts, answer))
            if news.news or meetings:
                sections.append(Section(news, tuple(meetings), role))
        own = {seat.group_id for seat in seats}
        calls = [group for group_id, group in self.forming if group_id not in own]
        if not sections and not any(group.is_new for group in calls):
            return None
        return {
            "reader": {"name": reader.name, "email": reader.email},
            "groups": sections,
            "forming": calls,
            "unanswered": unanswered,
        }


def _forming(groups: dict[int, GroupRow], news: dict[int, GroupNews]) -> list[tuple[int, GroupNews]]:
    return [
        (group.id, news[group.id])
        for group in groups.values()
        if group.status == "forming" and not group.associated
    ]


def member_digests(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """Each member's digest of the last weekly or monthly period that ended at or before ``now``."""
    settings = runtime.settings
    members = load_members(session)
    by_choice = _readers_by_choice(session, runtime, list(members))
    wanted = [frequency for frequency in FREQUENCIES if by_choice[frequency]]
    if not wanted:
        return []
    groups = load_groups(session)
    ahead = load_ahead(session, groups, now, max(horizon(f) for f in wanted), settings.network.address)
    answers = load_answers(session, (item.meeting_id for items in ahead.values() for item in items))
    headers, schedule = digest_headers(runtime), schedule_context(runtime)
    due: list[Due] = []
    for frequency in wanted:
        period = last_period(frequency, now, settings.digests, settings.network.timezone)
        # serve ticks every minute: readers who have this period's digest already are not built again.
        done = sent_keys(session, (f"digest/{reader.id}/{period.key}" for reader in by_choice[frequency]))
        readers = [r for r in by_choice[frequency] if f"digest/{r.id}/{period.key}" not in done]
        if not readers:
            continue
        news = load_news(session, groups, period.start, period.end, settings.network.timezone)
        run = _Facts(news, ahead, answers, _forming(groups, news), now + horizon(frequency), period.end)
        shared = {"frequency": frequency, "period": _period(period), "schedule": schedule}
        empty = 0
        for reader in readers:
            facts = run.context(reader, members[reader])
            if facts is None:
                empty += 1
                continue
            mail = Mail("digest", reader.email, {**shared, **facts}, headers=headers, id_prefix=DIGEST_PREFIX)
            due.append(
                Due(
                    key=f"digest/{reader.id}/{period.key}",
                    mail=mail,
                    event="digest_sent",
                    detail=f"{period.key}: {len(facts['groups'])} groups",
                )
            )
        log.info(
            "member digests %s: %d readers, %d with news, %d empty",
            period.key,
            len(readers),
            len(readers) - empty,
            empty,
        )
    return due


def _period(period: Period) -> dict[str, str]:
    return {"label": period.label(), "frequency": period.frequency}


def _network_updates(news: dict[int, GroupNews]) -> dict[str, Any]:
    """The groups that posted updates, the latest first: an excerpt of each, the rest by name only."""
    posted = sorted(
        (
            GroupUpdates(group, group.updates[-1], len(group.updates))
            for group in news.values()
            if group.updates
        ),
        key=lambda item: item.latest.posted_at,
        reverse=True,
    )
    return {
        "updates": posted[:_NETWORK_UPDATES],
        "more_updates": [item.group for item in posted[_NETWORK_UPDATES:]],
    }


def _copy_key(period: str, secretariat: str) -> str:
    return f"network-digest/secretariat/{period}/{secretariat}"


def network_digest(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """The network's digest of the last ``[digests] network`` period, with a copy to the secretariat.

    It goes to every contact of a Participant or Strategic Partner organisation, unless they switched
    digests off (the digest's List-Unsubscribe says it would stop). Not sent when there is no new group, no
    group forming, no update and no meeting ahead.
    """
    settings = runtime.settings
    frequency = settings.digests.network
    if frequency == "off":
        return []
    zone = settings.network.timezone
    period = last_period(frequency, now, settings.digests, zone)
    # The secretariat's copy is queued last: once it is, this period's run is complete.
    if sent_keys(session, [_copy_key(period.key, runtime.secretariat_address)]):
        return []
    groups = load_groups(session)
    news = load_news(session, groups, period.start, period.end, zone)
    ahead = load_ahead(session, groups, now, horizon(frequency), settings.network.address)
    joinable = [group for group in groups.values() if not group.associated]
    meetings = sorted(
        (item for items in ahead.values() for item in items), key=lambda i: (i.start, i.meeting_id)
    )
    facts: dict[str, Any] = {
        "frequency": frequency,
        "period": _period(period),
        "schedule": schedule_context(runtime),
        "new_groups": [
            news[g.id]
            for g in joinable
            if g.status != "forming" and (news[g.id].is_new or news[g.id].became_active)
        ],
        "forming": [group for _group_id, group in _forming(groups, news)],
        **_network_updates(news),
        "meetings": [item.facts for item in meetings[:_NETWORK_MEETINGS]],
        "groups": [news[g.id] for g in joinable if g.status == "active"],
    }
    if not any(facts[name] for name in ("new_groups", "forming", "updates", "meetings")):
        log.info("network digest %s: nothing to tell", period.key)
        return []
    secretariat = runtime.secretariat_address
    chosen = _readers_by_choice(session, runtime, load_network(session, period.end))
    readers = sorted(
        (reader for frequency in FREQUENCIES for reader in chosen[frequency] if reader.email != secretariat),
        key=lambda reader: reader.id,
    )
    if not readers:
        log.info("network digest %s: no contact to send it to", period.key)
        return []
    facts["recipients"] = len(readers)
    headers = digest_headers(runtime)
    # Every reader gets the same words (no name in the greeting), so one rendering could serve them all.
    same = {**facts, "copy": False}
    bodies = (
        Mailer(session, runtime, now).bodies(Mail("network_digest", readers[0].email, same))
        if readers
        else None
    )
    due = [
        Due(
            key=f"network-digest/{reader.id}/{period.key}",
            mail=Mail("network_digest", reader.email, same, headers=headers, id_prefix=DIGEST_PREFIX),
            event="network_digest_sent",
            detail=period.key,
            bodies=bodies,
        )
        for reader in readers
    ]
    due.append(
        Due(
            key=_copy_key(period.key, secretariat),
            mail=Mail(
                "network_digest",
                secretariat,
                {**facts, "copy": True},
                headers=headers,
                id_prefix=DIGEST_PREFIX,
            ),
            event="network_digest_sent",
            detail=f"{period.key}: copy for the secretariat, {len(readers)} recipients",
        )
    )
    log.info("network digest %s: %d recipients and the secretariat", period.key, len(readers))
    return due


JOBS: dict[str, Job] = {"member_digests": member_digests, "network_digest": network_digest}
"""The digest jobs, for :data:`mailflow.app.schedule.JOBS`."""
