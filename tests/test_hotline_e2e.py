"""The hotline over loopback, branch by branch: the real gateway application drives
the flow by AsyncAGI on the simulated PBX (AMI over TCP); we check what the caller
heard, the case the store opened and the one call record of each call."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.app import PBX
from gateway.appeals.web import LIFECYCLE
from gateway.calllog.builder import ABANDONED, ANSWERED, INBOUND, NOTE_LINK_LOST, CallRecord
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.ivr import say
from gateway.sim.ami import (
    CallerScript,
    CallOutcome,
    HangUp,
    Press,
    Silence,
    Speak,
    Step,
    WaitForAgent,
    WaitForPrompt,
)
from gateway.store.cases import Case
from tests.folders import unwritable_folder
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
HOTLINE = "9600110"
# Simulated seconds per real second. IVR timeouts (a 6 s menu) shrink with it, so a
# loaded machine must still answer within 6 s / SPEED: keep it modest.
SPEED = 100.0
MONDAY_9AM_SHANGHAI = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
CALLER = "+8613912345678"
CALLER_NAME = "张三丰"


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway and both simulators on a Monday at 09:00 in Shanghai, logged in and resynced.

    Indirect parameters: ``agents`` (queue seats), ``overrides`` (config lines), ``speed``,
    ``agi`` (the AGI transport of the simulated PBX: "async", the default, or "fastagi").
    """
    params: dict[str, Any] = getattr(request, "param", {})
    clock = ScaledClock(MONDAY_9AM_SHANGHAI, params.get("speed", SPEED))
    async with running_stack(
        tmp_path / "data",
        clock,
        agents=params.get("agents", 20),
        recordings_dir=ROOT / "recordings" / "zh",
        overrides=params.get("overrides", ()),
        run_scheduler=False,
        agi=params.get("agi", "async"),
    ) as running:
        session = running.app[PBX]["main"]
        await session.wait_connected(10)
        await session.ping()  # answered after the login's resync
        yield running


def caller(steps: Sequence[Step], number: str = CALLER, name: str = CALLER_NAME) -> CallerScript:
    return CallerScript(
        caller=number, caller_name=name, dialled=HOTLINE, steps=list(steps), language="zh"
    )


def menu(key: str) -> list[Step]:
    return [WaitForPrompt("main_menu", timeout=120), Press(key)]


def message(seconds: float = 5.0) -> list[Step]:
    """Wait for the beep of a recording, talk, end with #."""
    return [WaitForPrompt(input=True, timeout=120), Speak(seconds), Press("#")]


async def record_of(stack: Stack, outcome: CallOutcome, seconds: float = 20.0) -> CallRecord:
    """The call's record once it is complete and the flow's path is attached."""

    async def ready() -> CallRecord | None:
        stored = await stack.store.calls.get("main", outcome.linkedid)
        if stored is None or not stored.record.complete or not stored.record.ivr_path:
            return None
        return stored.record

    record: CallRecord = await until(ready, seconds)
    return record


async def run_call(
    stack: Stack, steps: Sequence[Step], number: str = CALLER, name: str = CALLER_NAME
) -> tuple[CallOutcome, CallRecord]:
    call = stack.pbx.place_call(caller(steps, number, name))
    outcome = await asyncio.wait_for(call.finished, 30)
    record = await record_of(stack, outcome)
    # one record per call: nothing else was logged for this caller
    assert [s.record.linkedid for s in await stack.store.calls.find(caller=number)] == [
        outcome.linkedid
    ]
    return outcome, record


def check_record(
    record: CallRecord,
    outcome: CallOutcome,
    disposition: str = ANSWERED,
    name: str = CALLER_NAME,
) -> None:
    """What every hotline call's record holds."""
    assert record.complete and not record.partial
    assert record.direction == INBOUND
    assert record.caller_number == outcome.number
    assert record.caller_name == name
    assert record.dialled_number == HOTLINE
    assert record.disposition == disposition
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert record.ivr_path and record.ivr_path[0] == "welcome:enter=play"


def nodes(record: CallRecord) -> list[str]:
    """The flow nodes the call entered, in order."""
    return [s.split(":", 1)[0] for s in record.ivr_path if ":enter" in s]


def heard(outcome: CallOutcome) -> list[str]:
    """The prompts heard, without the digits read out."""
    return [p for p in outcome.prompts if p not in _SAID]


_SAID = {
    p.rsplit("/", 1)[-1]
    for text in ("0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "-")
    for p in say.digits(text)
}


async def cases(stack: Stack) -> list[Case]:
    return list(await stack.store.cases.find())


def read_back(outcome: CallOutcome, case_number: str) -> None:
    """The case number was read out digit by digit, twice."""
    spoken = [p.rsplit("/", 1)[-1] for p in say.digits(case_number)]
    prompts = outcome.prompts
    first = prompts.index("case_number") + 1
    assert prompts[first : first + len(spoken)] == spoken
    again = prompts.index("repeat_once") + 1
    assert prompts[again : again + len(spoken)] == spoken
    assert prompts[again + len(spoken)] == "remember"


def check_case(stack: Stack, case: Case, category: str, outcome: CallOutcome) -> None:
    assert case.channel == "hotline"
    assert case.category == category
    assert case.citizen_number == outcome.number
    assert case.call_linkedid == outcome.linkedid
    assert case.recording is not None
    data = stack.config.gateway.data_dir.resolve()
    recording = Path(case.recording).resolve()
    assert recording.is_relative_to(data)
    assert not recording.is_relative_to(ROOT)  # never in the source tree
    # the stored path is the file the PBX wrote, extension included
    assert recording.suffix == ".wav" and recording.is_file()
    assert any(Path(r).resolve() == recording for r in outcome.recordings)


# -- the branches ------------------------------------------------------------------


async def test_consultation_hears_the_items_then_an_agent_answers(stack: Stack) -> None:
    """1: the consultation items, then the queue; an agent takes the call."""
    outcome, record = await run_call(stack, [*menu("1"), WaitForAgent(timeout=600)])
    assert heard(outcome)[:4] == ["welcome", "main_menu", "consult_items", "to_agent"]
    assert outcome.agent and outcome.queue == "hotline"
    check_record(record, outcome)
    assert record.queue == "hotline" and record.queue_wait_s is not None
    assert 0 <= record.queue_wait_s < 60
    assert record.agent == outcome.agent
    assert nodes(record) == [
        "welcome", "main_menu", "consult", "agent_hours", "to_agent", "agent", "goodbye",
    ]  # fmt: skip
    assert record.case_id is None and await cases(stack) == []


async def test_seat_hanging_up_first_ends_with_goodbye_and_no_second_queue(stack: Stack) -> None:
    """The seat hangs up first: Queue answers -1 with the caller still Up; the gateway goes
    on in the flow (goodbye, then it hangs up) instead of the dialplan queueing them again."""
    outcome, record = await run_call(stack, [*menu("0"), WaitForAgent(timeout=600)])
    assert outcome.agent and outcome.ended_by == "pbx"
    assert heard(outcome)[-1] == "goodbye"  # heard after the seat left
    assert stack.pbx.world.queues["hotline"].completed == 1  # one seat, never a second
    check_record(record, outcome)
    assert "agent:queue_left=-1" in record.ivr_path and "agent:queue_answered" in record.ivr_path
    assert nodes(record)[-2:] == ["agent", "goodbye"]
    assert not any(":caller_hangup" in step for step in record.ivr_path)


async def test_complaint_is_recorded_opened_as_a_case_and_its_number_read_back(
    stack: Stack,
) -> None:
    """2: the complaint is recorded until #, a case opens and its number is read back twice."""
    outcome, record = await run_call(
        stack, [*menu("2"), *message(), WaitForPrompt("goodbye", timeout=120)]
    )
    [case] = await cases(stack)
    check_case(stack, case, "complaint", outcome)
    assert case.number.startswith("TS20261130-")
    assert heard(outcome) == [
        "welcome", "main_menu", "complaint_intro", "beep",
        "case_opened", "case_number", "repeat_once", "remember", "goodbye",
    ]  # fmt: skip
    read_back(outcome, case.number)
    check_record(record, outcome)
    assert record.case_id == case.id
    assert nodes(record) == [
        "welcome", "main_menu", "complaint", "open_complaint", "read_case_number", "goodbye",
    ]  # fmt: skip
    assert record.queue is None and record.agent is None


async def test_suggestion_is_recorded_and_opened_as_a_suggestion(stack: Stack) -> None:
    """3: a suggestion becomes a suggestion case linked to the call."""
    outcome, record = await run_call(
        stack, [*menu("3"), *message(8), WaitForPrompt("goodbye", timeout=120)]
    )
    [case] = await cases(stack)
    check_case(stack, case, "suggestion", outcome)
    assert case.number.startswith("JY20261130-")
    assert "suggestion_intro" in outcome.prompts
    read_back(outcome, case.number)
    check_record(record, outcome)
    assert record.case_id == case.id
    assert "open_suggestion" in nodes(record)


async def test_status_of_a_case_is_told_to_the_caller_who_opened_it(stack: Stack) -> None:
    """4: the twelve digits of the caller's own case tell its real state, owner and deadline."""
    case = await stack.store.cases.open_case(
        channel="web",
        category="complaint",
        actor="test",
        citizen_number=CALLER,
        subject="噪音扰民",
        content="楼下烧烤摊营业到凌晨",
        owner_unit="LZ-DC-01",
    )
    digits = case.number[2:].replace("-", "")
    assert len(digits) == 12 and case.deadline is not None
    outcome, record = await run_call(stack, status_query(digits))
    prompts = heard(outcome)
    assert prompts[prompts.index("status_enter") + 1 :][:4] == [
        "case_intro",
        "case_assigned",
        "case_unit",
        "LZ-DC-01",
    ]
    deadline = stack.clock.local(case.deadline).date()
    spoken = [p.rsplit("/", 1)[-1] for p in say.day(deadline)]
    after = outcome.prompts[outcome.prompts.index("case_deadline") + 1 :]
    assert after[: len(spoken)] == spoken and after[len(spoken)] == "status_next"
    check_record(record, outcome)
    assert f"status_number:digits={digits}" in record.ivr_path
    assert "lookup:action=told" in record.ivr_path
    assert "case_pin" not in nodes(record)  # the caller's own number: no PIN asked
    assert record.case_id is None
    assert [c.id for c in await cases(stack)] == [case.id]  # nothing opened by a lookup


async def test_status_of_anothers_case_needs_the_pin_of_the_acceptance_text(
    stack: Stack,
) -> None:
    """From another phone the state is told only after the PIN the acceptance text gave."""
    case = await stack.store.cases.open_case(
        channel="web",
        category="complaint",
        actor="test",
        citizen_number="+8613800000000",
        owner_unit="LZ-DC-01",
    )
    await stack.app[LIFECYCLE].accept(case.number, actor="J00011")
    [text] = [m for m in await stack.store.sms.recent() if m.template == "case_accepted"]
    pin = text.variables["pin"]
    digits = case.number[2:].replace("-", "")

    wrong = "000000" if pin != "000000" else "111111"
    outcome, record = await run_call(stack, status_query(digits, pin=wrong))
    prompts = heard(outcome)
    assert prompts[prompts.index("status_enter") + 1 :] == [
        "case_pin_enter",
        "case_pin_wrong",
        "status_next",
    ]
    assert "check_pin:action=wrong_pin" in record.ivr_path

    other = "+8613700000000"
    outcome, record = await run_call(stack, status_query(digits, pin=pin), number=other)
    prompts = heard(outcome)
    assert prompts[prompts.index("case_pin_enter") + 1 :][:4] == [
        "case_intro",
        "case_in_progress",
        "case_unit",
        "LZ-DC-01",
    ]
    assert "check_pin:action=told" in record.ivr_path
    stored = await stack.store.cases.pin_of(case.id)
    assert stored is not None and stored.failures == 0  # a right PIN clears the count
    assert all(pin not in step for step in record.ivr_path if not step.startswith("case_pin"))


def status_query(digits: str, pin: str | None = None) -> list[Step]:
    """4, a number and #; with ``pin``, the PIN and # when asked; hang up at the next menu."""
    steps: list[Step] = [
        *menu("4"),
        WaitForPrompt(input=True, timeout=120),
        Press(digits + "#", gap=0.2),
    ]
    if pin is not None:
        steps += [WaitForPrompt("case_pin_enter", timeout=120), Press(pin + "#", gap=0.2)]
    return [*steps, WaitForPrompt("status_next", timeout=120), HangUp()]


async def test_status_of_an_unknown_number_is_not_found(stack: Stack) -> None:
    """4 with a number nobody issued: the caller hears it was not found."""
    outcome, record = await run_call(
        stack,
        [
            *menu("4"),
            WaitForPrompt(input=True, timeout=120),
            Press("209901019999#", gap=0.2),
            WaitForPrompt("status_next", timeout=120),
            HangUp(),
        ],
    )
    prompts = heard(outcome)
    assert prompts[prompts.index("status_enter") + 1 :] == ["status_not_found", "status_next"]
    check_record(record, outcome)
    assert "lookup:action=not_case" in record.ivr_path
    assert "lookup_item:action=not_found" in record.ivr_path
    assert "status_not_found" in nodes(record)


async def test_zero_goes_straight_to_an_agent(stack: Stack) -> None:
    """0: straight to the queue, an agent answers."""
    outcome, record = await run_call(stack, [*menu("0"), WaitForAgent(timeout=600)])
    assert heard(outcome)[:3] == ["welcome", "main_menu", "to_agent"]
    check_record(record, outcome)
    assert nodes(record) == [
        "welcome", "main_menu", "agent_hours", "to_agent", "agent", "goodbye",
    ]  # fmt: skip
    assert record.agent == outcome.agent and record.agent
    assert record.queue == "hotline" and record.queue_wait_s is not None


async def test_a_wrong_key_is_told_then_a_valid_one_works(stack: Stack) -> None:
    """A wrong key: 'invalid', the menu again; then 1 goes on as usual."""
    outcome, record = await run_call(
        stack,
        [*menu("9"), WaitForPrompt("main_menu", timeout=120), Press("1"), WaitForAgent(600)],
    )
    assert heard(outcome)[:6] == [
        "welcome", "main_menu", "invalid", "main_menu", "consult_items", "to_agent",
    ]  # fmt: skip
    check_record(record, outcome)
    assert "main_menu:invalid=9" in record.ivr_path
    assert "main_menu:key=1" in record.ivr_path
    assert record.dtmf.startswith("91")


async def test_star_repeats_the_menu(stack: Stack) -> None:
    """*: the menu is played again without a complaint; then 0 reaches an agent."""
    outcome, record = await run_call(
        stack,
        [*menu("*"), WaitForPrompt("main_menu", timeout=120), Press("0"), WaitForAgent(600)],
    )
    assert heard(outcome)[:4] == ["welcome", "main_menu", "main_menu", "to_agent"]
    check_record(record, outcome)
    assert any(s.startswith("main_menu:repeat") for s in record.ivr_path)
    assert record.agent


async def test_silence_to_the_end_reaches_an_agent(stack: Stack) -> None:
    """No key at all: asked again twice, then put through to an agent."""
    outcome, record = await run_call(stack, [WaitForAgent(timeout=900)])
    prompts = heard(outcome)
    assert prompts[: prompts.index("to_agent") + 1] == [
        "welcome", "main_menu", "silence", "main_menu", "silence", "main_menu", "to_agent",
    ]  # fmt: skip
    check_record(record, outcome)
    assert record.agent and record.dtmf == ""
    assert nodes(record) == [
        "welcome", "main_menu", "agent_hours", "to_agent", "agent", "goodbye",
    ]  # fmt: skip
    assert record.ivr_path.count("main_menu:silence") == 3


@pytest.mark.parametrize(
    "stack", [{"overrides": ["hotline.working_hours=18:00-20:00"]}], indirect=True
)
async def test_after_hours_a_voice_message_becomes_a_consultation_case(stack: Stack) -> None:
    """Outside working hours 0 leads to a voice message, opened as a consultation case."""
    outcome, record = await run_call(
        stack, [*menu("0"), *message(6), WaitForPrompt("goodbye", timeout=120)]
    )
    assert heard(outcome)[:4] == ["welcome", "main_menu", "after_hours", "beep"]
    assert "to_agent" not in outcome.prompts and outcome.agent is None
    [case] = await cases(stack)
    check_case(stack, case, "consultation", outcome)
    read_back(outcome, case.number)
    check_record(record, outcome)
    assert record.case_id == case.id and record.queue is None
    assert nodes(record)[2:] == [
        "agent_hours",
        "after_hours",
        "open_message",
        "read_case_number",
        "goodbye",
    ]


async def test_an_empty_recording_opens_no_case(stack: Stack) -> None:
    """# at once, twice: 'no message heard', then an agent; no case from an empty message."""
    outcome, record = await run_call(
        stack,
        [
            *menu("2"),
            WaitForPrompt(input=True, timeout=120),
            Press("#"),
            WaitForPrompt("message_empty", timeout=120),
            WaitForPrompt(input=True, timeout=120),
            Press("#"),
            WaitForAgent(timeout=600),
        ],
    )
    assert "message_empty" in outcome.prompts and "to_agent" in outcome.prompts
    assert await cases(stack) == []
    check_record(record, outcome)
    assert record.case_id is None and record.agent
    assert "open_complaint" not in nodes(record)


async def test_a_message_the_pbx_cannot_write_is_logged_and_the_caller_reaches_a_seat(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RECORD FILE answering (writefile) (a messages folder the PBX may not write) is no
    hang-up: an error names the file, the caller hears it cannot be taken and reaches a seat;
    no case opens."""
    caplog.set_level(logging.ERROR)
    config = stack.config
    day = config.gateway.data_dir / config.ivr.messages_dir / "2026" / "11" / "30"
    day.parent.mkdir(parents=True)
    day.symlink_to(unwritable_folder(tmp_path), target_is_directory=True)
    outcome, record = await run_call(stack, [*menu("2"), WaitForAgent(timeout=600)])
    assert heard(outcome)[:4] == ["welcome", "main_menu", "complaint_intro", "case_failed"]
    assert "beep" not in outcome.prompts and outcome.recordings == []
    assert outcome.agent and outcome.ended_by == "pbx"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"{day / outcome.uniqueid}-complaint-1.wav" in errors[0] and "writefile" in errors[0]
    assert await cases(stack) == []
    check_record(record, outcome)
    assert any(s.startswith("complaint:record_failed=") for s in record.ivr_path)
    assert nodes(record)[2:] == [
        "complaint", "record_failed", "record_failed_agent", "agent", "goodbye",
    ]  # fmt: skip


# -- hang-ups -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "last_node"),
    [
        ([WaitForPrompt("welcome"), HangUp()], "welcome"),
        ([WaitForPrompt("main_menu"), Silence(1), HangUp()], "main_menu"),
        (
            [*menu("4"), WaitForPrompt(input=True, timeout=120), Press("2026"), HangUp()],
            "status_number",
        ),
    ],
    ids=["welcome", "menu", "number_entry"],
)
async def test_hang_up_before_any_message_leaves_a_complete_record_and_no_case(
    stack: Stack, steps: list[Step], last_node: str
) -> None:
    """A caller who hangs up in the welcome, the menu or the number entry: one record, no case."""
    outcome, record = await run_call(stack, steps)
    assert outcome.ended_by == "caller"
    check_record(record, outcome)
    assert nodes(record)[-3:] == [last_node, "after_hangup", "ended"]
    assert any(s.startswith(f"{last_node}:caller_hangup=") for s in record.ivr_path)
    assert record.case_id is None and record.queue is None
    assert await cases(stack) == []


async def test_hang_up_while_recording_still_opens_the_case(stack: Stack) -> None:
    """A complaint cut short by the caller hanging up is kept as a case (the flow's on_hangup)."""
    outcome, record = await run_call(
        stack, [*menu("2"), WaitForPrompt(input=True, timeout=120), Speak(5), HangUp()]
    )
    assert outcome.ended_by == "caller"
    assert "case_opened" not in outcome.prompts
    [case] = await cases(stack)
    check_case(stack, case, "complaint", outcome)
    check_record(record, outcome)
    assert record.case_id == case.id
    assert nodes(record)[-4:] == ["complaint", "after_hangup", "late_complaint", "ended"]


@pytest.mark.parametrize("stack", [{"agents": 0}], indirect=True)
async def test_hang_up_in_the_queue_is_abandoned(stack: Stack) -> None:
    """A caller who gives up waiting in the queue: disposition ABANDONED, the wait recorded."""
    outcome, record = await run_call(
        stack, [*menu("0"), WaitForPrompt("to_agent"), WaitForAgent(timeout=30), HangUp()]
    )
    assert outcome.abandoned and outcome.agent is None
    check_record(record, outcome, disposition=ABANDONED)
    assert record.queue == "hotline" and record.agent is None
    assert record.queue_wait_s is not None and 20 <= record.queue_wait_s <= 60
    assert nodes(record)[-3:] == ["agent", "after_hangup", "ended"]
    assert await cases(stack) == []


@pytest.mark.parametrize("stack", [{"agents": 0}], indirect=True)
async def test_nobody_free_in_the_queue_a_voice_message_becomes_a_case(stack: Stack) -> None:
    """No agent answers within the queue's timeout: the caller leaves a message, a case opens."""
    outcome, record = await run_call(
        stack,
        [
            *menu("0"),
            WaitForPrompt("agents_busy", timeout=600),
            *message(6),
            WaitForPrompt("goodbye", timeout=120),
        ],
    )
    [case] = await cases(stack)
    check_case(stack, case, "consultation", outcome)
    read_back(outcome, case.number)
    check_record(record, outcome)
    assert record.case_id == case.id and record.queue == "hotline"
    assert nodes(record)[-5:] == [
        "agent", "agents_busy", "open_message", "read_case_number", "goodbye",
    ]  # fmt: skip


# -- load and faults ------------------------------------------------------------------


def _mix(index: int, rng: random.Random) -> list[Step]:
    """One of the hotline's kinds of caller, by turn."""
    talk = rng.uniform(3, 10)
    kinds: list[list[Step]] = [
        [*menu("1"), WaitForAgent(timeout=900)],
        [*menu("2"), *message(talk), WaitForPrompt("goodbye", timeout=300)],
        [*menu("3"), *message(talk), WaitForPrompt("goodbye", timeout=300)],
        [*menu("4"), WaitForPrompt(input=True, timeout=300), Press("209901019999#", gap=0.2),
         WaitForPrompt("status_next", timeout=300), HangUp()],
        [*menu("0"), WaitForAgent(timeout=900)],
        [*menu("9"), WaitForPrompt("main_menu", timeout=300), Press("0"), WaitForAgent(900)],
        [WaitForPrompt("main_menu", timeout=300), Silence(1), HangUp()],
        [*menu("2"), WaitForPrompt(input=True, timeout=300), Speak(talk), HangUp()],
    ]  # fmt: skip
    return kinds[index % len(kinds)]


@pytest.mark.parametrize(
    "stack",
    [{"speed": 25.0}, {"speed": 25.0, "agi": "fastagi"}],
    indirect=True,
    ids=["async", "fastagi"],
)
async def test_two_hundred_callers_at_once_each_get_one_complete_record(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """200 simultaneous callers of every kind: 200 complete inbound records, no error logged."""
    caplog.set_level(logging.WARNING)
    rng = random.Random(7)
    numbers = [f"+86139{i:08d}" for i in range(200)]
    calls = [
        stack.pbx.place_call(caller(_mix(i, rng), number, f"来电{i}"))
        for i, number in enumerate(numbers)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*(c.finished for c in calls)), 240)

    async def all_done() -> list[Any] | None:
        stored = await stack.store.calls.find(limit=1000)
        done = [s for s in stored if s.record.complete and s.record.ivr_path]
        return stored if len(done) == 200 else None

    stored = await until(all_done, 60)
    assert len(stored) == 200
    by_linkedid = {s.record.linkedid: s.record for s in stored}
    assert sorted(by_linkedid) == sorted(o.linkedid for o in outcomes)
    for i, outcome in enumerate(outcomes):
        record = by_linkedid[outcome.linkedid]
        check_record(record, outcome, ABANDONED if outcome.abandoned else ANSWERED, f"来电{i}")
    opened = await stack.store.cases.find(limit=1000)
    with_case = [r for r in by_linkedid.values() if r.case_id is not None]
    assert sorted(r.case_id for r in with_case) == sorted(c.id for c in opened)
    assert len({c.number for c in opened}) == len(opened)
    categories = [c.category for c in opened]
    assert categories.count("complaint") == 50 and categories.count("suggestion") == 25
    busy = [o for o in outcomes if "agents_busy" in o.prompts]
    assert categories.count("consultation") == len(busy)  # messages left when no one was free
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_link_dropped_mid_call_gives_one_complete_record(stack: Stack) -> None:
    """The AMI link drops while a caller is in the menu: the gateway reconnects and resyncs,
    the caller is handed back to the dialplan, and the call has exactly one complete record."""
    session = stack.app[PBX]["main"]
    call = stack.pbx.place_call(
        caller([WaitForPrompt("main_menu", timeout=120), WaitForAgent(timeout=900)])
    )
    await until(lambda: "main_menu" in call.outcome.prompts)
    connects = session.connects
    stack.pbx.faults.drop_connections()
    await until(lambda: session.connects > connects, 20)
    outcome = await asyncio.wait_for(call.finished, 30)
    assert outcome.agent  # back in the dialplan, the queue put them through
    record = await record_of(stack, outcome)
    stored = await stack.store.calls.find(caller=CALLER)
    assert [s.record.linkedid for s in stored] == [outcome.linkedid]
    check_record(record, outcome)
    assert record.note == NOTE_LINK_LOST
    assert record.ivr_path[:2] == ("welcome:enter=play", "main_menu:enter=menu")
    # the link dropping is not the caller hanging up
    assert any(step.startswith("main_menu:link_lost") for step in record.ivr_path)
    assert not any(":caller_hangup" in step for step in record.ivr_path)
