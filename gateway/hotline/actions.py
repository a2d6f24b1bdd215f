"""The hotline flow's domain actions, over the case store.

``hotline.open_case`` opens a case (诉求) for a caller's recorded message and
gives the flow its number to read back; ``hotline.lookup_status`` tells the
status of a served item by the number the caller keyed in.

``hotline.case_status`` tells the real state of a case (its status, owner unit and
answer deadline), but only to the caller whose number opened it;
``hotline.case_status_pin`` tells it to a caller from another phone who keys the PIN
the acceptance text gave (:mod:`gateway.appeals.lifecycle`). Wrong PINs are counted
in the store per case: after ``PIN_LIMIT`` in a row the case's PIN is refused for
``PIN_LOCK``, whatever phone calls. A PIN is never logged.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.appeals.lifecycle import PIN_LIMIT, PIN_LOCK, pin_matches
from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult
from gateway.phone import InvalidPhoneNumber, mask, to_e164
from gateway.store import Store, StoreError
from gateway.store.cases import OPEN_STATUSES, Case

log = logging.getLogger(__name__)

# The flow's kinds of message → the case store's categories.
CASE_CATEGORY = {
    "complaint": "complaint",
    "suggestion": "suggestion",
    # A voice message left after hours or when no agent was free: a request to
    # be called back about an enquiry.
    "message": "consultation",
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
        item = await store.callbacks.item_by_reference(keyed)
        if item is not None:
            return ActionResult("found", {"status": "done"})
        return ActionResult("not_found")

    async def keyed_case(call: ActionCall) -> tuple[Case, Case] | None:
        """The case keyed in, and the case that answers for it (the one it was merged into)."""
        case = await store.cases.get(call.args.get("number", "").strip())
        if case is None:
            return None
        current = case
        for _ in range(8):  # a merge chain is short; a loop in it would be a bug
            if current.merged_into is None:
                break
            merged = await store.cases.by_id(current.merged_into)
            if merged is None:
                break
            current = merged
        return case, current

    def told(case: Case) -> ActionResult:
        deadline = ""
        if case.status in OPEN_STATUSES and case.deadline is not None:
            deadline = store.clock.local(case.deadline).date().isoformat()
        return ActionResult(
            "told",
            {
                "case_state": f"case_{case.status}",
                "case_unit": case.owner_unit_code or "",
                "case_deadline": deadline,
            },
        )

    async def case_status(call: ActionCall) -> ActionResult:
        found = await keyed_case(call)
        if found is None:
            return ActionResult("not_case")
        keyed, current = found
        try:
            caller = to_e164(call.caller_number)
        except InvalidPhoneNumber:
            caller = None  # anonymous or unusable caller id: only the PIN can tell
        if caller is not None and caller in (keyed.citizen_number, current.citizen_number):
            log.info("case %s: status told to the caller who opened it", current.number)
            return told(current)
        return ActionResult("needs_pin")

    async def case_status_pin(call: ActionCall) -> ActionResult:
        found = await keyed_case(call)
        pin = call.args.get("pin", "").strip()
        if found is None:
            return ActionResult("wrong_pin")
        keyed, current = found
        now = store.clock.now()
        for case in dict.fromkeys((keyed, current)):
            stored = await store.cases.pin_of(case.id)
            if stored is None:
                continue
            if stored.locked_until is not None and stored.locked_until > now:
                log.warning("case %s: status query refused, its PIN is locked", case.number)
                return ActionResult("locked")
            right = await asyncio.to_thread(pin_matches, pin, stored.pin_hash)
            after = await store.cases.pin_tried(
                case.id, right=right, limit=PIN_LIMIT, lock_for=PIN_LOCK
            )
            if right:
                log.info("case %s: status told to %s by PIN", case.number, mask(call.caller_number))
                return told(current)
            if after is not None and after.locked_until is not None and after.locked_until > now:
                log.warning(
                    "case %s: PIN locked after %d wrong tries (last from %s)",
                    case.number,
                    PIN_LIMIT,
                    mask(call.caller_number),
                )
                return ActionResult("locked")
            log.info("case %s: wrong PIN from %s", case.number, mask(call.caller_number))
            return ActionResult("wrong_pin")
        return ActionResult("wrong_pin")  # never accepted: no PIN was ever given

    registry.register("hotline.open_case", open_case)
    registry.register("hotline.lookup_status", lookup_status)
    registry.register("hotline.case_status", case_status)
    registry.register("hotline.case_status_pin", case_status_pin)
