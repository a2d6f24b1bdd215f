"""Callbacks over several PBXs, at the store: free lines per PBX counted in the store
(over every gateway on it), each claim spread to where the lines are, and a lost
outcome settled only by the call log of the PBX the call was placed on. On both
engines, with the clock moved by hand (the PBXs themselves: test_callbacks_pbxes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.service import CallbackService, DialResult, ServedItemInput
from gateway.clock import ManualClock
from gateway.sms.service import SmsService
from gateway.sms.templates import load_templates
from gateway.store import Store
from gateway.store.callbacks import originate_id
from gateway.store.seed import demo_city, load_seed

SERVED = "2026-11-28T09:00:00+08:00"


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store, on each engine."""
    return engine_store


def new_service(store: Store, clock: ManualClock) -> CallbackService:
    """A callback service as one gateway runs it (each gateway has its own)."""
    config = config_module.load()
    sms = SmsService(
        store.sms,
        load_templates(),
        clock,
        config.sms,
        sender="+8610690000",
        status_callback_url=None,
    )
    return CallbackService(store, clock, load_catalogue(), config.callbacks, sms)


@pytest.fixture
async def service(store: Store, clock: ManualClock) -> AsyncIterator[CallbackService]:
    """A callback service on the demo city."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    yield new_service(store, clock)


def citizen(n: int) -> str:
    return f"+861391234{n:04d}"


async def serve_many(service: CallbackService, count: int) -> None:
    """``count`` due items, each of another citizen."""
    for n in range(count):
        await service.serve(
            ServedItemInput(
                reference=f"XZ-{n}",
                kind="id_card",
                unit="LZ-DC-01",
                citizen_number=citizen(n),
                served_at=SERVED,
            )
        )


async def test_a_claim_fills_each_pbx_up_to_its_free_lines(
    service: CallbackService, store: Store
) -> None:
    """Ten due items and PBXs of 2 and 3 lines: five are claimed, two on one and three
    on the other, each attempt row naming its PBX; the next claim finds no line free."""
    await serve_many(service, 10)
    claimed = await service.claim_spread({"north": 2, "south": 3})
    assert Counter(attempt.pbx for _, attempt in claimed) == {"north": 2, "south": 3}
    for item, attempt in claimed:
        [stored] = await store.callbacks.attempts(item.id)
        assert stored.pbx == attempt.pbx and stored.outcome == "placed"
    assert await service.claim_spread({"north": 2, "south": 3}) == []


async def test_each_call_goes_to_the_pbx_with_the_most_free_lines(
    service: CallbackService,
) -> None:
    """Each claimed call goes where most lines are free then, the first PBX on a tie:
    with north at 1 of 2 lines busy and south at 0 of 2, three calls go to south,
    north, south."""
    await serve_many(service, 4)
    [(_, first)] = await service.claim_spread({"north": 1})
    assert first.pbx == "north"
    claimed = await service.claim_spread({"north": 2, "south": 2})
    assert [attempt.pbx for _, attempt in claimed] == ["south", "north", "south"]


async def test_two_gateways_share_the_lines_of_one_pbx(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """Two gateways' services on one store: the second finds the lines the first took
    busy, and a line is free again for either as soon as its call has ended."""
    other = new_service(store, clock)
    await serve_many(service, 6)
    first = await service.claim_spread({"main": 3})
    assert len(first) == 3
    assert await other.claim_spread({"main": 3}) == []
    item, attempt = first[0]
    await service.call_finished(item, attempt.id, DialResult(CallOutcome.BUSY))
    [(_, again)] = await other.claim_spread({"main": 3})
    assert again.pbx == "main"
    assert await service.claim_spread({"main": 3}) == []


async def test_a_lost_outcome_holds_its_line_until_the_call_can_no_longer_be_up(
    service: CallbackService, clock: ManualClock
) -> None:
    """A call whose outcome was lost (its PBX went down) keeps its line busy: the PBX
    may still carry it. Once it can no longer be up it is settled and the line is free."""
    await serve_many(service, 2)
    [(item, attempt)] = await service.claim_spread({"north": 1})
    await service.call_finished(item, attempt.id, DialResult(CallOutcome.UNKNOWN))
    assert await service.claim_spread({"north": 1}) == []
    clock.advance(timedelta(seconds=service.settings.ring_timeout_seconds + 61))
    assert await service.settle_calls() == 1
    [(_, then)] = await service.claim_spread({"north": 1})
    assert then.pbx == "north"


async def add_record(
    store: Store,
    clock: ManualClock,
    pbx: str,
    linkedid: str,
    number: str,
    *,
    originate: str | None = None,
) -> None:
    """A finished call with ``number`` as the call log stores it from ``pbx``, now."""
    now = clock.now().isoformat(timespec="microseconds")
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO call_records (pbx, linkedid, uniqueid, direction, caller_number,"
            " dialled_number, started_at, complete, updated_at, originate_id)"
            " VALUES (?, ?, ?, 'inbound', ?, '12110', ?, 1, ?, ?)",
            (pbx, linkedid, linkedid, number, now, now, originate),
        )


async def test_only_the_call_log_of_the_attempts_pbx_settles_it(
    service: CallbackService, store: Store, clock: ManualClock
) -> None:
    """An attempt on north whose outcome was lost: the citizen's own hotline call on
    south, even one carrying the attempt's ActionID, settles nothing (north may still
    carry the callback); the citizen's finished call on north does."""
    await serve_many(service, 1)
    [(item, attempt)] = await service.claim_spread({"north": 1, "south": 0})
    await service.call_finished(item, attempt.id, DialResult(CallOutcome.UNKNOWN))
    clock.advance(timedelta(seconds=3))
    await add_record(store, clock, "south", "1764468000.7", citizen(0))
    own = originate_id(attempt.id)
    await add_record(store, clock, "south", "1764468000.9", "+8613800000000", originate=own)
    assert await service.settle_calls() == 0
    await add_record(store, clock, "north", "1764468000.7", citizen(0))
    assert await service.settle_calls() == 1
    [settled] = await store.callbacks.attempts(item.id)
    assert (settled.pbx, settled.outcome) == ("north", "unknown")


async def test_concurrent_claims_of_two_gateways_never_exceed_the_lines(
    service: CallbackService, store_location: Path | str, clock: ManualClock
) -> None:
    """Two gateways, each with its own connection to the store (its own pool on
    PostgreSQL), claiming at the same moment again and again: the store's write lock
    serialises the claims, so together they never take more than the PBX's lines."""
    await serve_many(service, 20)
    async with Store.open(store_location, clock) as second_store:
        other = new_service(second_store, clock)
        rounds = [
            claimer.claim_spread({"main": 3}) for _ in range(5) for claimer in (service, other)
        ]
        claimed = [pair for claims in await asyncio.gather(*rounds) for pair in claims]
    assert len(claimed) == 3
    assert len({item.id for item, _ in claimed}) == 3
