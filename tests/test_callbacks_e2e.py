"""The whole callback cycle over loopback: the real gateway application against the
simulated PBX (AMI over TCP, AsyncAGI survey calls) and the simulated Twilio
(texts out, the chief's signed reply in)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from gateway.app import PBX
from gateway.clock import ScaledClock
from gateway.demo.stack import AGI_TRANSPORTS, SENDER, Stack, running_stack
from gateway.sim.ami import Answer, Busy, HangUp, Press, Speak, WaitForPrompt
from gateway.sim.ami.channel import SimChannel
from gateway.store.callbacks import Order, Rating, ServedItem
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
CITIZEN = "+8613912345678"
# Simulated seconds per real second. IVR timeouts (an 8 s survey menu) shrink with
# it, so a loaded machine must still answer within 8 s / SPEED: keep it modest.
SPEED = 100.0


CALLER_ID = '"鲁州公安" <053912110>'


@contextlib.asynccontextmanager
async def start_stack(
    tmp_path: Path,
    *overrides: str,
    run_outbox: bool = True,
    agi: str = "async",
    pbx_names: tuple[str, ...] = ("main",),
) -> AsyncIterator[Stack]:
    """The gateway and both simulators, on a Monday at 09:00 in Shanghai, 100× fast;
    ``agi``: how the simulated PBX hands calls over ("async" or "fastagi"); one
    simulated PBX per name of ``pbx_names``."""
    clock = ScaledClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), SPEED)
    async with running_stack(
        tmp_path / "data",
        clock,
        run_outbox=run_outbox,
        agi=agi,
        pbx_names=pbx_names,
        recordings_dir=ROOT / "recordings" / "zh",
        overrides=[
            "callbacks.poll_seconds=30",
            "callbacks.recall_delay_hours=0.1",
            "callbacks.retry_spacing_minutes=5",
            f"callbacks.caller_id={CALLER_ID}",
            *overrides,
        ],
    ) as running:
        yield running


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway and both simulators (see start_stack)."""
    async with start_stack(tmp_path) as running:
        yield running


def satisfied(key: str) -> Answer:
    return Answer([WaitForPrompt("rate"), Press(key), WaitForPrompt(timeout=60)])


def dissatisfied(reason: str) -> Answer:
    return Answer(
        [
            WaitForPrompt("rate"),
            Press("3"),
            WaitForPrompt("reason"),
            Press(reason),
            WaitForPrompt("message_intro"),
            Speak(3.0),
            Press("#"),
            WaitForPrompt(timeout=60),
        ]
    )


async def serve(stack: Stack, reference: str, unit: str = "LZ-DC-01") -> None:
    """Report a served item through the HTTP API, as a police system would."""
    served_at = (stack.clock.now() - timedelta(days=4)).isoformat()
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{stack.url}/api/served-items",
            json={
                "reference": reference,
                "kind": "minor_injury_case",
                "unit": unit,
                "citizen_number": "139 1234 5678",
                "citizen_name": "李四",
                "served_at": served_at,
            },
            headers={"Authorization": f"Bearer {stack.api_token}"},
        )
        assert response.status == 201, await response.text()


async def order_of(stack: Stack) -> Order:
    orders = await stack.store.callbacks.orders()
    assert len(orders) == 1
    return orders[0]


def texts_to(stack: Stack, number: str) -> list[str]:
    return [m.body for m in stack.twilio.messages if m.to == number]


async def chief(stack: Stack, unit_code: str) -> str:
    unit = await stack.store.units.unit_by_code(unit_code)
    assert unit is not None
    heads = await stack.store.units.officers(unit.id, "chief")
    heads = heads or await stack.store.units.officers(unit.id, "leader")
    assert heads and heads[0].mobile
    return heads[0].mobile


async def test_dissatisfied_citizen_is_heard_until_satisfied(stack: Stack) -> None:
    """Served → callback → 3 → order texted to the chief → his reply → recall → 1 → closed."""
    stack.pbx.set_citizen(CITIZEN, dissatisfied("2"))
    await serve(stack, "AJ-2026-0001")
    chief_mobile = await chief(stack, "LZ-DC-01")
    await until(lambda: texts_to(stack, chief_mobile))
    order = await order_of(stack)
    body = texts_to(stack, chief_mobile)[0]
    assert order.ref in body and "办事拖拉" in body and "139****5678" in body
    rating = await stack.store.callbacks.rating(order.item_id, 1)
    assert rating is not None and (rating.score, rating.reason, rating.channel) == (
        3,
        "slow",
        "phone",
    )
    assert rating.recording  # the citizen's short voice message was kept

    stack.pbx.set_citizen(CITIZEN, satisfied("1"))
    status = await stack.twilio.send_reply(
        chief_mobile, SENDER, f"整改 {order.ref} 已上门道歉并加快办理", stack.inbound_url
    )
    assert status == 200

    async def closed() -> bool:
        return (await order_of(stack)).status == "closed"

    await until(closed, 90)
    order = await order_of(stack)
    assert order.reported_by is not None and order.closed_at is not None
    assert len(stack.pbx.calls_to(CITIZEN)) == 2
    second = await stack.store.callbacks.rating(order.item_id, 2)
    assert second is not None and second.score == 1
    actions = [e.action for e in await stack.store.callbacks.order_events(order.id)]
    assert actions == ["created", "notified", "reported", "closed"]
    assert len(texts_to(stack, chief_mobile)) == 1  # one text per order and level


async def test_unresolved_order_climbs_all_four_levels(stack: Stack) -> None:
    """Nobody reports: each missed deadline texts the next level, up to the leadership."""
    stack.pbx.set_citizen(CITIZEN, dissatisfied("4"))
    await serve(stack, "AJ-2026-0002")
    first = await chief(stack, "LZ-DC-01")
    await until(lambda: texts_to(stack, first))
    expected = {2: ["LZ-DC"], 3: ["LZ-DUCHA"], 4: ["LZ-LEAD", "LZ-JIJIAN"]}
    for level, units in expected.items():
        stack.clock.advance(timedelta(hours=73))
        for code in units:
            mobile = await chief(stack, code)
            await until(lambda mobile=mobile: texts_to(stack, mobile))

        async def at_level(level: int = level) -> bool:
            return (await order_of(stack)).level == level

        await until(at_level)
    order = await order_of(stack)
    assert (order.level, order.status) == (4, "open")
    notified = [
        e for e in await stack.store.callbacks.order_events(order.id) if e.action == "notified"
    ]
    assert [e.level for e in notified] == [1, 2, 3, 4, 4]


async def test_busy_citizen_is_retried_then_rates_by_text(stack: Stack) -> None:
    """Busy on every call: after the last try a text asks for 1/2/3; the reply is the rating."""
    stack.pbx.set_citizen(CITIZEN, Busy())
    await serve(stack, "AJ-2026-0003")
    await until(lambda: texts_to(stack, CITIZEN), 120)
    assert len(stack.pbx.calls_to(CITIZEN)) == 3
    assert "回复1满意" in texts_to(stack, CITIZEN)[0]
    assert await stack.twilio.send_reply(CITIZEN, SENDER, "2", stack.inbound_url) == 200
    item = await stack.store.callbacks.item_by_reference("AJ-2026-0003")
    assert item is not None

    async def rated() -> object:
        return await stack.store.callbacks.rating(item.id, 1)

    rating = await until(rated)
    assert rating.score == 2 and rating.channel == "sms"  # type: ignore[attr-defined]


async def test_hang_up_before_rating_is_an_attempt_without_rating(stack: Stack) -> None:
    """A citizen who hangs up at the question is called again later, not counted as rated."""
    stack.pbx.set_citizen(CITIZEN, Answer([WaitForPrompt("rate"), HangUp()]))
    await serve(stack, "AJ-2026-0004")
    item = await stack.store.callbacks.item_by_reference("AJ-2026-0004")
    assert item is not None

    async def attempted() -> bool:
        return any(a.outcome == "no_rating" for a in await stack.store.callbacks.attempts(item.id))

    await until(attempted)
    assert await stack.store.callbacks.rating(item.id, 1) is None
    after = await stack.store.callbacks.item(item.id)
    assert after is not None and after.status in ("pending", "calling")


async def test_restart_mid_campaign_calls_nobody_twice_for_one_attempt(stack: Stack) -> None:
    """The gateway stopped while a survey call is up: after the restart the attempt is
    counted, the citizen is called again only as a new attempt, and the rating lands."""
    stack.pbx.set_citizen(CITIZEN, Answer([WaitForPrompt("rate", timeout=120), Press("1")]))
    await serve(stack, "AJ-2026-0005")
    item = await stack.store.callbacks.item_by_reference("AJ-2026-0005")
    assert item is not None
    await until(lambda: stack.pbx.calls_to(CITIZEN))
    await stack.restart()  # the survey call is cut mid-way, as at a real shutdown
    attempts = await stack.store.callbacks.attempts(item.id)
    assert [a.outcome for a in attempts][:1] in (["unknown"], ["no_rating"])

    stack.pbx.set_citizen(CITIZEN, satisfied("2"))

    async def rated() -> object:
        return await stack.store.callbacks.rating(item.id, 1)

    rating = await until(rated, 90)
    assert rating.score == 2  # type: ignore[attr-defined]
    attempts = await stack.store.callbacks.attempts(item.id)
    numbers = [a.attempt for a in attempts if a.channel == "call"]
    assert numbers == sorted(set(numbers)), "an attempt number was used twice"
    assert len(stack.pbx.calls_to(CITIZEN)) == len(numbers)


async def test_pbx_link_dropped_mid_campaign(stack: Stack) -> None:
    """The AMI link drops while callbacks run: the gateway reconnects and the item is
    still rated, with every call accounted for in an attempt."""
    stack.pbx.set_citizen(CITIZEN, satisfied("1"))
    await serve(stack, "AJ-2026-0006")
    item = await stack.store.callbacks.item_by_reference("AJ-2026-0006")
    assert item is not None
    await until(lambda: stack.pbx.calls_to(CITIZEN))
    stack.pbx.faults.drop_connections()

    async def rated() -> object:
        return await stack.store.callbacks.rating(item.id, 1)

    await until(rated, 90)
    attempts = await stack.store.callbacks.attempts(item.id)
    assert len(stack.pbx.calls_to(CITIZEN)) == len([a for a in attempts if a.channel == "call"])


async def served(stack: Stack, reference: str) -> ServedItem:
    """Report a served item (see serve) and return it as stored."""
    await serve(stack, reference)
    item = await stack.store.callbacks.item_by_reference(reference)
    assert item is not None
    return item


async def rating_of(stack: Stack, item_id: int) -> Rating | None:
    return await stack.store.callbacks.rating(item_id, 1)


async def ended(stack: Stack, item_id: int) -> bool:
    """Every attempt of the item has its final outcome (the survey call is over)."""
    attempts = await stack.store.callbacks.attempts(item_id)
    return bool(attempts) and all(a.outcome not in ("placed", "answered") for a in attempts)


def citizen_channels(stack: Stack) -> list[SimChannel]:
    return [c for c in stack.pbx.world.channels.values() if c.connected_num == CITIZEN[3:]]


async def test_callbacks_show_the_bureaus_caller_id(stack: Stack) -> None:
    """Every callback Originate carries the configured caller ID (number and name)."""
    stack.pbx.set_citizen(CITIZEN, satisfied("1"))
    await serve(stack, "AJ-2026-0007")
    [channel] = await until(lambda: citizen_channels(stack))
    assert (channel.caller_num, channel.caller_name) == ("053912110", "鲁州公安")


@pytest.mark.parametrize("agi", AGI_TRANSPORTS)
async def test_a_callback_answered_after_a_link_cut_is_surveyed_for_its_item(
    tmp_path: Path, agi: str
) -> None:
    """The AMI link drops while the callback rings, so its OriginateResponse is lost:
    the attempt is "unknown", nobody dials the citizen again meanwhile, and when the
    citizen answers the call itself says which item it is about: the survey runs
    (never the hotline menu) and the rating lands on that attempt, over either AGI
    transport."""
    async with start_stack(tmp_path, "callbacks.ring_timeout_seconds=600", agi=agi) as stack:
        stack.pbx.set_citizen(
            CITIZEN,
            Answer(
                [WaitForPrompt("rate"), Press("1"), WaitForPrompt(timeout=60)], ring_seconds=300
            ),
        )
        item = await served(stack, "AJ-2026-0008")
        await until(lambda: stack.pbx.calls_to(CITIZEN))
        stack.pbx.faults.drop_connections()

        rating = await until(lambda: rating_of(stack, item.id), 60)
        assert rating.score == 1  # type: ignore[attr-defined]
        await until(lambda: ended(stack, item.id))
        attempts = await stack.store.callbacks.attempts(item.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "rated")]
        assert len(stack.pbx.calls_to(CITIZEN)) == 1


async def test_no_attempt_is_spent_while_the_pbx_link_is_down(tmp_path: Path) -> None:
    """With the link down nothing is claimed; an item due meanwhile is called once the
    link is back, as its first attempt (before, each round burnt an attempt)."""
    # The reconnect waits 800 simulated seconds (4-8 s real); an action waits 0.5 s.
    async with start_stack(
        tmp_path,
        "pbx.main.action_timeout=0.5",
        "pbx.main.reconnect_min=800",
        "pbx.main.reconnect_max=800",
    ) as stack:
        stack.pbx.set_citizen(CITIZEN, satisfied("1"))
        session = stack.app[PBX]["main"]
        await until(lambda: session.connected)
        stack.pbx.faults.drop_connections()
        await until(lambda: not session.connected)
        item = await served(stack, "AJ-2026-0009")
        await asyncio.sleep(2.0)  # the scheduler has run several rounds (0.3 s each)
        assert not session.connected
        assert await stack.store.callbacks.attempts(item.id) == []

        await until(lambda: rating_of(stack, item.id), 60)
        await until(lambda: ended(stack, item.id))
        attempts = await stack.store.callbacks.attempts(item.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "rated")]


async def test_a_locked_store_degrades_the_scheduler_and_it_goes_on(tmp_path: Path) -> None:
    """A store error in a callback round is no crash: /health shows the callbacks
    degraded while the store is locked, then healthy, and calls are placed again.
    (The SMS outbox is left out: its own supervision is tested with it.)"""
    async with start_stack(tmp_path, run_outbox=False) as stack:
        await _locked_store_round(stack)


async def _locked_store_round(stack: Stack) -> None:
    locker = sqlite3.connect(
        stack.config.store_path, isolation_level=None, timeout=10, check_same_thread=False
    )
    try:
        # Another writer holds the store (from a thread: the gateway's loop must run).
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        async with aiohttp.ClientSession() as http:

            async def degraded() -> object:
                async with http.get(f"{stack.url}/health") as response:
                    body = await response.json()
                    check = body["checks"].get("callbacks", {})
                    return response.status == 503 and check.get("status") == "failing" and check

            check = await until(degraded, 30, every=0.2)
            assert "database is locked" in check["reason"]  # type: ignore[index]
            await asyncio.to_thread(locker.execute, "COMMIT")

            async def healthy() -> object:
                async with http.get(f"{stack.url}/health") as response:
                    body = await response.json()
                    return body["checks"]["callbacks"]["status"] == "ok"

            await until(healthy, 30, every=0.2)
    finally:
        locker.close()
    stack.pbx.set_citizen(CITIZEN, satisfied("2"))
    item = await served(stack, "AJ-2026-0010")

    await until(lambda: rating_of(stack, item.id), 60)
