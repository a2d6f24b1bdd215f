"""The outbox survives a failing store, and sends exactly one text per row across a
restart long after a crash, identical texts in doubt, and two workers on one store."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sms_support import ACCOUNT, CHIEF, ORDER_VARS, TOKEN, Gateway, running_gateway, until

from gateway.clock import ManualClock
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.outbox import OutboxWorker
from gateway.store import Store
from gateway.store.sms import OutboxMessage
from gateway.web.sms import SMS_PROVIDER


async def order(gw: Gateway, key: str, case_ref: str = "LZ2026-000123") -> OutboxMessage:
    return await gw.sms.enqueue(
        to=CHIEF,
        template="rectification_order",
        variables={**ORDER_VARS, "case_ref": case_ref},
        idempotency_key=key,
    )


async def all_delivered(store: Store, count: int) -> bool:
    return (await store.sms.counts()).get("delivered", 0) == count


async def health(gw: Gateway) -> tuple[int, dict[str, dict[str, str]]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.url + "/health") as response:
            return response.status, (await response.json())["checks"]


@pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)  # SQLite's file lock
async def test_locked_store_degrades_the_outbox_and_it_goes_on(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """A database locked by another connection makes /health show sms-outbox degraded (and
    the store, whose check is a write); the app keeps serving, and once the lock is gone
    texts go out again."""
    async with running_gateway(live_store, tw) as gw:
        blocker = sqlite3.connect(
            live_store.db.path, isolation_level=None, timeout=30, check_same_thread=False
        )
        try:
            # Holds the write lock: every claim times out. (In a thread: the worker's own
            # transaction may need the event loop to finish first.)
            await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")

            async def degraded() -> bool:
                status, checks = await health(gw)
                return status == 503 and checks["sms-outbox"]["status"] == "failing"

            await until(degraded, 30)
            status, checks = await health(gw)
            assert status == 503 and "database is locked" in checks["sms-outbox"]["reason"]
            # /health proves the store by a write, which the other writer's lock refuses
            assert checks["store"]["status"] == "failing"
            assert "locked" in checks["store"]["reason"]
        finally:
            if blocker.in_transaction:
                blocker.execute("ROLLBACK")
            blocker.close()
        message = await order(gw, "after-the-lock")
        await until(lambda: all_delivered(live_store, 1), 30)
        await until(lambda: _healthy(gw), 30)
    assert [m.body for m in tw.messages] == [message.body]


async def _healthy(gw: Gateway) -> bool:
    status, _ = await health(gw)
    return status == 200


@pytest.mark.parametrize("exclusive", [True, False], ids=["restart-holding-lock", "other-worker"])
async def test_restart_long_after_a_crash_finds_the_text(tmp_path: Path, exclusive: bool) -> None:
    """A text that reached Twilio before a crash is found, not re-sent, by a worker that
    starts three hours later, whether it reclaims at start or after the lease expires."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    async with (
        Store.open(tmp_path / "gateway.sqlite3", clock) as store,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as sim,
        running_gateway(store, sim, run_outbox=False) as gw,
    ):
        landed = await order(gw, "landed", "LZ2026-000001")
        lost = await order(gw, "lost", "LZ2026-000002")
        await store.sms.claim_due(10, owner="crashed-worker")
        accepted = await gw.app[SMS_PROVIDER].send(landed.to, landed.body, None)
        clock.advance(3 * 3600)
        async with OutboxWorker(gw.sms, gw.app[SMS_PROVIDER], exclusive=exclusive) as worker:
            await until(lambda: _not_held_by(store, lost, "crashed-worker"))
            clock.advance(1)  # past the look-up delay a restart leaves for in-flight requests
            await until(lambda: _has_sid(store, lost), 30)
            await until(lambda: _has_sid(store, landed), 30)
        assert worker.reconciled == 1 and worker.sent == 1
        row = await store.sms.get(landed.id)
        assert row is not None and row.provider_sid == accepted.sid
    bodies = collections.Counter(m.body for m in sim.messages)
    assert bodies == {landed.body: 1, lost.body: 1}


async def _not_held_by(store: Store, message: OutboxMessage, owner: str) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.lease_owner != owner


async def _has_sid(store: Store, message: OutboxMessage) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.provider_sid is not None


async def test_a_retry_after_a_long_backoff_finds_the_first_attempt(tmp_path: Path) -> None:
    """A send whose answer was lost is looked up an hour later from its first attempt: the
    text Twilio took then is found and not sent again."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    async with (
        Store.open(tmp_path / "gateway.sqlite3", clock) as store,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as sim,
        running_gateway(store, sim, lookup_delay=3600.0, backoff_max=3600.0) as gw,
    ):
        sim.faults.drop(1, after_accept=True)
        message = await order(gw, "dropped")
        await until(lambda: sim.stats.dropped == 1)
        await until(lambda: _queued_for_lookup(store, message))
        clock.advance(2 * 3600)  # the backoff is over; the claim now is hours after the send
        gw.sms.wakeup.set()
        await until(lambda: all_delivered(store, 1), 30)
        # The row may show delivered a moment before the worker counts its look-up.
        await until(lambda: gw.worker.reconciled == 1)
    assert len(sim.messages) == 1


async def _queued_for_lookup(store: Store, message: OutboxMessage) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.status == "queued" and row.needs_lookup


@pytest.mark.parametrize("landed", [2, 1], ids=["both-landed", "one-landed"])
async def test_identical_texts_in_doubt_each_get_their_own_message(
    live_store: Store, tw: SimulatedTwilio, landed: int
) -> None:
    """Two identical texts (same number, same body) whose answers were lost never claim the
    same Twilio message: each row ends with its own sid, and Twilio holds exactly two."""
    tw.faults.drop(landed, after_accept=True)
    if landed < 2:
        tw.faults.fail_5xx(1, status=502)  # the other one never reached Twilio
    async with running_gateway(live_store, tw) as gw:
        first = await order(gw, "same-1")
        second = await order(gw, "same-2")
        assert first.body == second.body
        await until(lambda: all_delivered(live_store, 2), 30)
    rows = [await live_store.sms.get(m.id) for m in (first, second)]
    sids = {r.provider_sid for r in rows if r is not None}
    assert len(sids) == 2 and sids == {m.sid for m in tw.messages}
    assert len(tw.messages) == 2


async def test_two_workers_on_one_store_send_each_text_once(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """A second outbox worker started while the first is mid-send leaves the first's rows
    alone: every text reaches Twilio exactly once."""
    texts = 12
    async with running_gateway(live_store, tw, run_outbox=False, workers=4) as gw:
        for i in range(texts):
            await order(gw, f"order-{i}", f"LZ2026-{i:06d}")
        provider = gw.app[SMS_PROVIDER]
        tw.faults.slow(0.5, n=4)  # the first worker's sends hang in flight
        async with OutboxWorker(gw.sms, provider) as one:
            await until(lambda: tw.stats.creates >= 4)
            async with OutboxWorker(gw.sms, provider) as two:
                await until(lambda: all_delivered(live_store, texts), 30)
        assert one.owner != two.owner and one.sent + two.sent == texts
        assert one.reconciled == two.reconciled == 0
    bodies = collections.Counter(m.body for m in tw.messages)
    assert len(bodies) == texts and set(bodies.values()) == {1}


async def test_stopping_awaits_the_loop_and_sends(live_store: Store, tw: SimulatedTwilio) -> None:
    """Leaving the worker cancels and awaits its loop and tasks: nothing is left running."""
    async with running_gateway(live_store, tw) as gw:
        await order(gw, "one")
        await until(lambda: all_delivered(live_store, 1))
        worker = gw.worker
    assert worker.supervisor.tasks == 0


async def test_a_look_up_that_cannot_see_far_enough_never_resends(
    live_store: Store, tw: SimulatedTwilio
) -> None:
    """When more texts went to the number since the first attempt than a look-up lists, the
    text is not sent again: the row fails saying the look-up was inconclusive."""
    async with running_gateway(live_store, tw, lookup_delay=0.5) as gw:
        gw.worker.lookup_limit = 2
        tw.faults.drop(1, after_accept=True)
        message = await order(gw, "dropped")
        await until(lambda: tw.stats.dropped == 1)
        await gw.app[SMS_PROVIDER].send(CHIEF, "another text to the same chief", None)
        await until(lambda: _status(live_store, message, "failed"), 30)
        row = await live_store.sms.get(message.id)
    assert row is not None and row.error_message is not None
    assert "look-up inconclusive" in row.error_message
    assert len(tw.messages) == 2


async def _status(store: Store, message: OutboxMessage, wanted: str) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.status == wanted


@pytest.mark.parametrize("exclusive", [True, False], ids=["restart-holding-lock", "other-worker"])
async def test_a_kill_before_the_batched_result_write_finds_the_text(
    tmp_path: Path, exclusive: bool
) -> None:
    """A text Twilio took whose sid still waited for the batched result write when the
    worker died is found by look-up on restart, not sent again."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    async with (
        Store.open(tmp_path / "gateway.sqlite3", clock) as store,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as sim,
        running_gateway(store, sim, run_outbox=False) as gw,
    ):
        message = await order(gw, "unrecorded")
        dying = OutboxWorker(gw.sms, gw.app[SMS_PROVIDER], exclusive=True)
        dying.result_delay = 3600.0  # the write never comes before the "kill"
        await dying.__aenter__()
        try:
            await until(lambda: len(sim.messages) == 1)
        finally:
            await dying.supervisor.aclose()  # like kill -9: nothing more is written
        row = await store.sms.get(message.id)
        assert row is not None and row.status == "sending" and row.provider_sid is None
        assert row.lease_owner == dying.owner and row.first_attempt_at is not None
        clock.advance(3 * 3600)
        async with OutboxWorker(gw.sms, gw.app[SMS_PROVIDER], exclusive=exclusive) as worker:
            await until(lambda: _not_held_by(store, message, dying.owner))
            clock.advance(1)  # past the look-up delay a restart leaves for in-flight requests
            await until(lambda: _has_sid(store, message), 30)
        assert worker.reconciled == 1 and worker.sent == 0
        row = await store.sms.get(message.id)
        assert row is not None and row.provider_sid == sim.messages[0].sid
    assert [m.body for m in sim.messages] == [message.body]


@pytest.fixture
def live_store(engine_live_store: Store) -> Store:
    """This module's tests on real time run on SQLite and on PostgreSQL."""
    return engine_live_store
