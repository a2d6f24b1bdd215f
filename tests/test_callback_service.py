"""The callback service over the real store and the real SMS outbox (no network).

The whole cycle over the simulated PBX and simulated Twilio is in
test_callbacks_e2e.py; here each rule is checked on its own with the clock moved
by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from gateway import config as config_module
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import (
    CallbackService,
    DialResult,
    InvalidServedItem,
    ServedItemInput,
)
from gateway.clock import ManualClock
from gateway.sms.service import SmsService
from gateway.sms.templates import load_templates
from gateway.store import Store
from gateway.store.callbacks import DuplicateReference
from gateway.store.seed import demo_city, load_seed

CHIEF_DC01 = "东关派出所"


@pytest.fixture
async def service(store: Store, clock: ManualClock) -> AsyncIterator[CallbackService]:
    """A callback service on the demo city, texting into the real outbox."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    config = config_module.load(overrides=["callbacks.max_attempts=2"])
    sms = SmsService(
        store.sms,
        load_templates(),
        clock,
        config.sms,
        sender="+8610690000",
        status_callback_url=None,
    )
    yield CallbackService(store, clock, load_catalogue(), config.callbacks, sms)


def item(ref: str = "XZ-1", **changes: str) -> ServedItemInput:
    values = {
        "reference": ref,
        "kind": "id_card",
        "unit": "LZ-DC-01",
        "citizen_number": "139 1234 5678",
        "served_at": "2026-11-29T09:30:00+08:00",
        "citizen_name": "李四",
    }
    values.update(changes)
    return ServedItemInput(**values)


async def texts(store: Store, template: str) -> list[tuple[str, str]]:
    rows = await store.sms.recent(limit=1000)
    return [(m.to, m.body) for m in reversed(rows) if m.template == template]


async def chief_mobile(store: Store, unit_code: str) -> str:
    unit = await store.units.unit_by_code(unit_code)
    assert unit is not None
    chief = await store.units.chief(unit.id)
    assert chief is not None and chief.mobile
    return chief.mobile


async def answer_and_rate(service: CallbackService, score: int, reason: str | None = None) -> None:
    """Claim the due call, answer it, rate, and end the survey."""
    claimed = await service.claim_calls(1, "main")
    assert len(claimed) == 1
    served, attempt_id = claimed[0]
    await service.call_finished(served, attempt_id, DialResult(CallOutcome.ANSWERED, "1.1"))
    await service.record_phone_rating(served.id, attempt_id, score)
    if reason:
        await service.record_reason(served.id, reason, "/data/messages/x")
    await service.survey_ended(served.id, attempt_id)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"kind": "parking"}, "kind", "unknown kind code 'parking'"),
        ({"unit": "NOPE"}, "unit", "no unit with code 'NOPE'"),
        ({"citizen_number": "12345"}, "citizen_number", ""),
        ({"served_at": "yesterday"}, "served_at", "not an ISO 8601 time"),
        ({"served_at": "2027-01-01T00:00:00"}, "served_at", "in the future"),
        ({"reference": "  "}, "reference", "empty"),
    ],
)
async def test_bad_served_items_are_refused(
    service: CallbackService, changes: dict[str, str], field: str, reason: str
) -> None:
    """A served item for an unknown kind or unit, a bad number or time is refused by field."""
    with pytest.raises(InvalidServedItem) as caught:
        await service.serve(item(**changes))
    assert caught.value.field == field
    assert reason in str(caught.value)


async def test_duplicate_reference_is_refused(service: CallbackService) -> None:
    """The same reference reported twice is refused, and only one item exists."""
    await service.serve(item())
    with pytest.raises(DuplicateReference):
        await service.serve(item())
    assert (await service.store.callbacks.status_counts()) == {"pending": 1}


async def test_first_callback_is_due_after_the_kind_delay_inside_a_window(
    service: CallbackService, clock: ManualClock
) -> None:
    """An ID-card item served on the 29th is called at the first window after its delay."""
    served = await service.serve(item(served_at="2026-11-29T19:50:00+08:00"))
    assert served.status == "pending"
    assert served.citizen_number == "+8613912345678"
    due = served.next_attempt_at
    assert due is not None
    local = clock.local(due)
    assert service.windows.is_open(local)
    assert due >= served.served_at + load_catalogue().kind("id_card").callback_delay


async def test_no_call_outside_the_windows(service: CallbackService, clock: ManualClock) -> None:
    """At night nothing is claimed even when items are due."""
    await service.serve(item())
    clock.advance(timedelta(hours=13))  # 23:00 local
    assert await service.claim_calls(4, "main") == []


async def test_unanswered_calls_retry_then_text_a_rating_request(
    service: CallbackService, clock: ManualClock, store: Store
) -> None:
    """Busy, then no answer (the last try): the citizen gets one rating request by text."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    served, attempt = (await service.claim_calls(4, "main"))[0]
    await service.call_finished(served, attempt, DialResult(CallOutcome.BUSY))
    assert await service.claim_calls(4, "main") == []  # spaced, not at once
    clock.advance(timedelta(minutes=31))
    served, attempt = (await service.claim_calls(4, "main"))[0]
    assert served.attempts == 2
    await service.call_finished(served, attempt, DialResult(CallOutcome.NO_ANSWER))
    requests = await texts(store, "rating_request")
    assert [to for to, _ in requests] == ["+8613912345678"]
    assert "回复1满意、2基本满意、3不满意" in requests[0][1]
    assert "居民身份证" in requests[0][1]
    outcomes = [a.outcome for a in await store.callbacks.attempts(served.id)]
    assert outcomes == ["busy", "no_answer", "sent"]


async def test_sms_rating_reply_is_recorded_once(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A reply of 1 rates the item; a second reply changes nothing; junk is ignored."""
    served = await _to_sms(service, clock)
    assert await service.on_text("+8613912345678", "好的") is True  # ours, but not a rating
    assert (await store.callbacks.item(served.id)).status == "sms"  # type: ignore[union-attr]
    assert await service.on_text("+8613912345678", "１") is True
    rating = await store.callbacks.rating(served.id, 1)
    assert rating is not None and (rating.score, rating.channel) == (1, "sms")
    assert await service.on_text("+8613912345678", "3") is False  # nothing waits any more
    assert (await store.callbacks.rating(served.id, 1)).score == 1  # type: ignore[union-attr]


async def test_sms_reply_after_expiry_is_not_a_rating(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A rating reply that arrives after the request expired is not recorded."""
    served = await _to_sms(service, clock)
    clock.advance(timedelta(hours=49))
    assert await service.on_text("+8613912345678", "3") is True
    assert await store.callbacks.rating(served.id, 1) is None
    assert await service.expire_sms_requests() == 1
    assert (await store.callbacks.item(served.id)).status == "unreachable"  # type: ignore[union-attr]


async def test_reply_from_an_unknown_number_is_not_ours(service: CallbackService) -> None:
    """A text from a number with no pending request is left to other handlers."""
    assert await service.on_text("+8613800000000", "1") is False


async def _to_sms(service: CallbackService, clock: ManualClock):  # type: ignore[no-untyped-def]
    served = await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    for _ in range(2):
        got, attempt = (await service.claim_calls(4, "main"))[0]
        await service.call_finished(got, attempt, DialResult(CallOutcome.NO_ANSWER))
        clock.advance(timedelta(hours=1))
    return served


async def test_dissatisfied_rating_orders_the_station_chief_then_closes_when_satisfied(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """3 → order texted to the station chief → his reply → a new call → 1 → closed."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3, "slow")
    chief = await chief_mobile(store, "LZ-DC-01")
    orders = await texts(store, "rectification_order")
    assert [to for to, _ in orders] == [chief]
    body = orders[0][1]
    assert "东关派出所" in body and "办事拖拉" in body and "139****5678" in body
    order = (await store.callbacks.orders())[0]
    assert (order.level, order.status) == (1, "open")
    assert order.ref in body

    assert await service.on_text(chief, f"整改 {order.ref} 已上门说明办理进度") is True
    order = (await store.callbacks.orders())[0]
    officer = next(o for o in await store.units.officers() if o.mobile == chief)
    assert (order.status, order.reported_by) == ("reported", officer.code)
    assert await service.claim_calls(4, "main") == []  # the recall waits its delay
    clock.advance(timedelta(hours=4))  # 14:00: the delay is over and the lunch break too
    await answer_and_rate(service, 1)
    order = (await store.callbacks.orders())[0]
    assert order.status == "closed" and order.closed_at is not None
    actions = [e.action for e in await store.callbacks.order_events(order.id)]
    assert actions == ["created", "notified", "reported", "closed"]
    assert len(await texts(store, "rectification_order")) == 1


async def test_report_with_a_wrong_reference_changes_nothing(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A chief's report naming an order that does not exist is taken but changes nothing."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3)
    chief = await chief_mobile(store, "LZ-DC-01")
    assert await service.on_text(chief, "整改 ZG19990101-0001 已处理") is True
    assert (await store.callbacks.orders())[0].status == "open"


async def test_report_from_a_stranger_is_ignored(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """Only an officer on file can report an order done."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3)
    order = (await store.callbacks.orders())[0]
    assert await service.on_text("+8613700000000", f"整改 {order.ref} 好了") is True
    assert (await store.callbacks.orders())[0].status == "open"


async def test_orders_climb_four_levels_on_missed_deadlines(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """Missed deadlines move an order station → sub-bureau → supervision → leadership."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3, "attitude")
    recipients = [await chief_mobile(store, "LZ-DC-01")]
    for level, units in ((2, ["LZ-DC"]), (3, ["LZ-DUCHA"]), (4, ["LZ-LEAD", "LZ-JIJIAN"])):
        clock.advance(timedelta(hours=73))
        assert await service.escalate_overdue() == 1
        order = (await store.callbacks.orders())[0]
        assert order.level == level
        for code in units:
            recipients.append(await _head_mobile(store, code))
    sent = [to for to, _ in await texts(store, "rectification_order")]
    assert sent == recipients
    # At the top the order stays at level 4, open, and nobody is texted twice.
    clock.advance(timedelta(hours=25))
    assert await service.escalate_overdue() == 1
    order = (await store.callbacks.orders())[0]
    assert (order.level, order.status) == (4, "open")
    assert len(await texts(store, "rectification_order")) == len(recipients)
    events = [e.action for e in await store.callbacks.order_events(order.id)]
    assert events[-1] == "overdue_at_top"


async def _head_mobile(store: Store, code: str) -> str:
    unit = await store.units.unit_by_code(code)
    assert unit is not None
    heads = await store.units.officers(unit.id, "chief") or await store.units.officers(
        unit.id, "leader"
    )
    assert heads and heads[0].mobile
    return heads[0].mobile


async def test_still_dissatisfied_after_rectification_climbs_a_level(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A 3 on the recall moves the order to level 2 and texts the sub-bureau chief."""
    await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3)
    order = (await store.callbacks.orders())[0]
    await service.report_done(order.ref, "已整改", actor="J00010")  # the station's chief
    clock.advance(timedelta(hours=4))
    await answer_and_rate(service, 3)
    order = (await store.callbacks.orders())[0]
    assert (order.level, order.status) == (2, "open")
    to, body = (await texts(store, "rectification_order"))[-1]
    assert to == await chief_mobile(store, "LZ-DC")
    assert "第2级督办，群众仍不满意" in body


async def test_chief_without_mobile_passes_the_order_up_and_says_so(
    service: CallbackService, store: Store
) -> None:
    """A station whose chief has no mobile on file: level 2 gets the text, noting why."""
    await service.serve(item(unit="LZ-LH-03", served_at="2026-11-28T09:00:00+08:00"))
    await answer_and_rate(service, 3)
    order = (await store.callbacks.orders())[0]
    assert order.level == 2
    events = await store.callbacks.order_events(order.id)
    assert [e.action for e in events][:3] == ["created", "skipped_no_mobile", "escalated"]
    sent = await texts(store, "rectification_order")
    assert [to for to, _ in sent] == [await chief_mobile(store, "LZ-LH")]
    assert "无手机号" in sent[0][1]


async def test_hang_up_before_rating_counts_as_an_attempt(
    service: CallbackService, store: Store
) -> None:
    """An answered call that ends without a rating is retried like an unanswered one."""
    served = await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED))
    await service.survey_ended(got.id, attempt)
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "pending" and after.attempts == 1
    assert [a.outcome for a in await store.callbacks.attempts(served.id)] == ["no_rating"]


async def test_restart_never_reuses_an_attempt(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A call out when the gateway stopped is counted, and its citizen is not dialled
    again at once: only after that call can no longer be up, as a new attempt."""
    served = await service.serve(item(served_at="2026-11-28T09:00:00+08:00"))
    await service.claim_calls(1, "main")
    recovered = await store.callbacks.recover_interrupted(clock.now() + timedelta(minutes=30))
    assert [r.id for r in recovered] == [served.id]
    assert await service.claim_calls(1, "main") == []  # the first call may still be up
    assert await service.settle_calls() == 0
    clock.advance(timedelta(minutes=12))  # ring time + the longest survey: it is over
    assert await service.settle_calls() == 1
    assert await service.claim_calls(1, "main") == []  # and the retry keeps its spacing
    clock.advance(timedelta(minutes=30))
    got, _attempt = (await service.claim_calls(1, "main"))[0]
    assert got.attempts == 2
    outcomes = [(a.attempt, a.outcome) for a in await store.callbacks.attempts(served.id)]
    assert outcomes == [(1, "unknown"), (2, "placed")]


async def test_landline_citizen_gets_no_text_and_is_unreachable(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """After the last call to a fixed line, no text can go: the item is unreachable."""
    served = await service.serve(
        item(citizen_number="0539 812 3456", served_at="2026-11-28T09:00:00+08:00")
    )
    for _ in range(2):
        got, attempt = (await service.claim_calls(4, "main"))[0]
        await service.call_finished(got, attempt, DialResult(CallOutcome.BUSY))
        clock.advance(timedelta(hours=1))
    assert (await store.callbacks.item(served.id)).status == "unreachable"  # type: ignore[union-attr]
    assert await texts(store, "rating_request") == []


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
