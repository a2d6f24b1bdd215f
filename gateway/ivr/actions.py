"""Domain actions a flow may call, and the registry that implements them.

A flow names an action (``action: hotline.open_case``), passes it arguments
(literal text or ``$variable``) and goes on by the action's *outcome*. The names,
their arguments, outcomes and the values they return are declared here in
:data:`ACTION_SPECS`, so a flow file is checked against them at load time without
the implementations. The implementations are async callables registered on an
:class:`ActionRegistry` by the feature that owns them (the hotline and callback
wiring); the registry refuses a name that is not declared.

Declared actions
----------------
``hotline.open_case(kind, message)``
    Open a case (诉求) for a caller's recorded message. ``kind`` is
    ``complaint``, ``suggestion`` or ``message`` (left after hours or when no
    agent was free); ``message`` is the recording's path without extension (may
    be empty). Outcomes: ``opened`` (values: ``case_number``, e.g.
    ``TS20261130-0007``), ``failed``.
``hotline.lookup_status(number)``
    Status of a booking or a business by the number the caller keyed in.
    Outcomes: ``found`` (values: ``status``, a status code such as ``accepted``,
    ``in_progress``, ``done``, ``ready``, ``rejected``, ``booked``; said as the
    prompt ``status/<code>``), ``not_found``.
``hotline.case_status(number)``
    The state of the case (诉求) with this number, told only to the caller whose
    number opened it. Outcomes: ``told`` (values: ``case_state``, ``case_<status>``,
    said as ``status/case_<status>``; ``case_unit``, the owner unit's code or empty;
    ``case_deadline``, the answer deadline's local date ``YYYY-MM-DD`` while the case
    is not answered, else empty), ``needs_pin`` (a case, another caller),
    ``not_case``.
``hotline.case_status_pin(number, pin)``
    The same for a caller who keyed the PIN of the case's acceptance text.
    Outcomes: ``told`` (values as above), ``wrong_pin``, ``locked`` (too many
    wrong PINs for this case lately).
``survey.record_rating(rating)``
    Store the citizen's rating for the item being called back: ``1`` satisfied,
    ``2`` basically satisfied, ``3`` dissatisfied. Outcomes: ``recorded``
    (values: ``rating_id``, the stored rating's id), ``failed``.
``survey.record_reason(reason, message)``
    Store why the citizen is dissatisfied: ``reason`` ``1`` attitude, ``2``
    slow, ``3`` unfair result, ``4`` not solved, ``5`` other (empty if none was
    given); ``message`` the path of a short voice message (may be empty).
    Outcomes: ``recorded`` (values: ``reason_id``), ``failed``.

Every call also carries the call's facts (:class:`ActionCall`): channel,
unique id, the caller's number and the flow's variables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gateway.errors import GatewayError


@dataclass(frozen=True)
class ActionSpec:
    name: str
    args: tuple[str, ...]
    outcomes: tuple[str, ...]
    returns: tuple[str, ...] = ()  # variables set on success


# What the case-status actions tell the flow (see above).
CASE_VALUES = ("case_state", "case_unit", "case_deadline")

ACTION_SPECS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "hotline.open_case", ("kind", "message"), ("opened", "failed"), ("case_number",)
        ),
        ActionSpec("hotline.lookup_status", ("number",), ("found", "not_found"), ("status",)),
        ActionSpec(
            "hotline.case_status",
            ("number",),
            ("told", "needs_pin", "not_case"),
            CASE_VALUES,
        ),
        ActionSpec(
            "hotline.case_status_pin",
            ("number", "pin"),
            ("told", "wrong_pin", "locked"),
            CASE_VALUES,
        ),
        ActionSpec("survey.record_rating", ("rating",), ("recorded", "failed"), ("rating_id",)),
        ActionSpec(
            "survey.record_reason", ("reason", "message"), ("recorded", "failed"), ("reason_id",)
        ),
    )
}


@dataclass(frozen=True)
class ActionCall:
    """What an action is told: its arguments and the facts of the call."""

    name: str
    args: Mapping[str, str]
    flow: str
    node: str
    channel: str
    uniqueid: str
    caller_number: str
    variables: Mapping[str, str]


@dataclass(frozen=True)
class ActionResult:
    outcome: str
    values: Mapping[str, str] = field(default_factory=dict)


Action = Callable[[ActionCall], Awaitable[ActionResult]]


class UnknownAction(GatewayError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown domain action {name!r} (declared: {', '.join(ACTION_SPECS)})")
        self.name = name


class ActionRegistry:
    """The implementations of the declared actions, one registry per application."""

    def __init__(self, specs: Mapping[str, ActionSpec] = ACTION_SPECS) -> None:
        self.specs = dict(specs)
        self._actions: dict[str, Action] = {}

    def register(self, name: str, action: Action) -> None:
        if name not in self.specs:
            raise UnknownAction(name)
        self._actions[name] = action

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._actions
