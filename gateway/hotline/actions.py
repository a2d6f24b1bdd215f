"""The hotline flow's domain actions, over the case store.

``hotline.open_case`` opens a case (诉求) for a caller's recorded message and
gives the flow its number to read back; ``hotline.lookup_status`` tells the
status of a case or of a served item by the number the caller keyed in.
"""

from __future__ import annotations

import logging

from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult
from gateway.phone import InvalidPhoneNumber, mask, to_e164
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)

# The flow's kinds of message → the case store's categories.
CASE_CATEGORY = {
    "complaint": "complaint",
    "suggestion": "suggestion",
    # A voice message left after hours or when no agent was free: a request to
    # be called back about an enquiry.
    "message": "consultation",
}

# Case status → the prompt ``status/<code>`` the caller hears.
CASE_STATUS_PROMPT = {
    "open": "accepted",
    "assigned": "in_progress",
    "in_progress": "in_progress",
    "resolved": "done",
    "closed": "done",
}


def register_hotline_actions(registry: ActionRegistry, store: Store) -> None:
    async def open_case(call: ActionCall) -> ActionResult:
        kind = call.args.get("kind", "")
        category = CASE_CATEGORY.get(kind)
        if category is None:
            log.error(
                "hotline.open_case: unknown kind %r in flow %s node %s", kind, call.flow, call.node
            )
            return ActionResult("failed")
        number: str | None
        try:
            number = to_e164(call.caller_number)
        except InvalidPhoneNumber:
            number = None  # anonymous or unusable caller id: the case still opens
        message = call.args.get("message") or None
        try:
            case = await store.cases.open_case(
                channel="hotline",
                category=category,
                actor="ivr",
                citizen_number=number,
                subject=f"热线{'留言' if kind == 'message' else '来电'}",
                content="语音留言" if message else "来电未留言",
                recording=message,
                call_linkedid=call.variables.get("linkedid") or call.uniqueid,
                call_pbx=call.variables.get("pbx") or None,
            )
        except StoreError as exc:
            log.error("hotline.open_case for %s failed: %s", mask(call.caller_number), exc)
            return ActionResult("failed")
        log.info("case %s opened from the hotline (%s)", case.number, category)
        return ActionResult("opened", {"case_number": case.number, "case_id": str(case.id)})

    async def lookup_status(call: ActionCall) -> ActionResult:
        keyed = call.args.get("number", "").strip()
        if not keyed:
            return ActionResult("not_found")
        case = await store.cases.get(keyed)
        if case is not None:
            return ActionResult("found", {"status": CASE_STATUS_PROMPT.get(case.status, "unknown")})
        item = await store.callbacks.item_by_reference(keyed)
        if item is not None:
            return ActionResult("found", {"status": "done"})
        return ActionResult("not_found")

    registry.register("hotline.open_case", open_case)
    registry.register("hotline.lookup_status", lookup_status)
