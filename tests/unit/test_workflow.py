"""The request lifecycles and the decisions on them, as tables."""

from __future__ import annotations

import pytest

from mailflow.core.lifecycle import (
    TRANSITIONS,
    Action,
    NotAllowedError,
    RequestKind,
    RequestState,
    next_state,
)
from mailflow.core.model import Decision, Verdict
from mailflow.core.plans import GroupFacts, Person
from mailflow.core.rules import NetworkStatus
from mailflow.core.workflow import (
    JoinFacts,
    LeaveFacts,
    PendingRequest,
    StartFacts,
    decide_answer,
    decide_join,
    decide_leave,
    decide_start,
    decide_verdict,
)

S, A, K = RequestState, Action, RequestKind
GHENT = Person("anna@ghent.example", "Anna", "City of Ghent", NetworkStatus.PARTICIPANT)
PARTNER = Person("li@catalonia.example", "Li", "Region of Catalonia", NetworkStatus.STRATEGIC_PARTNER)
OUTSIDER = Person("bob@supplier.example", "Bob", "Sample Supplier Ltd", NetworkStatus.NONE)
UNKNOWN = Person("eve@nowhere.example")
CIRCULAR = GroupFacts(
    "circular",
    "Circular Public Procurement",
    "forming",
    facilitator_email="fac@malmo.example",
    participant_organisations=2,
)
BIG_BUYERS = GroupFacts("big-buyers", "Big Buyers Initiative", "active", associated=True)
APPROVERS = ("a1@iclei.example", "a2@iclei.example")


@pytest.mark.parametrize(
    ("kind", "state", "action", "expected"),
    [
        (K.JOIN, S.RECEIVED, A.SUBMIT, S.PENDING_APPROVAL),
        (K.JOIN, S.RECEIVED, A.DECLINE_INELIGIBLE, S.DECLINED_INELIGIBLE),
        (K.JOIN, S.RECEIVED, A.FORWARD, S.FORWARDED),
        (K.JOIN, S.PENDING_APPROVAL, A.APPROVE, S.APPROVED),
        (K.JOIN, S.PENDING_APPROVAL, A.REJECT, S.REJECTED),
        (K.JOIN, S.PENDING_APPROVAL, A.ASK_INFO, S.NEEDS_INFO),
        (K.JOIN, S.NEEDS_INFO, A.PROVIDE_INFO, S.PENDING_APPROVAL),
        (K.START, S.RECEIVED, A.ASK_INFO, S.NEEDS_INFO),
        (K.START, S.PENDING_APPROVAL, A.APPROVE, S.APPROVED),
        (K.LEAVE, S.RECEIVED, A.COMPLETE, S.COMPLETED),
    ],
)
def test_allowed_transitions(kind: RequestKind, state: RequestState, action: Action, expected: RequestState):
    """Each lifecycle step of SPEC §5 leads where the table says."""
    assert expected == next_state(kind, state, action)


@pytest.mark.parametrize(
    ("kind", "state", "action", "why"),
    [
        (K.JOIN, S.APPROVED, A.APPROVE, "already been approved"),
        (K.JOIN, S.REJECTED, A.APPROVE, "already been rejected"),
        (K.JOIN, S.APPROVED, A.REJECT, "already been approved"),
        (K.START, S.RECEIVED, A.FORWARD, "received"),
        (K.LEAVE, S.COMPLETED, A.COMPLETE, "carried out"),
        (K.JOIN, S.PENDING_APPROVAL, A.PROVIDE_INFO, "waiting for the secretariat"),
    ],
)
def test_refused_transitions_say_why(kind: RequestKind, state: RequestState, action: Action, why: str):
    """An action the state does not allow raises with a sentence a person can read."""
    with pytest.raises(NotAllowedError, match=why):
        next_state(kind, state, action)


def test_decided_states_are_terminal():
    """No action leads out of approved, rejected, declined, forwarded or completed."""
    terminal = {S.APPROVED, S.REJECTED, S.DECLINED_INELIGIBLE, S.FORWARDED, S.COMPLETED}
    leaving = {(k, s) for k, table in TRANSITIONS.items() for (s, _a) in table if s in terminal}
    assert set() == leaving


def _join(person: Person = GHENT, group: GroupFacts = CIRCULAR, **kw: object) -> JoinFacts:
    return JoinFacts(
        request_id=7,
        person=person,
        group=group,
        text="Could Ghent join?",
        approvers=APPROVERS,
        secretariat="leads@iclei.example",
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "state", "templates"),
    [
        (_join(), S.PENDING_APPROVAL, ["acknowledge", "approval_request", "approval_request"]),
        (
            _join(PARTNER),
            S.PENDING_APPROVAL,
            ["acknowledge", "approval_request", "approval_request"],
        ),
        (_join(OUTSIDER), S.DECLINED_INELIGIBLE, ["ineligible", "lead"]),
        (_join(UNKNOWN), S.DECLINED_INELIGIBLE, ["ineligible", "lead"]),
        (_join(OUTSIDER, BIG_BUYERS), S.FORWARDED, ["forwarded", "forward_associated"]),
        (_join(already_member=True), None, ["refusal"]),
        (_join(open_request_id=3), None, ["refusal"]),
        (_join(organisation_member=True), S.APPROVED, ["welcome", "member_joined"]),
    ],
    ids=[
        "eligible",
        "partner",
        "ineligible",
        "unknown-org",
        "big-buyers",
        "member",
        "duplicate",
        "colleague",
    ],
)
def test_join_decisions(facts: JoinFacts, state: RequestState | None, templates: list[str]):
    """A join request goes to the approvers, or is declined, forwarded or refused, with the right mails."""
    plan = decide_join(facts)
    assert state == plan.state
    assert templates == [m.template for m in plan.mails]


def test_approval_mails_carry_one_token_per_approver():
    """Each approver gets a token bound to their own address."""
    plan = decide_join(_join())
    bound = [m.token.bound_to for m in plan.mails if m.token]
    assert list(APPROVERS) == bound


def _pending(
    state: RequestState = S.PENDING_APPROVAL,
    kind: RequestKind = K.JOIN,
    person: Person = GHENT,
    group: GroupFacts | None = CIRCULAR,
    aim: str = "",
) -> PendingRequest:
    return PendingRequest(
        id=7, kind=kind, state=state, person=person, group=group, topic="Green cleaning", aim=aim
    )


def test_third_participant_activates_the_group():
    """Approving the third participant organisation makes a forming group active (SPEC §2.2)."""
    plan = decide_verdict(_pending(), Decision(Verdict.APPROVE), "a1@iclei.example")
    assert (S.APPROVED, True, "member") == (plan.state, plan.activate_group, plan.add_member)
    assert ["welcome", "member_joined", "decision_recorded"] == [m.template for m in plan.mails]


def test_strategic_partner_does_not_count_towards_activation():
    """Only Participant organisations count towards the three."""
    plan = decide_verdict(_pending(person=PARTNER), Decision(Verdict.APPROVE), "a1@iclei.example")
    assert plan.activate_group is False


def test_reject_carries_the_reason_to_the_requester():
    """REJECT <reason> rejects and tells the requester the reason."""
    plan = decide_verdict(_pending(), Decision(Verdict.REJECT, "not a public authority"), "a1@iclei.example")
    assert S.REJECTED == plan.state
    assert "not a public authority" == plan.mails[0].context["reason"]


def test_info_asks_the_requester_with_a_reply_token():
    """INFO <question> moves to needs_info and sends the question with a token bound to the requester."""
    plan = decide_verdict(_pending(), Decision(Verdict.INFO, "Which department?"), "a1@iclei.example")
    assert S.NEEDS_INFO == plan.state
    assert ("respond", GHENT.email) == (plan.mails[0].token.purpose, plan.mails[0].token.bound_to)  # type: ignore[union-attr]


def test_decided_request_refuses_a_second_decision():
    """A second APPROVE on an approved request is refused, so nothing happens twice."""
    with pytest.raises(NotAllowedError):
        decide_verdict(_pending(S.APPROVED), Decision(Verdict.APPROVE), "a2@iclei.example")


def test_command_line_decision_sends_no_receipt():
    """A decision from the CLI has no approver address, so no receipt mail is queued."""
    plan = decide_verdict(_pending(), Decision(Verdict.REJECT, "no"), "operator")
    assert ["rejected"] == [m.template for m in plan.mails]


@pytest.mark.parametrize(
    ("person", "aim", "state", "templates"),
    [
        (
            GHENT,
            "Share tender criteria for green cleaning products",
            S.PENDING_APPROVAL,
            ["acknowledge", "approval_request", "approval_request"],
        ),
        (GHENT, "", S.NEEDS_INFO, ["info_request"]),
        (
            OUTSIDER,
            "Share tender criteria for green cleaning",
            S.DECLINED_INELIGIBLE,
            ["ineligible", "lead"],
        ),
    ],
    ids=["with-aim", "without-aim", "ineligible"],
)
def test_start_decisions(person: Person, aim: str, state: RequestState, templates: list[str]):
    """A start request needs an eligible sender and an aim (SPEC §2.1, §2.4)."""
    plan = decide_start(StartFacts(7, person, "Green cleaning", aim, "", APPROVERS, "leads@iclei.example"))
    assert (state, templates) == (plan.state, [m.template for m in plan.mails])


@pytest.mark.parametrize(
    ("person", "role"),
    [(GHENT, "facilitator"), (PARTNER, "member")],
    ids=["participant", "partner"],
)
def test_approved_start_makes_a_participant_the_facilitator(person: Person, role: str):
    """The facilitator must be a Participant; a Strategic Partner's group waits for one (SPEC §2.3)."""
    plan = decide_verdict(
        _pending(kind=K.START, person=person, group=None), Decision(Verdict.APPROVE), "a@i.example"
    )
    assert (True, role) == (plan.create_group, plan.add_member)


def test_answer_goes_back_to_the_approvers():
    """The requester's answer to INFO returns the request to the approvers with the answer."""
    plan = decide_answer(_pending(S.NEEDS_INFO, K.START, group=None), "We want to share criteria.", APPROVERS)
    assert S.PENDING_APPROVAL == plan.state
    assert "We want to share criteria." == plan.mails[1].context["aim"]


@pytest.mark.parametrize(
    ("member", "facilitator", "templates", "recipients"),
    [
        (True, False, ["left", "member_left"], [GHENT.email, "fac@malmo.example"]),
        (True, True, ["left", "member_left"], [GHENT.email, "leads@iclei.example"]),
        (False, False, ["refusal"], [GHENT.email]),
    ],
    ids=["member", "facilitator", "not-member"],
)
def test_leave(member: bool, facilitator: bool, templates: list[str], recipients: list[str]):
    """Leaving needs no approval; the facilitator is told, or the secretariat when the facilitator leaves."""
    plan = decide_leave(LeaveFacts(7, GHENT, CIRCULAR, member, facilitator, "leads@iclei.example"))
    assert (templates, recipients) == ([m.template for m in plan.mails], [m.to for m in plan.mails])


def test_repeated_start_proposal_is_refused_with_its_number():
    """A second proposal on the same topic while the first is open makes no new request."""
    facts = StartFacts(
        7, GHENT, "Green cleaning", "Share criteria", "", APPROVERS, "leads@iclei.example", open_request_id=3
    )
    plan = decide_start(facts)
    assert (None, ["refusal"], "duplicate_request") == (
        plan.state,
        [m.template for m in plan.mails],
        plan.event,
    )
    assert "#3" in plan.mails[0].context["reason"]
