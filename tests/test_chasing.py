"""Chasing appeals: one reminder before a deadline, four levels once it has passed, each
texted once across restarts, stopped by an answer, counted in working days. Over the
real store, the real SMS outbox and the real supervised loop, with the clock moved by hand."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sms_support import outbox_service
from test_query_plans import scans_of_big_tables

from gateway import config as config_module
from gateway.appeals.chasing import CaseChaser, ChasingError, deadline_text, parse_level_days
from gateway.appeals.service import AppealService, SubmissionInput
from gateway.calendar import load_calendar
from gateway.callbacks.ladder import Ladder
from gateway.clock import LOCAL_TZ, ManualClock
from gateway.config import AppealsSection, Config, Secret
from gateway.store import Store
from gateway.store.callbacks import LostRace
from gateway.store.seed import demo_city, load_seed
from gateway.supervise import Supervisor

WEB_TOKEN = "web-token-0123456789abcdef"
TEXT = "小区门口夜间常有人飙车，噪音扰民，请派出所加强巡逻。"
# Heads of each level for a case owned by LZ-DC-01 (the demo city's seed).
STATION, SUB_BUREAU, SUPERVISION, LEADERS = "J00010", "J00008", "J00002", ("J00003", "J00004")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def settings(**changes: object) -> Config:
    overrides = [f"appeals.{k}={v}" for k, v in changes.items()]
    return config_module.load(overrides=overrides)


class Gateway:
    """What one run of the gateway holds for chasing: a store, the outbox, the chaser."""

    def __init__(self, store: Store, clock: ManualClock, config: Config) -> None:
        self.store = store
        sms = outbox_service(store, clock, config.sms)
        self.chaser = CaseChaser(
            store,
            clock,
            sms,
            Ladder(store.units, config.callbacks),
            load_calendar(),
            config.appeals,
        )
        appeals_settings = AppealsSection(channels_web_token=Secret(WEB_TOKEN))
        self.appeals = AppealService(store, clock, appeals_settings)


@asynccontextmanager
async def gateway(
    path: Path | str, clock: ManualClock, config: Config | None = None
) -> AsyncIterator[Gateway]:
    """A gateway run on the store at ``path`` (a new run: nothing kept in memory)."""
    async with Store.open(path, clock) as store:
        yield Gateway(store, clock, config or settings())


@pytest.fixture
async def gw(store_location: Path | str, clock: ManualClock) -> AsyncIterator[Gateway]:
    async with gateway(store_location, clock) as run:
        await load_seed(run.store.units, demo_city(), "demo-city.toml")
        yield run


async def open_case(
    gw: Gateway,
    ref: str = "W1",
    *,
    category: str = "complaint",
    unit: str = "LZ-DC-01",
    accepted: bool = False,
    citizen: str = "13912345678",
) -> str:
    intake = await gw.appeals.submit(
        SubmissionInput(
            channel="web",
            reference=ref,
            citizen_number=citizen,
            category=category,
            text=TEXT,
            unit_hint=unit,
        )
    )
    if accepted:
        await gw.store.cases.set_status(intake.case.number, "in_progress", actor="J00011")
    return intake.case.number


async def texted(store: Store, template: str) -> list[str]:
    """Officer codes texted with ``template``, oldest first."""
    mobiles = {o.mobile: o.code for o in await store.units.officers()}
    rows = await store.sms.recent(limit=1000)
    return [mobiles.get(m.to, m.to) for m in reversed(rows) if m.template == template]


async def actions(store: Store, number: str) -> list[str]:
    case = await store.cases.get(number)
    assert case is not None
    return [e.action for e in await store.cases.history(case.id) if e.actor == "system:chasing"]


# -- settings and words --------------------------------------------------------------


def test_level_days_are_four_whole_numbers() -> None:
    """The working days per level parse as the order policy's four numbers, whole ones only."""
    assert parse_level_days("1, 2,1,3") == (1, 2, 1, 3)
    with pytest.raises(ChasingError):
        parse_level_days("1,1.5,1,1")
    with pytest.raises(ChasingError):
        parse_level_days("1,1,1")
    with pytest.raises(ChasingError):
        parse_level_days("1,0,1,1")


def test_a_deadline_at_midnight_reads_as_the_end_of_the_day_before() -> None:
    """The end of 3 December is written 12月03日24时, not 12月04日00时."""
    assert deadline_text(local(2026, 12, 4, 0, 0)) == "12月03日24时"
    assert deadline_text(local(2026, 12, 4, 9, 30)) == "12月04日09:30"


def test_a_bad_chasing_setting_is_refused_naming_the_key() -> None:
    """A malformed level setting stops the start with the key named."""
    with pytest.raises(config_module.ConfigError, match="chase_level_working_days"):
        settings(chase_level_working_days="1,1")


# -- reminders -------------------------------------------------------------------------


async def test_a_near_deadline_is_reminded_once_to_the_owner_units_chief(
    gw: Gateway, clock: ManualClock, store_location: Path | str
) -> None:
    """Monday 10:00, a complaint to accept by the end of Tuesday: its station chief is
    texted once, however many rounds and restarts follow; the history says so."""
    number = await open_case(gw)
    done = await gw.chaser.run_once()
    assert done.reminded == 1
    for _ in range(3):
        assert (await gw.chaser.run_once()).reminded == 0
    async with gateway(store_location, clock) as again:
        assert (await again.chaser.run_once()).reminded == 0
    assert await texted(gw.store, "case_deadline_near") == [STATION]
    [body] = [m.body for m in await gw.store.sms.recent() if m.template == "case_deadline_near"]
    assert number in body and "12月01日24时前受理" in body
    assert await actions(gw.store, number) == ["chase_reminded"]


async def test_a_far_deadline_is_not_reminded_yet(gw: Gateway, clock: ManualClock) -> None:
    """An accepted complaint due in five working days is reminded only on the working day
    before its deadline."""
    number = await open_case(gw, accepted=True)
    assert (await gw.chaser.run_once()).reminded == 0
    clock.advance(timedelta(days=3))  # Thursday: the deadline (end of next Monday) is 2 away
    assert (await gw.chaser.run_once()).reminded == 0
    clock.advance(timedelta(days=1))  # Friday: Monday is the next working day
    assert (await gw.chaser.run_once()).reminded == 1
    assert await actions(gw.store, number) == ["chase_reminded"]


async def test_a_case_without_owner_is_reminded_to_the_supervision_office(
    gw: Gateway,
) -> None:
    """Nobody owns the case yet: the reminder goes to the first level that can be texted."""
    await open_case(gw, unit="")
    await gw.chaser.run_once()
    assert await texted(gw.store, "case_deadline_near") == [SUPERVISION]


# -- climbing ------------------------------------------------------------------------------


async def run_loop_cut(chaser: CaseChaser, rng: random.Random) -> None:
    """The supervised loop, cancelled at a random moment (often mid-round)."""
    supervisor = Supervisor("chasing")
    supervisor.loop("cases", chaser.run_once, every=0.0)
    await asyncio.sleep(rng.uniform(0, 0.05))
    await supervisor.aclose()


async def run_loop_rounds(chaser: CaseChaser, rounds: int) -> None:
    """The supervised loop until it has done ``rounds`` whole rounds, then stopped."""
    supervisor = Supervisor("chasing")
    state = supervisor.loop("cases", chaser.run_once, every=0.0)
    while state.rounds < rounds:
        assert not state.degraded, state.last_error
        await asyncio.sleep(0.001)
    await supervisor.aclose()


async def test_each_level_is_texted_once_across_restarts_cut_mid_round(
    gw: Gateway, clock: ManualClock, store_location: Path | str
) -> None:
    """An overdue case climbs station → sub-bureau → supervision office → leadership, a
    level per working day; the loop is cancelled at random moments and the gateway
    restarted between and within levels: every head is texted exactly once, each level
    is in the history once, and the top level is not texted again."""
    number = await open_case(gw, accepted=True)  # answer by the end of Monday 7 December
    path = store_location
    rng = random.Random(7)
    steps = [
        local(2026, 12, 8, 9, 0),  # overdue: level 1 (its time: the end of Wednesday 9th)
        local(2026, 12, 10, 9, 0),  # level 2 (to the end of Friday 11th)
        local(2026, 12, 12, 9, 0),  # level 3 on Saturday (to the end of Monday 14th)
        local(2026, 12, 15, 9, 0),  # level 4 (to the end of Wednesday 16th)
        local(2026, 12, 17, 9, 0),  # the top's time is up: held, not texted again
        local(2026, 12, 21, 9, 0),
    ]
    for when in steps:
        clock.advance(when - clock.now())
        for _ in range(3):
            async with gateway(path, clock) as run:
                await run_loop_cut(run.chaser, rng)
        async with gateway(path, clock) as run:
            await run_loop_rounds(run.chaser, 2)
    overdue = await texted(gw.store, "case_overdue")
    assert overdue == [STATION, SUB_BUREAU, SUPERVISION, *LEADERS]
    history = await actions(gw.store, number)
    assert history.count("chase_level") == 4
    assert history.count("chase_notified") == 4
    assert history.count("chase_top") == 1
    [chase] = await gw.store.chases.of_case((await gw.store.cases.get(number)).id)  # type: ignore[union-attr]
    assert (chase.stage, chase.level, chase.notified_level, chase.status) == (
        "answer",
        4,
        4,
        "open",
    )
    bodies = [m.body for m in reversed(await gw.store.sms.recent()) if m.template == "case_overdue"]
    assert (
        "第1级" in bodies[0] and "12月07日24时" in bodies[0] and "报分局（县局）局长" in bodies[0]
    )
    assert "已督办至最高一级" in bodies[-1]


async def test_an_answered_case_stops_climbing(gw: Gateway, clock: ManualClock) -> None:
    """A case answered at level 1 is not climbed when the level's time is up; its chase
    ends with a line in the history."""
    number = await open_case(gw, accepted=True)
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    assert (await gw.chaser.run_once()).climbed == 1
    await gw.store.cases.set_status(number, "resolved", actor=STATION)
    clock.advance(timedelta(days=3))
    done = await gw.chaser.run_once()
    assert (done.ended, done.climbed) == (1, 0)
    assert await texted(gw.store, "case_overdue") == [STATION]
    assert (await actions(gw.store, number))[-1] == "chase_ended"
    assert (await gw.chaser.run_once()).ended == 0


async def test_an_unaccepted_case_climbs_for_acceptance_until_accepted(
    gw: Gateway, clock: ManualClock
) -> None:
    """Not accepted by its accept-by deadline, a case climbs; accepted, that chase ends,
    while its answer deadline is still chased apart."""
    number = await open_case(gw)
    clock.advance(local(2026, 12, 2, 9, 0) - clock.now())  # accept_by: end of 1 December
    await gw.chaser.run_once()
    assert await texted(gw.store, "case_overdue") == [STATION]
    await gw.store.cases.set_status(number, "in_progress", actor=STATION)
    assert (await gw.chaser.run_once()).ended == 1
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    await gw.chaser.run_once()
    assert await texted(gw.store, "case_overdue") == [STATION, STATION]
    case = await gw.store.cases.get(number)
    assert case is not None
    stages = {(c.stage, c.status, c.level) for c in await gw.store.chases.of_case(case.id)}
    assert stages == {("accept", "ended", 1), ("answer", "open", 1)}


async def test_a_level_whose_heads_cannot_be_texted_is_texted_by_the_sweeper(
    gw: Gateway, clock: ManualClock
) -> None:
    """The station chief's number on file is a fixed line: the case still climbs to level
    1, marked not texted; once the number is fixed the sweeper texts it, once."""
    await gw.store.units.add_officer("J00010", "周伟", "LZ-DC-01", "chief", "+865398123456")
    number = await open_case(gw, accepted=True)
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    await gw.chaser.run_once()
    case = await gw.store.cases.get(number)
    assert case is not None
    [chase] = await gw.store.chases.of_case(case.id)
    assert (chase.level, chase.notified_level) == (1, 0)
    assert await texted(gw.store, "case_overdue") == []
    assert (await gw.chaser.run_once()).swept == 0
    await gw.store.units.add_officer("J00010", "周伟", "LZ-DC-01", "chief", "+8615171049746")
    assert (await gw.chaser.run_once()).swept == 1
    assert (await gw.chaser.run_once()).swept == 0
    assert await texted(gw.store, "case_overdue") == [STATION]


async def test_a_level_with_nobody_on_file_is_passed_over(gw: Gateway, clock: ManualClock) -> None:
    """A station with no chief on file: the overdue case goes straight to the sub-bureau,
    and the history says the station was passed over."""
    await gw.store.units.add_unit("LZ-DC-09", "东城区新建派出所", "station", "LZ-DC")
    number = await open_case(gw, unit="LZ-DC-09", accepted=True)
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    await gw.chaser.run_once()
    assert await texted(gw.store, "case_overdue") == [SUB_BUREAU]
    assert "chase_skipped" in await actions(gw.store, number)


# -- working days ------------------------------------------------------------------------


async def test_a_deadline_after_a_holiday_is_counted_in_working_days(
    gw: Gateway, clock: ManualClock
) -> None:
    """A consultation opened on 29 September 2026 is due in two working days: 30 September
    and 8 October (1–7 October is the National Day holiday). It is reminded on the last
    working day before the holiday, is not overdue during it, climbs on 9 October, and
    its level-1 time runs to the end of Saturday 10 October, a make-up working day."""
    clock.advance(local(2026, 9, 29, 10, 0) - clock.now())
    number = await open_case(gw, category="consultation", accepted=True)
    case = await gw.store.cases.get(number)
    assert case is not None and case.deadline == local(2026, 10, 9, 0, 0)
    assert (await gw.chaser.run_once()).reminded == 0
    clock.advance(local(2026, 9, 30, 10, 0) - clock.now())
    assert (await gw.chaser.run_once()).reminded == 1
    clock.advance(local(2026, 10, 5, 10, 0) - clock.now())
    assert (await gw.chaser.run_once()).climbed == 0
    clock.advance(local(2026, 10, 9, 9, 0) - clock.now())
    assert (await gw.chaser.run_once()).climbed == 1
    clock.advance(local(2026, 10, 10, 20, 0) - clock.now())
    assert (await gw.chaser.run_once()).climbed == 0
    clock.advance(local(2026, 10, 11, 0, 30) - clock.now())
    assert (await gw.chaser.run_once()).climbed == 1
    assert await texted(gw.store, "case_overdue") == [STATION, SUB_BUREAU]
    [reminder] = [m.body for m in await gw.store.sms.recent() if m.template == "case_deadline_near"]
    assert "10月08日24时前答复" in reminder


async def test_a_climb_racing_an_answer_is_not_applied(gw: Gateway, clock: ManualClock) -> None:
    """A chase read as due, then the case answered before the climb is written: the
    conditional write refuses it (LostRace), and nothing is texted."""
    number = await open_case(gw, accepted=True)
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    await gw.chaser.run_once()  # level 1 now; its time ended with Wednesday
    clock.advance(local(2026, 12, 10, 9, 0) - clock.now())
    [due] = await gw.store.chases.climbing_due(clock.now())
    await gw.store.cases.set_status(number, "resolved", actor=STATION)
    with pytest.raises(LostRace):
        async with gw.store.db.transaction() as conn:
            await gw.store.chases.set_level(conn, due, 2, clock.now() + timedelta(days=1))
    assert await texted(gw.store, "case_overdue") == [STATION]


async def test_a_level_change_and_its_texts_roll_back_together(
    gw: Gateway, clock: ManualClock
) -> None:
    """A climb that fails after its text was written leaves neither the level nor the text."""
    number = await open_case(gw, accepted=True)
    clock.advance(local(2026, 12, 8, 9, 0) - clock.now())
    [due] = await gw.store.chases.due_by(clock.now())
    with pytest.raises(RuntimeError):
        async with gw.store.db.transaction() as conn:
            await gw.store.chases.set_level(conn, due, 1, clock.now() + timedelta(days=1))
            await gw.chaser.texter.enqueue(
                to="+8615171049746",
                template="case_overdue",
                variables={
                    "level": 1,
                    "holder": "派出所所长",
                    "unit": "东城派出所",
                    "subject": "飙车扰民",
                    "case_ref": number,
                    "stage": "答复",
                    "deadline": "12月07日24时",
                    "next": "已督办至最高一级",
                },
                idempotency_key="rollback-check",
                conn=conn,
            )
            raise RuntimeError("the process dies here")
    assert await gw.store.sms.by_key("rollback-check") is None
    case = await gw.store.cases.get(number)
    assert case is not None and await gw.store.chases.of_case(case.id) == []


@pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)  # SQLite's plans
async def test_the_chasers_queries_search_indexes_only(
    gw: Gateway, clock: ManualClock, tmp_path: Path
) -> None:
    """A round's queries (reminders, climbs, ends, the sweeper) search indexes: none scans
    cases, chases, terms or texts, which grow with the bureau's traffic."""
    numbers = [
        await open_case(gw, f"W{n}", accepted=n % 2 == 0, citizen=f"1391234{n:04d}")
        for n in range(6)
    ]
    await gw.store.cases.set_status(numbers[1], "resolved", actor=STATION)
    statements: list[str] = []
    await gw.store.db.conn.set_trace_callback(statements.append)
    for when in (local(2026, 12, 1, 9, 0), local(2026, 12, 8, 9, 0), local(2026, 12, 10, 9, 0)):
        clock.advance(when - clock.now())
        await gw.chaser.run_once()
    await gw.store.db.conn.set_trace_callback(None)
    chased = [s for s in statements if "case_chases" in s]
    assert len(chased) > 10
    found = scans_of_big_tables(tmp_path / "gateway.sqlite3", chased)
    assert found == [], "\n".join(found)
