"""The decisions that drive the request lifecycles (SPEC §2 and §5).

Every ``decide_*`` function is pure: it takes the facts the shell gathered and returns a
:class:`~mailflow.core.plans.Plan`, the new state, what to record and which mails to queue. The shell carries
a plan out in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailflow.core.lifecycle import Action, NotAllowedError, RequestKind, RequestState, next_state
from mailflow.core.model import Decision, Verdict
from mailflow.core.plans import GroupFacts, Mail, Person, Plan, TokenSpec, refusal
from mailflow.core.rules import NetworkStatus, has_aim, may_facilitate, may_take_part, should_activate


@dataclass(frozen=True, slots=True)
class JoinFacts:
    """Everything a join decision looks at."""

    request_id: int
    person: Person
    group: GroupFacts
    text: str
    approvers: tuple[str, ...]
    secretariat: str
    already_member: bool = False
    organisation_member: bool = False
    open_request_id: int | None = None
    answered: tuple[int, RequestState] | None = None


def _approval_mails(request_ctx: Mapping[str, Any], approvers: tuple[str, ...]) -> tuple[Mail, ...]:
    return tuple(
        Mail("approval_request", approver, request_ctx, token=TokenSpec("approve", approver))
        for approver in approvers
    )


def _ineligible(facts_person: Person, request_ctx: Mapping[str, Any], secretariat: str) -> Plan:
    return Plan(
        state=RequestState.DECLINED_INELIGIBLE,
        action=Action.DECLINE_INELIGIBLE,
        event="declined_ineligible",
        reason="organisation is not a Participant or Strategic Partner",
        mails=(
            Mail("ineligible", facts_person.email, request_ctx, answers_sender=True),
            Mail("lead", secretariat, request_ctx),
        ),
    )


def _already_answered(to: str, answered: tuple[int, RequestState], about: str) -> Plan:
    """The same request was answered lately: say so once more, without a second lead or forward."""
    request_id, state = answered
    if state is RequestState.FORWARDED:
        reason = (
            f"Your request #{request_id} about {about} was forwarded to the secretariat,"
            " who will get in touch with you."
        )
    else:
        reason = (
            f"We answered your request #{request_id} already: interest groups are open to Participants"
            " and Strategic Partners of the network, and the secretariat has your enquiry."
        )
    return refusal(to, reason, event="duplicate_request")


def decide_join(facts: JoinFacts) -> Plan:  # noqa: PLR0911 - one return per rule reads as the rule list
    """Decide what a join request leads to (SPEC §2.1, §2.2, §2.7 and §5)."""
    person, group = facts.person, facts.group
    ctx: dict[str, Any] = {
        "request_id": facts.request_id,
        "kind": "join",
        "person": person.as_context(),
        "group": group.as_context(),
        "text": facts.text,
    }
    if facts.already_member:
        return refusal(person.email, f"You are already a member of {group.name}.", group=ctx["group"])
    if facts.open_request_id is not None:
        return refusal(
            person.email,
            f"Your request #{facts.open_request_id} to join {group.name} is already with the secretariat;"
            " you will hear from us as soon as it is decided.",
            event="duplicate_request",
            group=ctx["group"],
        )
    if facts.answered is not None:
        return _already_answered(person.email, facts.answered, group.name)
    if group.status == "closed":
        return refusal(person.email, f"{group.name} has closed and takes no new members.")
    if group.associated:
        return Plan(
            state=RequestState.FORWARDED,
            action=Action.FORWARD,
            event="forwarded",
            mails=(
                Mail("forwarded", person.email, ctx, answers_sender=True),
                Mail("forward_associated", facts.secretariat, ctx),
            ),
        )
    if not may_take_part(person.status):
        return _ineligible(person, ctx, facts.secretariat)
    if facts.organisation_member:
        return _approved_join(facts, ctx, Action.AUTO_APPROVE)
    return Plan(
        state=RequestState.PENDING_APPROVAL,
        action=Action.SUBMIT,
        event="submitted",
        mails=(
            Mail("acknowledge", person.email, ctx, answers_sender=True),
            *_approval_mails(ctx, facts.approvers),
        ),
    )


def _approved_join(facts: JoinFacts, ctx: Mapping[str, Any], action: Action) -> Plan:
    group = facts.group
    new_org = not facts.organisation_member and facts.person.status is NetworkStatus.PARTICIPANT
    participants = group.participant_organisations + (1 if new_org else 0)
    activate = should_activate(group.status, participants)
    ctx = {**ctx, "activated": activate, "participant_organisations": participants}
    mails = [Mail("welcome", facts.person.email, ctx)]
    if group.facilitator_email and group.facilitator_email != facts.person.email:
        mails.append(Mail("member_joined", group.facilitator_email, ctx))
    return Plan(
        state=RequestState.APPROVED,
        action=action,
        event="approved",
        add_member="member",
        activate_group=activate,
        mails=tuple(mails),
    )


@dataclass(frozen=True, slots=True)
class StartFacts:
    """Everything a start decision looks at."""

    request_id: int
    person: Person
    topic: str
    aim: str
    text: str
    approvers: tuple[str, ...]
    secretariat: str
    existing_group: GroupFacts | None = None
    open_request_id: int | None = None
    answered: tuple[int, RequestState] | None = None


def decide_start(facts: StartFacts) -> Plan:
    """Decide what a request to start a group leads to (SPEC §2.1, §2.3, §2.4)."""
    person = facts.person
    ctx: dict[str, Any] = {
        "request_id": facts.request_id,
        "kind": "start",
        "person": person.as_context(),
        "topic": facts.topic,
        "aim": facts.aim,
        "text": facts.text,
        "can_facilitate": may_facilitate(person.status),
    }
    if facts.existing_group is not None:
        return refusal(
            person.email,
            f"A group on this topic exists already: {facts.existing_group.name}."
            f" To take part, send JOIN {facts.existing_group.slug}.",
            group=facts.existing_group.as_context(),
        )
    if facts.open_request_id is not None:
        return refusal(
            person.email,
            f"Your proposal #{facts.open_request_id} for a group on {facts.topic}"
            " is already with the secretariat.",
            event="duplicate_request",
        )
    if facts.answered is not None:
        return _already_answered(person.email, facts.answered, facts.topic)
    if not may_take_part(person.status):
        return _ineligible(person, ctx, facts.secretariat)
    if not has_aim(facts.aim):
        question = (
            "What would the group's aim be? Please answer in a few sentences: the common interest or"
            " problem the participants would work on together."
        )
        return Plan(
            state=RequestState.NEEDS_INFO,
            action=Action.ASK_INFO,
            event="needs_info",
            reason="no aim given",
            mails=(
                Mail(
                    "info_request",
                    person.email,
                    {**ctx, "question": question, "asked_by": "mailflow"},
                    token=TokenSpec("respond", person.email),
                    answers_sender=True,
                ),
            ),
        )
    return Plan(
        state=RequestState.PENDING_APPROVAL,
        action=Action.SUBMIT,
        event="submitted",
        mails=(
            Mail("acknowledge", person.email, ctx, answers_sender=True),
            *_approval_mails(ctx, facts.approvers),
        ),
    )


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A stored request as the decisions on it need it."""

    id: int
    kind: RequestKind
    state: RequestState
    person: Person
    group: GroupFacts | None
    topic: str = ""
    aim: str = ""
    text: str = ""
    organisation_member: bool = False

    def as_context(self) -> dict[str, Any]:
        """Template facts about this request."""
        return {
            "request_id": self.id,
            "kind": self.kind.value,
            "person": self.person.as_context(),
            "group": self.group.as_context() if self.group else None,
            "topic": self.topic,
            "aim": self.aim,
            "text": self.text,
            "can_facilitate": may_facilitate(self.person.status),
        }


_VERDICT_ACTION = {
    Verdict.APPROVE: Action.APPROVE,
    Verdict.REJECT: Action.REJECT,
    Verdict.INFO: Action.ASK_INFO,
}


def decide_verdict(request: PendingRequest, decision: Decision, approver: str) -> Plan:
    """Carry out an approver's APPROVE, REJECT or INFO on a request.

    Raises:
        NotAllowedError: the request's state does not allow the decision (e.g. already decided).
    """
    action = _VERDICT_ACTION[decision.verdict]
    state = next_state(request.kind, request.state, action)
    ctx = {**request.as_context(), "approver": approver, "reason": decision.text}
    # The approver who decided by mail gets a receipt; a decision taken on the command line needs none.
    confirm: tuple[Mail, ...] = (
        (
            Mail(
                "decision_recorded",
                approver,
                {**ctx, "verdict": decision.verdict.value},
                answers_sender=True,
            ),
        )
        if "@" in approver
        else ()
    )
    if action is Action.REJECT:
        return Plan(
            state=state,
            action=action,
            event="rejected",
            reason=decision.text,
            mails=(Mail("rejected", request.person.email, ctx), *confirm),
        )
    if action is Action.ASK_INFO:
        question = decision.text or "Could you tell us more about your request?"
        return Plan(
            state=state,
            action=action,
            event="needs_info",
            reason=question,
            mails=(
                Mail(
                    "info_request",
                    request.person.email,
                    {**ctx, "question": question, "asked_by": approver},
                    token=TokenSpec("respond", request.person.email),
                ),
                *confirm,
            ),
        )
    if request.kind is RequestKind.START:
        role = "facilitator" if may_facilitate(request.person.status) else "member"
        return Plan(
            state=state,
            action=action,
            event="approved",
            create_group=True,
            add_member=role,
            mails=(Mail("start_approved", request.person.email, {**ctx, "role": role}), *confirm),
        )
    if request.group is None:  # pragma: no cover - a join request always names its group
        raise NotAllowedError("This join request names no group.")
    join = JoinFacts(
        request_id=request.id,
        person=request.person,
        group=request.group,
        text=request.text,
        approvers=(),
        secretariat="",
        organisation_member=request.organisation_member,
    )
    plan = _approved_join(join, {**ctx}, action)
    return Plan(
        state=state,
        action=action,
        event=plan.event,
        add_member=plan.add_member,
        activate_group=plan.activate_group,
        mails=(*plan.mails, *confirm),
    )


def decide_answer(request: PendingRequest, answer: str, approvers: tuple[str, ...]) -> Plan:
    """The requester answered an INFO question: back to the approvers with the answer.

    Raises:
        NotAllowedError: the request is not waiting for an answer.
    """
    state = next_state(request.kind, request.state, Action.PROVIDE_INFO)
    aim = request.aim
    if request.kind is RequestKind.START and not has_aim(aim):
        aim = answer
    ctx = {**request.as_context(), "aim": aim, "answer": answer}
    return Plan(
        state=state,
        action=Action.PROVIDE_INFO,
        event="info_provided",
        mails=(
            Mail("acknowledge", request.person.email, ctx, answers_sender=True),
            *_approval_mails(ctx, approvers),
        ),
    )


@dataclass(frozen=True, slots=True)
class LeaveFacts:
    """Everything a leave decision looks at."""

    request_id: int
    person: Person
    group: GroupFacts
    is_member: bool
    is_facilitator: bool
    secretariat: str


def decide_leave(facts: LeaveFacts) -> Plan:
    """Leaving needs no approval; the facilitator is told (the secretariat, when the facilitator leaves)."""
    if not facts.is_member:
        return refusal(
            facts.person.email,
            f"You are not a member of {facts.group.name}, so there is nothing to leave.",
        )
    ctx = {
        "request_id": facts.request_id,
        "person": facts.person.as_context(),
        "group": facts.group.as_context(),
        "was_facilitator": facts.is_facilitator,
    }
    mails = [Mail("left", facts.person.email, ctx, answers_sender=True)]
    if facts.is_facilitator:
        mails.append(Mail("member_left", facts.secretariat, ctx))
    elif facts.group.facilitator_email:
        mails.append(Mail("member_left", facts.group.facilitator_email, ctx))
    return Plan(
        state=RequestState.COMPLETED,
        action=Action.COMPLETE,
        event="left",
        end_membership=True,
        mails=tuple(mails),
    )
