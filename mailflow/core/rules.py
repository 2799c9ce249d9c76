"""The network's rules (SPEC §2), as small predicates with the reason when they say no."""

from __future__ import annotations

import enum

ACTIVE_THRESHOLD = 3
"""A group is ``forming`` until this many participant organisations are members (seed: "three or more")."""


class NetworkStatus(enum.StrEnum):
    """An organisation's standing in the network."""

    PARTICIPANT = "participant"
    STRATEGIC_PARTNER = "strategic_partner"
    NONE = "none"


def may_take_part(status: NetworkStatus | None) -> bool:
    """Only Participants and Strategic Partners may join or start a group (SPEC §2.1)."""
    return status in {NetworkStatus.PARTICIPANT, NetworkStatus.STRATEGIC_PARTNER}


def may_facilitate(status: NetworkStatus | None) -> bool:
    """A facilitator's organisation must be a Participant, not only a Strategic Partner (SPEC §2.3)."""
    return status is NetworkStatus.PARTICIPANT


def should_activate(group_status: str, participant_organisations: int) -> bool:
    """A forming group becomes active once three participant organisations are members (SPEC §2.2)."""
    return group_status == "forming" and participant_organisations >= ACTIVE_THRESHOLD


def has_aim(aim: str) -> bool:
    """A start request must say what the group is for (SPEC §2.4): a few words at least."""
    return len(aim.split()) >= 3
