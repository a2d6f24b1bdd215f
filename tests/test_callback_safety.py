"""Callbacks at the edges: lost outcomes, one call per citizen, races, who may report,
orders and their texts, unit names too long for a text. Over the real store and the
real SMS outbox, with the clock moved by hand (the PBX side is in test_callbacks_e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import (
    MAX_SURVEY_SECONDS,
    SURVEY_START_SECONDS,
    CallbackService,
    DialResult,
    NotAuthorized,
    ServedItemInput,
)
from gateway.clock import ManualClock
from gateway.sms.service import SmsService
from gateway.sms.templates import load_templates
from gateway.store import Store
from gateway.store.callbacks import LostRace, originate_id
from gateway.store.db import StoreError, bundled_migrations
from gateway.store.seed import demo_city, load_seed

CITIZEN = "+8613912345678"
SERVED = "2026-11-28T09:00:00+08:00"
LONG_NAME = "鲁州市公安局经济技术开发区分局高新派出所"  # 20 characters, a real shape
LONG_UNIT = f"""
[[unit]]
code = "LZ-GX"
name = "鲁州市公安局经济技术开发区分局"
abbreviation = "开发区分局"
kind = "sub_bureau"
parent = "LZ"

[[unit]]
code = "LZ-GX-01"
name = "{LONG_NAME}"
abbreviation = "开发区高新派出所"
kind = "station"
parent = "LZ-GX"

[[officer]]
code = "KFQ-0001"
name = "孙立"
unit = "LZ-GX-01"
role = "chief"
mobile = "138 0539 0001"
"""


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


def item(ref: str, unit: str = "LZ-DC-01", number: str = "139 1234 5678") -> ServedItemInput:
    return ServedItemInput(
        reference=ref,
        kind="id_card",
        unit=unit,
        citizen_number=number,
        served_at=SERVED,
    )


async def texts(store: Store, template: str) -> list[tuple[str, str]]:
    rows = await store.sms.recent(limit=1000)
    return [(m.to, m.body) for m in reversed(rows) if m.template == template]


async def outcomes(store: Store, item_id: int) -> list[str]:
    return [a.outcome for a in await store.callbacks.attempts(item_id)]


async def mobile_of(store: Store, code: str) -> str:
    officer = next(o for o in await store.units.officers() if o.code == code)
    assert officer.mobile is not None
    return officer.mobile


async def dissatisfied(service: CallbackService, ref: str = "XZ-1", unit: str = "LZ-DC-01") -> int:
    """Serve an item, call, rate it 3: an order opens. Returns the item's id."""
    served = await service.serve(item(ref, unit))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    assert got.id == served.id
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    await service.survey_context(got.id, attempt)
    await service.record_phone_rating(got.id, attempt, 3)
    await service.survey_ended(got.id, attempt)
    return served.id


# -- calls ------------------------------------------------------------------------


async def test_one_call_per_citizen_even_with_several_due_items(
    service: CallbackService, store: Store
) -> None:
    """Two due items of one citizen: one call at a time, the second after the first ends."""
    first = await service.serve(item("XZ-1"))
    second = await service.serve(item("XZ-2"))
    other = await service.serve(item("XZ-3", number="138 0000 1111"))
    claimed = await service.claim_calls(4, "main")
    assert sorted(i.id for i, _ in claimed) == [first.id, other.id]
    assert await service.claim_calls(4, "main") == []
    got, attempt = next(pair for pair in claimed if pair[0].id == first.id)
    await service.call_finished(got, attempt, DialResult(CallOutcome.BUSY))
    [(then, _)] = await service.claim_calls(4, "main")
    assert then.id == second.id


async def test_a_lost_outcome_is_unknown_and_nobody_dials_that_citizen_meanwhile(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """An Originate whose answer was lost is "unknown"; the citizen is not dialled (for
    this item or another) until that call can no longer be up, then the item retries.
    Nobody saw it answered, so it can be up only as long as it may ring and reach the
    survey: the ring timeout and the survey's start, not the longest survey."""
    first = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    assert await service.call_finished(got, attempt, DialResult(CallOutcome.UNKNOWN)) is False
    assert await outcomes(store, first.id) == ["unknown"]
    await service.serve(item("XZ-2"))
    ring = service.settings.ring_timeout_seconds
    clock.advance(timedelta(seconds=ring))
    assert await service.settle_calls() == 0
    assert await service.claim_calls(4, "main") == []
    clock.advance(timedelta(seconds=SURVEY_START_SECONDS + 1))  # it would be in the survey
    assert await service.settle_calls() == 1
    after = await store.callbacks.item(first.id)
    assert after is not None and (after.status, after.attempts) == ("pending", 1)
    [(then, _)] = await service.claim_calls(4, "main")
    assert then.reference == "XZ-2"


async def test_a_lost_outcome_whose_survey_began_is_held_for_the_longest_survey(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """An unknown call that reached its survey (the call itself said which attempt it
    is) may be up as long as the longest survey: its citizen waits that long."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    assert await store.callbacks.survey_started(
        attempt, clock.now() + timedelta(seconds=MAX_SURVEY_SECONDS)
    )
    await service.call_finished(got, attempt, DialResult(CallOutcome.UNKNOWN))
    clock.advance(timedelta(seconds=service.settings.ring_timeout_seconds + 120))
    assert await service.settle_calls() == 0
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "calling"


async def record_call(store: Store, linkedid: str, started: str, *, complete: bool) -> None:
    """A call with the citizen as the call log stores it (the PBX's own record)."""
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO call_records (pbx, linkedid, uniqueid, direction, caller_number,"
            " dialled_number, started_at, complete, updated_at)"
            " VALUES ('main', ?, ?, 'outbound', '053912110', ?, ?, ?, ?)",
            (linkedid, linkedid, CITIZEN, started, int(complete), started),
        )


async def test_a_pbx_clock_running_ahead_never_settles_by_an_earlier_call(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A finished record of the citizen's earlier call, written before the attempt began,
    does not settle it even though the PBX's clock dates it later; the record of the
    attempt's own Originate (its ActionID) does, whatever the PBX's clock says."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(got, attempt, DialResult(CallOutcome.UNKNOWN))
    ahead = (clock.now() + timedelta(minutes=10)).isoformat(timespec="microseconds")
    earlier = (clock.now() - timedelta(seconds=30)).isoformat(timespec="microseconds")
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO call_records (pbx, linkedid, uniqueid, direction, caller_number,"
            " dialled_number, started_at, complete, updated_at)"
            " VALUES ('main', 'old', 'old', 'outbound', '053912110', ?, ?, 1, ?)",
            (CITIZEN, ahead, earlier),
        )
    clock.advance(timedelta(seconds=5))
    assert await service.settle_calls() == 0
    behind = (clock.now() - timedelta(hours=8)).isoformat(timespec="microseconds")
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO call_records (pbx, linkedid, uniqueid, direction, caller_number,"
            " dialled_number, started_at, complete, updated_at, originate_id)"
            " VALUES ('main', 'own', 'own', 'outbound', '053912110', ?, ?, 1, ?, ?)",
            (
                CITIZEN,
                behind,
                clock.now().isoformat(timespec="microseconds"),
                originate_id(attempt),
            ),
        )
    assert await service.settle_calls() == 1
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "pending"


async def test_the_call_log_settles_a_lost_outcome_once_the_call_is_over(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A lost outcome is settled as soon as the call log has that call finished (and
    none still open), not only when the longest call could have ended."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(got, attempt, DialResult(CallOutcome.UNKNOWN))
    await record_call(store, "1764464400.1", "2026-11-30T02:00:00.000000+00:00", complete=False)
    clock.advance(timedelta(minutes=1))
    assert await service.settle_calls() == 0  # the call is still up at the PBX
    async with store.db.transaction() as conn:
        await conn.execute("UPDATE call_records SET complete = 1, ended_at = started_at")
    assert await service.settle_calls() == 1
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "pending"
    assert await outcomes(store, served.id) == ["unknown"]


async def test_an_unknown_call_answered_later_is_surveyed_and_rated(
    service: CallbackService, store: Store
) -> None:
    """A call whose Originate answer was lost but which the citizen picks up is rated."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(got, attempt, DialResult(CallOutcome.UNKNOWN))
    await service.survey_context(got.id, attempt)
    await service.record_phone_rating(got.id, attempt, 1)
    await service.survey_ended(got.id, attempt)
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "rated"
    assert await outcomes(store, served.id) == ["rated"]


async def test_not_connected_puts_the_claim_back_without_counting(
    service: CallbackService, store: Store
) -> None:
    """A call that could not be sent leaves no attempt and the item due again."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.release_claim(got, attempt)
    after = await store.callbacks.item(served.id)
    assert after is not None and (after.status, after.attempts) == ("pending", 0)
    assert await store.callbacks.attempts(served.id) == []
    [(again, _)] = await service.claim_calls(1, "main")
    assert again.attempts == 1


async def test_answered_call_whose_survey_never_starts_moves_on_across_a_restart(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """Answered but no survey: after the bounded wait it is "answered, no rating" and
    the item is retried; the wait is in the store, so a new service instance sees it."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    assert await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    assert await service.settle_calls() == 0
    restarted = CallbackService(
        store, clock, service.catalogue, service.settings, service.texter
    )  # the same store, nothing in memory
    assert [i.id for i in await store.callbacks.recover_interrupted(clock.now())] == [served.id]
    assert await outcomes(store, served.id) == ["answered"]
    clock.advance(timedelta(seconds=61))
    assert await restarted.settle_calls() == 1
    assert await outcomes(store, served.id) == ["no_rating"]
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "pending" and after.next_attempt_at is not None


async def test_a_survey_that_never_ends_is_closed_after_the_longest_call(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """A survey that began but whose end never came (a stuck call) does not hold the
    item "calling" for ever: past the longest survey it ends without a rating."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    await service.survey_context(got.id, attempt)
    clock.advance(timedelta(minutes=5))
    assert await service.settle_calls() == 0  # a long survey, still allowed
    clock.advance(timedelta(minutes=6))
    assert await service.settle_calls() == 1
    assert await outcomes(store, served.id) == ["no_rating"]
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "pending"


async def test_a_survey_ending_before_the_outcome_is_saved_is_not_overwritten(
    service: CallbackService, store: Store
) -> None:
    """The survey ran and rated before the Originate's answer was written: the late
    answer (answered, or a wrong "no answer") changes nothing."""
    served = await service.serve(item("XZ-1"))
    got, attempt = (await service.claim_calls(1, "main"))[0]
    await service.survey_context(got.id, attempt)
    await service.record_phone_rating(got.id, attempt, 1)
    await service.survey_ended(got.id, attempt)
    assert await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED)) is False
    assert await service.call_finished(got, attempt, DialResult(CallOutcome.NO_ANSWER)) is False
    assert await outcomes(store, served.id) == ["rated"]
    after = await store.callbacks.item(served.id)
    assert after is not None and (after.status, after.next_attempt_at) == ("rated", None)


# -- orders -------------------------------------------------------------------------


# -- a stop between two writes ---------------------------------------------------------
# A call's end and its item's next step are two writes; a kill -9 (or a failed write)
# between them is reproduced by making the first write alone.


async def test_an_item_left_calling_after_its_call_ended_is_retried_once(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The call's end was written, the item never moved: no call of it will end again,
    so the round moves it on as the end would have, once, and not while a live flow
    may still be about to."""
    served = await service.serve(item("XZ-1"))
    [(_, attempt)] = await service.claim_calls(1, "main")
    assert await store.callbacks.attempt_not_reached(
        attempt, "no_answer", action_id=None, uniqueid=None
    )
    clock.advance(timedelta(seconds=20))
    assert await service.move_stranded() == 0  # a live flow may be between its writes
    clock.advance(timedelta(seconds=11))
    assert await service.move_stranded() == 1
    assert await service.move_stranded() == 0
    after = await store.callbacks.item(served.id)
    assert after is not None and (after.status, after.attempts) == ("pending", 1)
    assert after.next_attempt_at is not None and after.next_attempt_at > clock.now()
    assert await service.claim_calls(1, "main") == []  # the retry keeps its spacing


async def test_an_item_left_calling_after_its_last_call_is_asked_by_text_once(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """After the last call, a stop came between queuing the rating request and marking
    the item (its SMS attempt written): the item is asked by text, and one text goes."""
    served = await service.serve(item("XZ-1"))
    for n in (1, 2):
        [(got, attempt)] = await service.claim_calls(1, "main")
        if n == 1:
            await service.call_finished(got, attempt, DialResult(CallOutcome.NO_ANSWER))
            clock.advance(timedelta(hours=1))
    assert await store.callbacks.attempt_not_reached(
        attempt, "no_answer", action_id=None, uniqueid=None
    )
    await store.callbacks.add_sms_attempt(served.id, 1)
    assert await service.move_stranded(timedelta(0)) == 1
    assert await service.move_stranded(timedelta(0)) == 0
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "sms" and after.sms_expires_at is not None
    assert [to for to, _ in await texts(store, "rating_request")] == [CITIZEN]
    # The text's attempt is over once sent: no attempt stays open to be searched each round.
    open_attempts = "SELECT COUNT(*) FROM callback_attempts WHERE ended_at IS NULL"
    row = await store.db.fetchone(open_attempts)
    assert row is not None and row[0] == 0


async def test_a_late_step_of_one_call_never_moves_a_later_claim(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The round moved a stranded item on and it was called again; the first call's own
    step, arriving late, must not move the second call's item."""
    served = await service.serve(item("XZ-1"))
    [(first, attempt)] = await service.claim_calls(1, "main")
    await store.callbacks.attempt_not_reached(attempt, "busy", action_id=None, uniqueid=None)
    clock.advance(timedelta(seconds=31))
    assert await service.move_stranded() == 1
    clock.advance(timedelta(hours=4))  # past the retry spacing and the lunch break
    [(second, _)] = await service.claim_calls(1, "main")
    assert (first.attempts, second.attempts) == (1, 2)
    late = await store.callbacks.move_item(
        served.id, "pending", expect=("calling",), attempts=first.attempts
    )
    assert late is False
    after = await store.callbacks.item(served.id)
    assert after is not None and (after.status, after.attempts) == ("calling", 2)


async def test_the_migration_ends_the_text_attempts_left_open(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Rating requests by text stored before 0017 stayed open for ever: they end when sent;
    calls in flight stay open."""
    async with Store.open(tmp_path / "s.sqlite3", clock, migrate=False) as old:
        await old.db.migrate([m for m in bundled_migrations() if m.version <= 16])
        conn = old.db.conn
        await conn.execute("PRAGMA foreign_keys=OFF")
        for attempt, channel, outcome in ((1, "call", "placed"), (2, "sms", "sent")):
            await conn.execute(
                "INSERT INTO callback_attempts (item_id, round, attempt, channel, outcome,"
                " started_at) VALUES (1, 1, ?, ?, ?, '2026-11-30T01:00:00+00:00')",
                (attempt, channel, outcome),
            )
        await conn.commit()
        await old.db.migrate()
        rows = await old.db.fetchall(
            "SELECT channel, ended_at FROM callback_attempts ORDER BY attempt"
        )
    assert [tuple(r) for r in rows] == [("call", None), ("sms", "2026-11-30T01:00:00+00:00")]


async def test_a_rating_stored_before_a_stop_is_kept_and_opens_its_order(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The citizen pressed 3 and the rating was stored; the gateway died before the item
    was marked rated. Its call then settles as lost: the item is rated, not called again,
    and once that call is over its order opens, once, texted to the chief."""
    served = await service.serve(item("XZ-1"))
    [(got, attempt)] = await service.claim_calls(1, "main")
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    await service.survey_context(got.id, attempt)
    await store.callbacks.add_rating(
        item_id=got.id, round_=1, attempt_id=attempt, channel="phone", score=3
    )
    await store.callbacks.recover_interrupted(clock.now())  # the restart
    clock.advance(timedelta(seconds=MAX_SURVEY_SECONDS + 1))
    assert await service.settle_calls() == 1
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "rated"
    assert await service.claim_calls(1, "main") == []
    assert await service.act_on_ratings() == 0  # its call ended just now
    clock.advance(timedelta(seconds=31))
    assert await service.act_on_ratings() == 1
    assert await service.act_on_ratings() == 0
    [order] = await store.callbacks.orders()
    assert (order.item_id, order.level, order.notified_level) == (served.id, 1, 1)
    assert len(await texts(store, "rectification_order")) == 1


async def test_a_rating_stored_before_the_items_move_is_found_by_the_round(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The survey ended (its attempt closed as rated) but the item's move failed: the
    round marks it rated, and the order round opens its order once."""
    served = await service.serve(item("XZ-1"))
    [(got, attempt)] = await service.claim_calls(1, "main")
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    await store.callbacks.add_rating(
        item_id=got.id, round_=1, attempt_id=attempt, channel="phone", score=3
    )
    assert await store.callbacks.attempt_ended(attempt, rated=True)
    clock.advance(timedelta(minutes=1))
    assert await service.move_stranded() == 1
    assert await service.move_stranded() == 0
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "rated"
    assert await service.act_on_ratings() == 1
    assert len(await store.callbacks.orders()) == 1
    assert await service.act_on_ratings() == 0


async def test_a_stop_during_the_reason_menu_still_opens_the_order(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The citizen pressed 3 (the item is rated at once) and the gateway died while they
    chose a reason, before the end of the call that opens the order. After the restart
    the call settles as lost and the order opens, with the reason given before the stop."""
    served = await service.serve(item("XZ-1"))
    [(got, attempt)] = await service.claim_calls(1, "main")
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.1"))
    await service.survey_context(got.id, attempt)
    await service.record_phone_rating(got.id, attempt, 3)
    await service.record_reason(got.id, "slow", None)
    await store.callbacks.recover_interrupted(clock.now())  # the restart
    assert await service.act_on_ratings() == 0  # the call may still be up
    clock.advance(timedelta(seconds=MAX_SURVEY_SECONDS + 1))
    assert await service.settle_calls() == 1
    clock.advance(timedelta(seconds=31))
    assert await service.act_on_ratings() == 1
    [order] = await store.callbacks.orders()
    assert order.item_id == served.id
    [(_, body)] = await texts(store, "rectification_order")
    assert "办事拖拉" in body
    after = await store.callbacks.item(served.id)
    assert after is not None and after.status == "rated"


async def test_a_recall_answer_cut_off_by_a_stop_still_closes_the_order(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """After the unit reported the order done, the recall's citizen pressed 1 and the
    gateway died before the call's end: the order is closed by the order round, once;
    an order whose recall was applied is left alone."""
    order_item = await dissatisfied(service)
    [order] = await store.callbacks.orders()
    await service.report_done(order.ref, "已整改", actor="J00010")
    clock.advance(timedelta(hours=30))
    [(got, attempt)] = await service.claim_calls(1, "main")
    assert got.id == order_item and got.round == 2
    await service.call_finished(got, attempt, DialResult(CallOutcome.ANSWERED, "1.2"))
    await service.survey_context(got.id, attempt)
    await service.record_phone_rating(got.id, attempt, 1)
    await store.callbacks.recover_interrupted(clock.now())  # the restart
    clock.advance(timedelta(seconds=MAX_SURVEY_SECONDS + 1))
    assert await service.settle_calls() == 1
    clock.advance(timedelta(seconds=31))
    assert (await store.callbacks.orders())[0].status == "reported"
    assert await service.act_on_ratings() == 1
    order = (await store.callbacks.orders())[0]
    assert order.status == "closed"
    assert await service.act_on_ratings() == 0
    actions = [e.action for e in await store.callbacks.order_events(order.id)]
    assert actions.count("closed") == 1


async def test_an_escalation_racing_a_report_cannot_reopen_the_order(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The overdue check read the order open; the chief's report lands first; the
    escalation then finds it changed and is not applied: the order stays reported."""
    await dissatisfied(service)
    clock.advance(timedelta(hours=73))
    [stale] = await store.callbacks.overdue_orders(clock.now())
    await service.report_done(stale.ref, "已整改", actor="J00010")
    with pytest.raises(LostRace):
        await service.escalate(stale, "逾期未整改")
    order = await store.callbacks.order(stale.id)
    assert order is not None and (order.status, order.level) == ("reported", 1)
    assert await service.escalate_overdue() == 0
    assert len(await texts(store, "rectification_order")) == 1


async def test_only_the_holding_units_head_may_report_and_others_are_answered(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """At level 1 an officer of the station is refused (and told by text); at level 2
    the station chief is refused and the sub-bureau's deputy may report."""
    await dissatisfied(service)
    [order] = await store.callbacks.orders()
    officer = await mobile_of(store, "J00011")  # an officer of the station, not its chief
    assert await service.on_text(officer, f"整改 {order.ref} 好了", reply_key="in-1") is True
    assert await service.on_text(officer, f"整改 {order.ref} 好了", reply_key="in-1") is True
    assert (await store.callbacks.orders())[0].status == "open"
    answers = await texts(store, "report_refused")
    assert [to for to, _ in answers] == [officer]  # one answer per inbound text
    assert order.ref in answers[0][1] and "不由您负责" in answers[0][1]

    clock.advance(timedelta(hours=73))
    assert await service.escalate_overdue() == 1
    with pytest.raises(NotAuthorized):
        await service.report_done(order.ref, "已整改", actor="J00010")  # station chief
    reported = await service.report_done(order.ref, "已整改", actor="J00009")  # LZ-DC deputy
    assert (reported.status, reported.level, reported.reported_by) == ("reported", 2, "J00009")


async def test_a_stranger_and_an_unknown_order_are_answered_by_text(
    service: CallbackService, store: Store
) -> None:
    """A report from a number on no officer's file, or naming no order, is refused and
    the sender is told why."""
    await dissatisfied(service)
    [order] = await store.callbacks.orders()
    chief = await mobile_of(store, "J00010")
    assert await service.on_text("+8613700000000", f"整改 {order.ref} 好了", reply_key="a")
    assert await service.on_text(chief, "整改 ZG19990101-0001 好了", reply_key="b")
    assert (await store.callbacks.orders())[0].status == "open"
    answers = await texts(store, "report_refused")
    assert [to for to, _ in answers] == ["+8613700000000", chief]
    assert "未找到该整改单号" in answers[1][1]


async def test_an_order_whose_texts_could_not_be_queued_is_texted_by_the_sweeper(
    service: CallbackService, store: Store
) -> None:
    """The chief's number on file could not take texts when the order opened: the
    order is kept, its level marked not texted; once the number is fixed the
    sweeper texts that level, once."""
    unit = await store.units.unit_by_code("LZ-DC-01")
    assert unit is not None
    # A fixed line, as a store filled before the seed checked numbers may hold.
    await store.units.add_officer("J00010", "周伟", "LZ-DC-01", "chief", "+865398123456")
    await dissatisfied(service)
    [order] = await store.callbacks.orders()
    assert (order.level, order.notified_level) == (1, 0)
    assert await texts(store, "rectification_order") == []
    assert await service.notify_unnotified() == 0  # still a fixed line: nothing to send

    await store.units.add_officer("J00010", "周伟", "LZ-DC-01", "chief", "+8615171049746")
    assert await service.notify_unnotified() == 1
    assert await service.notify_unnotified() == 0
    assert [to for to, _ in await texts(store, "rectification_order")] == ["+8615171049746"]
    [order] = await store.callbacks.orders()
    assert order.notified_level == 1


async def test_an_order_change_and_its_texts_roll_back_together(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """An escalation that fails after its text was written leaves neither the new level
    nor the text behind (one transaction)."""
    await dissatisfied(service)
    [order] = await store.callbacks.orders()
    clock.advance(timedelta(hours=73))
    with pytest.raises(RuntimeError):
        async with store.callbacks.transaction() as conn:
            moved = await store.callbacks.update_order(
                order.id, action="escalated", expect=("open", 1), level=2, conn=conn
            )
            await service.texter.enqueue(
                to=await mobile_of(store, "J00008"),
                template="rectification_order",
                variables={
                    "unit": "东城分局",
                    "business": "身份证",
                    "case_ref": moved.ref,
                    "reason": "逾期",
                    "citizen": CITIZEN,
                    "deadline": "12月01日10时",
                },
                idempotency_key="rollback-check",
                conn=conn,
            )
            raise RuntimeError("the process dies here")
    assert await store.sms.by_key("rollback-check") is None
    assert (await store.callbacks.orders())[0].level == 1


# -- unit names and the seed -------------------------------------------------------------


async def test_a_long_unit_name_is_texted_by_its_abbreviation(
    service: CallbackService, store: Store
) -> None:
    """A 20-character station name does not fit a text: its abbreviation is used."""
    await load_seed(store.units, LONG_UNIT, "kfq.toml")
    await dissatisfied(service, "KF-1", unit="LZ-GX-01")
    sent = await texts(store, "rectification_order")
    [(to, body)] = sent
    assert to == "+8613805390001"
    assert "开发区高新派出所" in body and LONG_NAME not in body


async def test_a_rating_request_names_a_long_unit_by_its_abbreviation(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """The citizen's rating request by text also carries the short form of the unit."""
    await load_seed(store.units, LONG_UNIT, "kfq.toml")
    await service.serve(item("KF-2", unit="LZ-GX-01"))
    for _ in range(2):
        got, attempt = (await service.claim_calls(1, "main"))[0]
        await service.call_finished(got, attempt, DialResult(CallOutcome.NO_ANSWER))
        clock.advance(timedelta(hours=1))
    [(to, body)] = await texts(store, "rating_request")
    assert to == CITIZEN and "开发区高新派出所" in body and LONG_NAME not in body


async def test_the_seed_refuses_a_long_name_without_abbreviation_naming_the_row(
    store: Store,
) -> None:
    """A unit whose name cannot fit a text and has no short form is refused by row."""
    text = LONG_UNIT.replace('abbreviation = "开发区高新派出所"\n', "")
    with pytest.raises(
        StoreError, match=r"kfq\.toml: unit\[1\] \(LZ-GX-01\): name .* abbreviation"
    ):
        await load_seed(store.units, text, "kfq.toml")
    assert await store.units.units() == []  # nothing was written


async def test_the_seed_refuses_a_landline_for_an_officer_and_writes_nothing(
    store: Store,
) -> None:
    """An officer's number that cannot receive texts is refused, naming the row, before
    any row is written."""
    text = LONG_UNIT.replace("138 0539 0001", "0539 812 3456")
    with pytest.raises(StoreError, match=r"officer\[0\] \(KFQ-0001\): mobile: .*fixed line"):
        await load_seed(store.units, text, "kfq.toml")
    assert await store.units.units() == []


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
