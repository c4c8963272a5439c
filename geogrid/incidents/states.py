"""What may happen to an incident next? The closed loop's states and the actions that move between them.

reported 上报 → accepted 立案 → dispatched 派遣 → in progress 处置 → resolved 办结 → verified 核查 → closed
结案, plus returned 退回 (the unit it went to says it is not theirs), parked 挂账 (cannot be solved now),
escalated 升级 (one level up, by a commander or by the overdue job) and void 作废 (a duplicate or not a
case); place 人工定位 puts an open incident where a commander says (one the intake could not place waits
for it in the manual-placement queue) and leaves its state as it is. Every action names the permission it needs: workers handle (start, resolve, return, park), commanders
dispatch (accept, dispatch, verify, reject, close, void, escalate, resume). ``closed`` and ``void`` are final.
"""

from __future__ import annotations

from dataclasses import dataclass

from geogrid.access import Action
from geogrid.errors import IllegalTransition, InvalidValue

STATES: dict[str, str] = {
    "reported": "上报",
    "accepted": "立案",
    "dispatched": "派遣",
    "in_progress": "处置",
    "resolved": "办结",
    "verified": "核查",
    "closed": "结案",
    "returned": "退回",
    "parked": "挂账",
    "escalated": "升级",
    "void": "作废",
}
FINAL = frozenset({"closed", "void"})
OPEN = frozenset(STATES) - FINAL
# states in which the limit runs (the clock stops while parked and once resolved; resume and reject start
# it again with the working hours that were left, and resume returns to the state the incident was parked in)
RUNNING = frozenset({"reported", "accepted", "dispatched", "in_progress", "returned", "escalated"})


@dataclass(frozen=True)
class Step:
    """One action of the loop: from which states, to which state, with which permission."""

    action: str
    sources: frozenset[str]
    target: str  # '' for a step that leaves the state as it is
    permission: Action
    label: str


_HANDLING = frozenset({"accepted", "dispatched", "in_progress", "returned", "escalated"})
STEPS: dict[str, Step] = {
    s.action: s
    for s in (
        Step("accept", frozenset({"reported"}), "accepted", Action.dispatch, "立案"),
        Step(
            "dispatch",
            frozenset({"accepted", "returned", "escalated"}),
            "dispatched",
            Action.dispatch,
            "派遣",
        ),
        Step("start", frozenset({"dispatched"}), "in_progress", Action.handle, "签收处置"),
        Step("return", frozenset({"dispatched", "in_progress"}), "returned", Action.handle, "退回"),
        Step("park", frozenset({"accepted", "dispatched", "in_progress"}), "parked", Action.handle, "挂账"),
        Step("resume", frozenset({"parked"}), "in_progress", Action.dispatch, "恢复处置"),
        Step("resolve", frozenset({"in_progress"}), "resolved", Action.handle, "办结"),
        Step("verify", frozenset({"resolved"}), "verified", Action.dispatch, "核查通过"),
        Step("reject", frozenset({"resolved"}), "in_progress", Action.dispatch, "核查不通过"),
        Step("close", frozenset({"verified"}), "closed", Action.dispatch, "结案"),
        Step("escalate", _HANDLING | {"reported"}, "escalated", Action.dispatch, "升级"),
        Step(
            "void",
            frozenset({"reported", "accepted", "returned", "parked", "escalated"}),
            "void",
            Action.dispatch,
            "作废",
        ),
        Step("place", OPEN, "", Action.dispatch, "人工定位"),  # stays in its state, placed by hand
    )
}


def allowed(state: str) -> list[str]:
    """The actions that may follow ``state``, in the loop's order."""
    return [name for name, step in STEPS.items() if state in step.sources]


def step(state: str, action: str) -> Step:
    """The step ``action`` takes from ``state``; IllegalTransition (409) naming the allowed ones if none."""
    if state not in STATES:
        raise InvalidValue(f"no incident state {state!r}", field="state")
    found = STEPS.get(action)
    if found is None:
        raise InvalidValue(f"no action {action!r}; actions: {', '.join(STEPS)}", field="action")
    if state not in found.sources:
        nexts = allowed(state)
        raise IllegalTransition(
            f"{action!r} is not allowed on an incident that is {state} ({STATES[state]})"
            + (f"; allowed now: {', '.join(nexts)}" if nexts else "; it is final"),
            state=state,
            action=action,
            allowed=nexts,
        )
    return found
