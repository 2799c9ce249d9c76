"""The facts a digest's templates read: frozen values, shared by every digest of a run.

They are objects rather than dicts for speed as well as types: Jinja reads ``x.name`` as an attribute first,
and a run renders ten thousand digests. Every field is a template variable; see ``templates/digest*.j2``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

_UPDATE_CHARS = 1500
_EXCERPT_CHARS = 200
_LINE = 66


def wrap(text: str) -> str:
    """Text in lines short enough for a phone; words (and links) are never split."""
    return "\n".join(
        "\n".join(textwrap.wrap(line, _LINE, break_long_words=False, break_on_hyphens=False))
        for line in text.splitlines()
    )


def excerpt(text: str) -> str:
    """The start of an update, in one paragraph, cut at a word: what the whole network reads of it."""
    flat = " ".join(text.split())
    if len(flat) <= _EXCERPT_CHARS:
        return flat
    return flat[:_EXCERPT_CHARS].rsplit(" ", 1)[0].rstrip(" ,.;:") + " …"


def cut(text: str) -> str:
    """An update as a digest shows it: whole up to a length, then cut with an ellipsis."""
    text = text.strip()
    return text if len(text) <= _UPDATE_CHARS else text[: _UPDATE_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class UpdateFacts:
    """An update: ``text`` for the HTML part, ``wrapped`` for the text part, ``excerpt`` for the network."""

    title: str
    text: str
    wrapped: str
    excerpt: str
    author: str
    date: str
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """The secretariat's decision on a request to join (``kind`` join) or start (start) the group."""

    kind: str
    verdict: str
    organisation: str | None
    date: str


@dataclass(frozen=True, slots=True)
class GroupNews:
    """A group and its news of one period.

    Attributes:
        needed: how many more participant organisations a forming group needs to become active.
        new_organisations: the names of the organisations that became members in the period.
        is_new: the group was created in the period; ``became_active``: it became active in it.
        news: anything above happened (new organisations, updates, decisions, a new group).
    """

    slug: str
    name: str
    status: str
    aim: str
    facilitator_email: str | None
    participants: int
    needed: int
    new_organisations: tuple[str, ...]
    updates: tuple[UpdateFacts, ...]
    decisions: tuple[DecisionFacts, ...]
    is_new: bool
    became_active: bool

    @property
    def news(self) -> bool:
        """Whether the group has news in the period."""
        return bool(
            self.new_organisations or self.updates or self.decisions or self.is_new or self.became_active
        )


@dataclass(frozen=True, slots=True)
class MeetingFacts:
    """One occurrence of a meeting ahead, as a digest lists it (``when`` in the meeting's own zone)."""

    id: int
    title: str
    kind: str
    group: str
    group_slug: str
    when: str
    minutes: int
    join_url: str
    dial_in: str
    pin: str


@dataclass(frozen=True, slots=True)
class MeetingAnswer:
    """A meeting ahead and the reader's answer to its invitation ("" when they hold none)."""

    meeting: MeetingFacts
    answer: str


@dataclass(frozen=True, slots=True)
class Section:
    """One of the reader's groups in their digest: its news, its meetings ahead with their answers."""

    group: GroupNews
    meetings: tuple[MeetingAnswer, ...]
    role: str


@dataclass(frozen=True, slots=True)
class GroupUpdates:
    """A group's updates in the network digest: the latest one, and how many there were."""

    group: GroupNews
    latest: UpdateFacts
    count: int
