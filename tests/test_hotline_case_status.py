"""The hotline's case-status actions on a real store: who is told a case's state, the
PIN of the acceptance text, and the lock after too many wrong PINs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.appeals.lifecycle import PIN_LIMIT, PIN_LOCK, hash_pin
from gateway.clock import ManualClock
from gateway.hotline.actions import register_hotline_actions
from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult
from gateway.store import Store
from gateway.store.cases import Case
from gateway.store.seed import demo_city, load_seed

OWNER = "+8613912345678"
STRANGER = "+8613700000000"
PIN = "042917"


@pytest.fixture
async def case(store: Store) -> Case:
    """An assigned complaint of OWNER with a PIN (as its acceptance gives one)."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    case = await store.cases.open_case(
        channel="web",
        category="complaint",
        actor="test",
        citizen_number=OWNER,
        owner_unit="LZ-DC-01",
    )
    async with store.db.transaction() as conn:
        await store.cases.set_pin(conn, case.id, hash_pin(PIN, iterations=1000))
    return case


async def act(store: Store, name: str, caller: str, **args: str) -> ActionResult:
    registry = ActionRegistry()
    register_hotline_actions(registry, store)
    action = registry.get(name)
    assert action is not None
    call = ActionCall(name, args, "hotline", "lookup", "PJSIP/trunk-1", "1.1", caller, {})
    return await action(call)


async def test_the_owner_is_told_the_real_state(store: Store, case: Case) -> None:
    """The caller whose number opened the case hears its status, owner and deadline."""
    result = await act(store, "hotline.case_status", "013912345678", number=case.number)
    assert case.deadline is not None
    assert result == ActionResult(
        "told",
        {
            "case_state": "case_assigned",
            "case_unit": "LZ-DC-01",
            "case_deadline": store.clock.local(case.deadline).date().isoformat(),
        },
    )


@pytest.mark.parametrize("caller", [STRANGER, "", "anonymous"])
async def test_any_other_caller_needs_the_pin(store: Store, case: Case, caller: str) -> None:
    """Another number, or no caller id at all: the PIN is asked, nothing is told."""
    result = await act(store, "hotline.case_status", caller, number=case.number)
    assert result == ActionResult("needs_pin")


async def test_the_right_pin_tells_and_a_wrong_one_does_not(store: Store, case: Case) -> None:
    """The PIN of the acceptance text tells the state; another PIN is wrong_pin."""
    wrong = await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin="999999")
    assert wrong == ActionResult("wrong_pin")
    right = await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin=PIN)
    assert right.outcome == "told" and right.values["case_state"] == "case_assigned"


async def test_too_many_wrong_pins_lock_the_case_for_a_day(
    store: Store, case: Case, clock: ManualClock
) -> None:
    """The PIN_LIMIT-th wrong PIN in a row locks the PIN, even against the right one,
    until PIN_LOCK has passed; then the right PIN works again."""
    outcomes = [
        (await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin="1")).outcome
        for _ in range(PIN_LIMIT)
    ]
    assert outcomes == ["wrong_pin"] * (PIN_LIMIT - 1) + ["locked"]
    locked = await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin=PIN)
    assert locked == ActionResult("locked")
    clock.advance(PIN_LOCK + timedelta(minutes=1))
    told = await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin=PIN)
    assert told.outcome == "told"


async def test_a_case_never_accepted_has_no_pin_to_guess(store: Store) -> None:
    """Before acceptance no PIN exists: every PIN is wrong, and nothing gets locked."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    case = await store.cases.open_case(
        channel="web", category="help", actor="test", citizen_number=OWNER
    )
    for _ in range(PIN_LIMIT + 1):
        result = await act(store, "hotline.case_status_pin", STRANGER, number=case.number, pin=PIN)
        assert result == ActionResult("wrong_pin")
    assert await store.cases.pin_of(case.id) is None


async def test_a_merged_case_answers_with_the_case_it_joined(store: Store, case: Case) -> None:
    """The number of a case merged away tells the state of the case it was merged into."""
    other = await store.cases.open_case(
        channel="web", category="complaint", actor="test", citizen_number=OWNER
    )
    async with store.db.transaction() as conn:
        await conn.execute("UPDATE cases SET merged_into = ? WHERE id = ?", (case.id, other.id))
    result = await act(store, "hotline.case_status", OWNER, number=other.number)
    assert result.outcome == "told" and result.values["case_unit"] == "LZ-DC-01"


async def test_an_unknown_number_is_not_a_case(store: Store) -> None:
    """A number no case has goes on to the bookings and businesses (not_case)."""
    result = await act(store, "hotline.case_status", OWNER, number="209901019999")
    assert result == ActionResult("not_case")


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
