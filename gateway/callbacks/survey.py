"""The survey flow's domain actions, over the callback service.

The call's item and attempt travel as flow variables (``item_id``,
``attempt_id``), set by the call router from the channel variables the
Originate carried.
"""

from __future__ import annotations

import logging

from gateway.callbacks.service import CallbackService
from gateway.errors import GatewayError
from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult

log = logging.getLogger(__name__)

# The survey's reason keys → the service's reason codes.
REASON_KEYS = {"1": "attitude", "2": "slow", "3": "unfair", "4": "unsolved", "5": "other"}


def register_survey_actions(registry: ActionRegistry, service: CallbackService) -> None:
    def ids(call: ActionCall) -> tuple[int, int] | None:
        try:
            return int(call.variables["item_id"]), int(call.variables["attempt_id"])
        except (KeyError, ValueError):
            log.error("survey action %s on %s without item_id/attempt_id", call.name, call.channel)
            return None

    async def record_rating(call: ActionCall) -> ActionResult:
        found = ids(call)
        rating = call.args.get("rating", "")
        if found is None or rating not in ("1", "2", "3"):
            return ActionResult("failed")
        try:
            await service.record_phone_rating(found[0], found[1], int(rating))
        except GatewayError as exc:
            log.error("survey: %s", exc)
            return ActionResult("failed")
        return ActionResult("recorded", {"rating_id": rating})

    async def record_reason(call: ActionCall) -> ActionResult:
        found = ids(call)
        if found is None:
            return ActionResult("failed")
        reason = REASON_KEYS.get(call.args.get("reason", ""))
        message = call.args.get("message") or None
        try:
            await service.record_reason(found[0], reason, message)
        except GatewayError as exc:
            log.error("survey: %s", exc)
            return ActionResult("failed")
        return ActionResult("recorded", {"reason_id": reason or ""})

    registry.register("survey.record_rating", record_rating)
    registry.register("survey.record_reason", record_reason)
