"""Cases: numbering per day, concurrency, history, status, repeats, bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.clock import ManualClock
from gateway.phone import InvalidPhoneNumber
from gateway.store import Store, StoreError
from gateway.store.cases import normalise_number


@pytest.fixture
async def city(store: Store) -> Store:
    """The store with one sub-bureau and one station."""
    await store.units.add_unit("FJ-01", "东城分局", "sub_bureau")
    await store.units.add_unit("PS-01", "东城派出所", "station", "FJ-01")
    return store


async def test_numbers_count_per_local_day(city: Store, clock: ManualClock) -> None:
    """Numbers carry the category prefix and the local date; the sequence restarts each day."""
    first = await city.cases.open_case(channel="hotline", category="complaint", actor="ivr")
    second = await city.cases.open_case(channel="web", category="suggestion", actor="web")
    assert first.number == "TS20261130-0001"
    assert second.number == "JY20261130-0002"  # one sequence per day across categories
    clock.advance(timedelta(hours=14))  # 16:00 UTC = midnight in Shanghai
    third = await city.cases.open_case(channel="wechat", category="consultation", actor="web")
    assert third.number == "ZX20261201-0001"


async def test_fifty_concurrent_openings_get_fifty_numbers(city: Store) -> None:
    """50 cases opened at once get 50 distinct consecutive numbers."""
    cases = await asyncio.gather(
        *(
            city.cases.open_case(channel="hotline", category="complaint", actor="ivr")
            for _ in range(50)
        )
    )
    numbers = sorted(c.number for c in cases)
    assert len(set(numbers)) == 50
    assert numbers == [f"TS20261130-{i:04d}" for i in range(1, 51)]


async def test_open_case_fields_and_history(city: Store, clock: ManualClock) -> None:
    """A case keeps the citizen in E.164, Chinese text intact, owner, deadline, opening entry."""
    case = await city.cases.open_case(
        channel="hotline",
        category="complaint",
        actor="ivr",
        citizen_number="139 1234 5678",
        citizen_name="王小明",
        subject="轻伤案件办理进度慢",
        owner_unit="PS-01",
        recording="voice/2026/11/30/a.wav",
        call_pbx="main",
        call_linkedid="1795896766.4",
    )
    assert case.citizen_number == "+8613912345678"
    assert case.citizen_name == "王小明" and case.subject == "轻伤案件办理进度慢"
    assert case.owner_unit_code == "PS-01" and case.owner_unit_name == "东城派出所"
    assert case.status == "assigned"
    assert case.deadline == clock.now() + timedelta(days=5)
    assert case.call_linkedid == "1795896766.4"
    history = await city.cases.history(case.id)
    assert [(h.action, h.actor) for h in history] == [("opened", "ivr"), ("assigned", "ivr")]
    assert history[0].note == "投诉，来自热线电话"


async def test_get_by_number_or_digits(city: Store) -> None:
    """A case is found by its number in any case, or by its twelve digits; others give None."""
    case = await city.cases.open_case(channel="hotline", category="complaint", actor="ivr")
    assert (await city.cases.get("TS20261130-0001")) == case
    assert (await city.cases.get(" ts20261130-0001 ")) == case
    assert (await city.cases.get("202611300001")) == case
    assert await city.cases.get("JY20261130-0001") is None  # right digits, wrong category
    assert await city.cases.get("TS20261130-0002") is None
    assert await city.cases.get("hello") is None
    assert await city.cases.get("") is None
    assert normalise_number("12") is None


async def test_status_steps_and_history(city: Store, clock: ManualClock) -> None:
    """Allowed status steps are recorded in the history; a forbidden step names both states."""
    case = await city.cases.open_case(channel="letter", category="report", actor="desk")
    case = await city.cases.assign(case.number, "PS-01", actor="J001", note="请尽快核实")
    assert case.status == "assigned" and case.owner_unit_code == "PS-01"
    clock.advance(60)
    case = await city.cases.set_status(case.number, "in_progress", actor="J002")
    case = await city.cases.set_status(case.number, "resolved", actor="J002", note="已回复")
    await city.cases.add_history(case.number, "J002", "call", "已电话告知群众")
    with pytest.raises(StoreError, match="cannot go from resolved to assigned"):
        await city.cases.set_status(case.number, "assigned", actor="J002")
    case = await city.cases.set_status(case.number, "closed", actor="J003")
    with pytest.raises(StoreError, match=r"cannot go from closed to in_progress \(allowed: none\)"):
        await city.cases.set_status(case.number, "in_progress", actor="J003")
    history = await city.cases.history(case.id)
    assert [h.action for h in history] == [
        "opened",
        "assigned",
        "status",
        "status",
        "call",
        "status",
    ]
    assert history[3].note == "in_progress → resolved：已回复"
    assert case.updated_at == clock.now()


async def test_find_open_cases_of_the_same_citizen(city: Store) -> None:
    """Repeats: open, unmerged cases of the same citizen and category, oldest first."""
    a = await city.cases.open_case(
        channel="hotline", category="complaint", actor="ivr", citizen_number="13912345678"
    )
    b = await city.cases.open_case(
        channel="wechat", category="complaint", actor="web", citizen_number="+86 139 1234 5678"
    )
    await city.cases.open_case(
        channel="web", category="suggestion", actor="web", citizen_number="13912345678"
    )
    other = await city.cases.open_case(
        channel="web", category="complaint", actor="web", citizen_number="13800138000"
    )
    await city.cases.set_status(other.number, "closed", actor="x")
    found = await city.cases.find_open_for_citizen("13912345678", "complaint")
    assert [c.number for c in found] == [a.number, b.number]
    assert [
        c.number
        for c in await city.cases.find_open_for_citizen("13912345678", "complaint", exclude=b.id)
    ] == [a.number]
    assert await city.cases.find_open_for_citizen("13800138000", "complaint") == []


async def test_find_with_filters(city: Store) -> None:
    """Cases are listed newest first by status, category, owner unit and citizen."""
    a = await city.cases.open_case(
        channel="hotline", category="complaint", actor="ivr", owner_unit="PS-01"
    )
    b = await city.cases.open_case(
        channel="web", category="booking", actor="web", citizen_number="13912345678"
    )
    assert [c.number for c in await city.cases.find()] == [b.number, a.number]
    assert [c.number for c in await city.cases.find(status="open")] == [b.number]
    assert [c.number for c in await city.cases.find(category="complaint")] == [a.number]
    assert [c.number for c in await city.cases.find(unit_code="PS-01")] == [a.number]
    assert [c.number for c in await city.cases.find(citizen_number="13912345678")] == [b.number]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"owner_unit": "NOPE"}, StoreError, "unit 'NOPE' does not exist"),
        ({"citizen_number": "12345"}, InvalidPhoneNumber, "invalid phone number"),
        ({"citizen_number": "not a number"}, InvalidPhoneNumber, "not a phone number"),
        ({"channel": "pigeon"}, StoreError, "unknown channel 'pigeon'"),
        ({"category": "gossip"}, StoreError, "unknown category 'gossip'"),
        ({"actor": ""}, StoreError, "actor who opens it is missing"),
    ],
)
async def test_bad_input_opens_nothing(
    city: Store, kwargs: dict[str, str], error: type[Exception], message: str
) -> None:
    """A bad unit, phone, channel, category or actor is refused and nothing is written."""
    fields = {"channel": "hotline", "category": "complaint", "actor": "ivr", **kwargs}
    with pytest.raises(error, match=message):
        await city.cases.open_case(**fields)  # type: ignore[arg-type]
    assert await city.cases.count() == 0
    first = await city.cases.open_case(channel="hotline", category="complaint", actor="ivr")
    assert first.number.endswith("-0001")  # a refused case used no number


async def test_unknown_case_operations_are_refused(city: Store) -> None:
    """Status, assignment and history on a case that does not exist name the number."""
    with pytest.raises(StoreError, match="no case 'TS20261130-0099'"):
        await city.cases.set_status("TS20261130-0099", "closed", actor="x")
    with pytest.raises(StoreError, match="no case"):
        await city.cases.assign("TS20261130-0099", "PS-01", actor="x")
    with pytest.raises(StoreError, match="no case"):
        await city.cases.add_history("nonsense", "x", "note")
    case = await city.cases.open_case(channel="hotline", category="help", actor="ivr")
    with pytest.raises(StoreError, match="unknown status 'done'"):
        await city.cases.set_status(case.number, "done", actor="x")
    with pytest.raises(StoreError, match="unit 'NOPE' does not exist"):
        await city.cases.assign(case.number, "NOPE", actor="x")
    assert (await city.cases.get(case.number)) == case


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
