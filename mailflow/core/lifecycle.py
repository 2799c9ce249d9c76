"""Request, group and membership lifecycles as explicit transition tables (SPEC §5)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class RequestKind(enum.StrEnum):
    """What a request asks for."""

    JOIN = "join"
    START = "start"
    LEAVE = "leave"


class RequestState(enum.StrEnum):
    """Where a request stands."""

    RECEIVED = "received"
    PENDING_APPROVAL = "pending_approval"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REJECTED = "rejected"
    DECLINED_INELIGIBLE = "declined_ineligible"
    FORWARDED = "forwarded"
    COMPLETED = "completed"


OPEN_STATES = frozenset({RequestState.RECEIVED, RequestState.PENDING_APPROVAL, RequestState.NEEDS_INFO})


class Action(enum.StrEnum):
    """What may happen to a request."""

    SUBMIT = "submit"
    DECLINE_INELIGIBLE = "decline_ineligible"
    FORWARD = "forward"
    AUTO_APPROVE = "auto_approve"
    ASK_INFO = "ask_info"
    PROVIDE_INFO = "provide_info"
    APPROVE = "approve"
    REJECT = "reject"
    COMPLETE = "complete"


_S = RequestState
_A = Action
_APPROVAL_FLOW: dict[tuple[RequestState, Action], RequestState] = {
    (_S.RECEIVED, _A.SUBMIT): _S.PENDING_APPROVAL,
    (_S.RECEIVED, _A.DECLINE_INELIGIBLE): _S.DECLINED_INELIGIBLE,
    (_S.PENDING_APPROVAL, _A.APPROVE): _S.APPROVED,
    (_S.PENDING_APPROVAL, _A.REJECT): _S.REJECTED,
    (_S.PENDING_APPROVAL, _A.ASK_INFO): _S.NEEDS_INFO,
    (_S.NEEDS_INFO, _A.PROVIDE_INFO): _S.PENDING_APPROVAL,
    (_S.NEEDS_INFO, _A.APPROVE): _S.APPROVED,
    (_S.NEEDS_INFO, _A.REJECT): _S.REJECTED,
}

TRANSITIONS: Mapping[RequestKind, Mapping[tuple[RequestState, Action], RequestState]] = MappingProxyType(
    {
        RequestKind.JOIN: MappingProxyType(
            {
                **_APPROVAL_FLOW,
                (_S.RECEIVED, _A.FORWARD): _S.FORWARDED,
                (_S.RECEIVED, _A.AUTO_APPROVE): _S.APPROVED,
            }
        ),
        RequestKind.START: MappingProxyType({**_APPROVAL_FLOW, (_S.RECEIVED, _A.ASK_INFO): _S.NEEDS_INFO}),
        RequestKind.LEAVE: MappingProxyType({(_S.RECEIVED, _A.COMPLETE): _S.COMPLETED}),
    }
)
"""The request lifecycles of SPEC §5: (state, action) -> next state, per kind."""

GROUP_TRANSITIONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("forming", "activate"): "active",
        ("active", "near_end"): "closing",
        ("closing", "extend"): "active",
        ("closing", "close"): "closed",
        ("active", "close"): "closed",
        ("forming", "close"): "closed",
    }
)
"""The group lifecycle: forming -> active -> closing -> closed; an extension keeps it active."""

MEMBERSHIP_TRANSITIONS: Mapping[tuple[str, str], str] = MappingProxyType({("active", "leave"): "left"})
"""The membership lifecycle: active -> left."""


class NotAllowedError(Exception):
    """The action is not allowed in the request's current state; ``str()`` says why, for the sender."""


_WHY = {
    RequestState.APPROVED: "it has already been approved",
    RequestState.REJECTED: "it has already been rejected",
    RequestState.DECLINED_INELIGIBLE: "it was declined because the organisation is not in the network",
    RequestState.FORWARDED: "it was forwarded to the secretariat",
    RequestState.COMPLETED: "it has already been carried out",
    RequestState.NEEDS_INFO: "it is waiting for the requester's answer",
    RequestState.PENDING_APPROVAL: "it is waiting for the secretariat's decision",
}


def next_state(kind: RequestKind, state: RequestState, action: Action) -> RequestState:
    """The state a request of ``kind`` reaches from ``state`` by ``action``.

    Raises:
        NotAllowedError: with a sentence saying why the action is not possible now.
    """
    try:
        return TRANSITIONS[kind][(state, action)]
    except KeyError:
        why = _WHY.get(state, f"it is {state.value.replace('_', ' ')}")
        raise NotAllowedError(f"This {kind.value} request cannot be changed: {why}.") from None
