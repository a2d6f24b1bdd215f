"""AsyncAGI channels and Originate through the real session and the simulated PBX."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.ami.agi import AgiEnvironment
from gateway.ami.frames import Frame
from gateway.config import PbxSection
from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import (
    AgiCommandFailed,
    ChannelHungUp,
    ChannelLinkLost,
    OriginateOutcomeUnknown,
)
from gateway.pbx.session import AmiSession, OriginateOutcome
from gateway.sim.ami import (
    Answer,
    Busy,
    CallerScript,
    HangUp,
    NoAnswer,
    Press,
    Silence,
    SimCall,
    SimulatedPbx,
    Speak,
    Unreachable,
    WaitForAgent,
    WaitForPrompt,
)
from tests import pbx_support
from tests.folders import unwritable_folder
from tests.pbx_support import simulated_pbx


def section(pbx: SimulatedPbx, **changes: Any) -> PbxSection:
    """The shared test section, logging in with the MD5 challenge."""
    return pbx_support.section(pbx, **{"auth": "md5", **changes})


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    """A simulated Asterisk on a free loopback port, 100× faster than real time."""
    async for sim in simulated_pbx():
        yield sim


Handler = Callable[[AgiChannel], Awaitable[None]]


async def run_call(
    pbx: SimulatedPbx, handler: Handler, script: CallerScript, within: float = 5.0
) -> SimCall:
    """Connect, place one inbound call, and wait until the handler is done with it."""
    done = asyncio.Event()

    async def wrapped(channel: AgiChannel) -> None:
        try:
            await handler(channel)
        finally:
            done.set()

    async with AmiSession(section(pbx), agi_handler=wrapped) as session:
        await session.wait_connected(2)
        call = pbx.place_call(script)
        await asyncio.wait_for(done.wait(), within)
    return call


async def test_menu_on_a_live_channel(pbx: SimulatedPbx) -> None:
    """ANSWER, STREAM FILE, GET DATA and SET VARIABLE run in order; the pressed digit comes
    back from GET DATA; identity comes from the AGI environment, Chinese name intact."""
    got: dict[str, Any] = {}

    async def ivr(channel: AgiChannel) -> None:
        got["who"] = (channel.caller_number, channel.caller_name, channel.dialled_number)
        await channel.answer()
        got["welcome"] = await channel.stream_file("hotline/welcome")
        got["menu"] = await channel.get_data("hotline/menu", 3000, 1)
        await channel.set_variable("HOTLINE_CHOICE", got["menu"][0])
        got["silence"] = await channel.get_data("hotline/menu", 200, 1)
        await channel.hangup()
        await channel.hangup()  # a second hang-up is harmless

    script = CallerScript(
        caller="13800138000",
        caller_name="王芳",
        dialled="12345",
        steps=[WaitForPrompt(input=True), Press("2"), Silence(60)],
    )
    await run_call(pbx, ivr, script)
    assert got["who"] == ("13800138000", "王芳", "12345")
    assert got["welcome"] is None
    assert got["menu"] == ("2", False)
    assert got["silence"] == ("", True)


async def test_wait_for_digit_and_escape_digits(pbx: SimulatedPbx) -> None:
    """WAIT FOR DIGIT returns the key; STREAM FILE with escape digits returns the one pressed."""
    got: list[str | None] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        got.append(await channel.wait_for_digit(3000))
        got.append(await channel.stream_file("hotline/menu", "123#"))
        await channel.hangup()

    script = CallerScript(
        caller="13800138000",
        steps=[Silence(2), Press("7"), WaitForPrompt(name="menu"), Press("#"), Silence(60)],
    )
    await run_call(pbx, ivr, script)
    assert got == ["7", "#"]


async def test_caller_hangs_up_mid_menu(pbx: SimulatedPbx) -> None:
    """A caller who hangs up makes the pending command and every later one raise ChannelHungUp."""
    errors: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        try:
            await channel.get_data("hotline/menu", 30000, 4)
        except ChannelHungUp as exc:
            errors.append(f"pending: {exc.channel == channel.name}")
        for attempt in (channel.answer(), channel.stream_file("hotline/bye")):
            try:
                await attempt
            except ChannelHungUp:
                errors.append("later")
        assert channel.hung_up

    script = CallerScript(caller="13800138000", steps=[WaitForPrompt(input=True), HangUp()])
    await run_call(pbx, ivr, script)
    assert errors == ["pending: True", "later", "later"]


async def test_handler_errors_are_caught_and_the_call_released(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that raises is logged by the session; its call goes back to the dialplan."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    call_done: list[bool] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        call_done.append(True)
        raise RuntimeError("flow bug")

    async with AmiSession(section(pbx), agi_handler=ivr) as session:
        await session.wait_connected(2)
        call = pbx.place_call(CallerScript(caller="13800138000", steps=[Silence(30)]))
        async with asyncio.timeout(5):
            while "handed back to the dialplan" not in caplog.text:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert "flow bug" in caplog.text
        assert call_done == [True]
        async with asyncio.timeout(5):
            while session.agi.flows:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.wait_for(call.finished, 5)


async def test_unknown_command_is_agi_command_failed(pbx: SimulatedPbx) -> None:
    """An AGI command Asterisk does not know raises AgiCommandFailed with code 510."""
    failures: list[AgiCommandFailed] = []

    async def ivr(channel: AgiChannel) -> None:
        try:
            await channel.execute("FROBNICATE NOW")
        except AgiCommandFailed as exc:
            failures.append(exc)
        await channel.hangup()

    await run_call(pbx, ivr, CallerScript(caller="13800138000", steps=[Silence(30)]))
    assert [(f.code, f.command) for f in failures] == [(510, "FROBNICATE NOW")]


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        (Busy(), OriginateOutcome.BUSY),
        (NoAnswer(), OriginateOutcome.NO_ANSWER),
        (NoAnswer(ringing=False), OriginateOutcome.NO_ANSWER),
        (Unreachable(), OriginateOutcome.CONGESTION),
        (Unreachable(no_such_number=True), OriginateOutcome.NO_SUCH_NUMBER),
    ],
)
async def test_originate_failures(pbx: SimulatedPbx, behaviour: Any, outcome: Any) -> None:
    """An Originate the citizen does not answer reports busy / no answer / failure kinds."""
    pbx.set_citizen("13900000001", behaviour)
    async with AmiSession(section(pbx)) as session:
        result = await session.originate(
            "PJSIP/trunk/13900000001", "survey", "s", 1, '"Hotline" <12345>', 2000, {"CASE": "7"}
        )
    assert result.outcome is outcome
    assert not result.answered
    assert result.action_id


async def test_originate_answered_runs_the_survey_with_its_variables(pbx: SimulatedPbx) -> None:
    """An answered Originate reports ANSWERED, and its AsyncAGI channel sees the variables
    given at originate time."""
    pbx.set_citizen(
        "13900000002", Answer(steps=[WaitForPrompt(input=True), Press("1")], ring_seconds=0.5)
    )
    seen: dict[str, Any] = {}
    done = asyncio.Event()

    async def survey(channel: AgiChannel) -> None:
        seen["case"] = await channel.get_variable("CASE")
        seen["rating"] = await channel.get_data("survey/rate", 3000, 1)
        await channel.hangup()
        done.set()

    async with AmiSession(section(pbx), agi_handler=survey) as session:
        result = await session.originate(
            "PJSIP/trunk/13900000002", "survey", "s", 1, "", 5000, {"CASE": "42"}
        )
        await asyncio.wait_for(done.wait(), 5)
    assert result.outcome is OriginateOutcome.ANSWERED
    assert result.uniqueid
    assert seen == {"case": "42", "rating": ("1", False)}


async def test_originate_cut_off_is_unknown_and_the_call_still_knows_its_item(
    pbx: SimulatedPbx,
) -> None:
    """A link cut while an Originate rings raises OriginateOutcomeUnknown (not a failure);
    the call answered after the reconnect still reads its own variables with GET VARIABLE."""
    pbx.set_citizen(
        "13900000003", Answer(steps=[WaitForPrompt(input=True), Press("2")], ring_seconds=150)
    )
    seen: dict[str, Any] = {}
    done = asyncio.Event()

    async def survey(channel: AgiChannel) -> None:
        seen["item"] = await channel.get_variable("GW_ITEM")
        seen["call_id"] = await channel.get_variable("GATEWAY_CALL_ID")
        seen["rating"] = await channel.get_data("survey/rate", 3000, 1)
        await channel.hangup()
        done.set()

    async with AmiSession(section(pbx), agi_handler=survey) as session:
        await session.wait_connected(2)
        placing = asyncio.ensure_future(
            session.originate(
                "PJSIP/trunk/13900000003", "survey", "s", 1, "", 300000, {"GW_ITEM": "17"}
            )
        )
        async with asyncio.timeout(5):
            while not pbx.world.channels:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        pbx.faults.drop_connections()
        with pytest.raises(OriginateOutcomeUnknown) as lost:
            await asyncio.wait_for(placing, 5)
        assert lost.value.action_id.startswith("action/")
        await asyncio.wait_for(done.wait(), 10)
    assert seen == {"item": "17", "call_id": lost.value.action_id, "rating": ("2", False)}


async def test_originate_refuses_bad_arguments(pbx: SimulatedPbx) -> None:
    """A zero timeout or a variable name with '=' is refused before anything is sent."""
    async with AmiSession(section(pbx)) as session:
        with pytest.raises(ValueError, match="timeout_ms"):
            await session.originate("PJSIP/trunk/1", "survey", "s", timeout_ms=0)
        with pytest.raises(ValueError, match="variable"):
            await session.originate("PJSIP/trunk/1", "survey", "s", variables={"A=B": "1"})


async def test_hang_up_while_recording_returns_what_was_recorded(pbx: SimulatedPbx) -> None:
    """RECORD FILE ended by the caller hanging up gives its recording back (not ChannelHungUp);
    the commands after it raise ChannelHungUp."""
    got: list[Any] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        got.append(await channel.record_file("/tmp/never-written", timeout_ms=60000))
        try:
            await channel.stream_file("hotline/bye")
        except ChannelHungUp:
            got.append("later")

    script = CallerScript(
        caller="13800138000", steps=[WaitForPrompt(input=True), Speak(4), HangUp()]
    )
    await run_call(pbx, ivr, script)
    record, later = got
    assert record.ended_by == "hangup"
    assert 3000 <= record.duration_ms <= 6000
    assert later == "later"


async def test_environment_is_decoded_once_on_first_use(caplog: pytest.LogCaptureFixture) -> None:
    """The Env of AsyncAGIStart is parsed when first read, once; a bad one is logged then
    and the event's own headers stand in for it."""
    made: list[int] = []

    def make() -> AgiEnvironment:
        made.append(1)
        return AgiEnvironment(channel="PJSIP/trunk-1", uniqueid="1.1", callerid="13912345678")

    channel = AgiChannel(AmiSession(PbxSection()), make, channel="PJSIP/trunk-1")
    assert made == []
    assert channel.caller_number == "13912345678" and channel.env.uniqueid == "1.1"
    assert made == [1]

    session = AmiSession(PbxSection(name="east"))
    bad = Frame(
        {
            "Event": "AsyncAGIStart",
            "Channel": "PJSIP/trunk-2",
            "Env": "garbage%0A",
            "Uniqueid": "2.2",
            "CallerIDNum": "13800000000",
        }
    )
    lazy = AgiChannel(session, lambda: session.asyncagi.agi_env(bad, "PJSIP/trunk-2"))
    with caplog.at_level(logging.ERROR):
        assert lazy.env.uniqueid == "2.2" and lazy.caller_number == "13800000000"
    assert "bad Env" in caplog.text and "PJSIP/trunk-2" in caplog.text


async def test_queue_answering_minus_one_with_the_caller_up_is_returned(pbx: SimulatedPbx) -> None:
    """EXEC Queue answers -1 when the seat hangs up first; CHANNEL STATUS says the caller is
    still Up, so exec returns -1 (neither a failure nor a hang-up) and the call goes on."""
    got: list[Any] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        got.append(await channel.exec("Queue", "hotline,,,,180"))
        got.append(channel.hung_up)
        await channel.stream_file("hotline/goodbye")
        await channel.hangup()

    call = await run_call(pbx, ivr, CallerScript(caller="13800138000", steps=[WaitForAgent()]), 10)
    assert got == [-1, False]
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.agent and outcome.prompts[-1] == "goodbye" and outcome.ended_by == "pbx"


async def test_the_gateway_hangs_up_with_cause_16_and_names_itself(pbx: SimulatedPbx) -> None:
    """A call the gateway ends carries cause 16 Normal Clearing (not 0 Unknown) and the
    hang-up source 'gateway'."""
    ended: list[bool] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        await channel.hangup()
        ended.append(channel.hung_up)

    seen: list[str] = []
    pbx.world.sinks.append(lambda data, _category: seen.append(data.decode()))
    call = await run_call(pbx, ivr, CallerScript(caller="13800138000", steps=[Silence(30)]))
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.cause == 16 and outcome.ended_by == "pbx"
    assert ended == [True]
    assert any("Command: SET VARIABLE CHANNEL(hangupsource) gateway" in f for f in seen)
    hangup = next(f for f in seen if f.startswith("Event: Hangup\r\n"))
    assert "Cause: 16\r\nCause-txt: Normal Clearing" in hangup


async def test_a_recording_the_pbx_cannot_write_is_failed_and_logged_with_its_path(
    pbx: SimulatedPbx, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RECORD FILE answering (writefile) is a failed recording, logged as an error naming the
    file; the caller is still there. A written one names its file with the .wav extension."""
    target = str(unwritable_folder(tmp_path) / "msg-1")
    written = str(tmp_path / "msg-2")
    got: list[Any] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        got.append(await channel.record_file(target, timeout_ms=5000))
        got.append(channel.hung_up)
        got.append(await channel.record_file(written, timeout_ms=3000, silence_s=None))
        await channel.hangup()

    script = CallerScript(caller="13800138000", steps=[Silence(1), Speak(1), Silence(30)])
    with caplog.at_level(logging.ERROR, logger="gateway.pbx"):
        await run_call(pbx, ivr, script, 10)
    failed, hung_up, ok = got
    assert failed.failed and failed.duration_ms == 0 and not hung_up
    assert f"{target}.wav" in caplog.text and "writefile" in caplog.text
    assert not ok.failed and ok.file == f"{written}.wav"
    assert await asyncio.to_thread(Path(ok.file).is_file)


async def test_prompt_pieces_play_as_one_command(pbx: SimulatedPbx) -> None:
    """Several prompts play as one AGI command (EXEC Playback a&b&c), each heard in turn."""
    seen: list[str] = []
    pbx.world.sinks.append(lambda data, _category: seen.append(data.decode()))

    async def ivr(channel: AgiChannel) -> None:
        await channel.play(["hotline/case_number", "digits/yao", "digits/2", "hotline/remember"])
        await channel.hangup()

    call = await run_call(pbx, ivr, CallerScript(caller="13800138000", steps=[Silence(30)]))
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.prompts == ["case_number", "yao", "2", "remember"]
    commands = [f for f in seen if f.startswith("Event: AGIExecStart\r\n")]
    assert len(commands) == 3  # Playback, then the two of the hang-up
    assert (
        "Command: EXEC Playback hotline/case_number&digits/yao&digits/2&hotline/remember"
        in (commands[0])
    )


async def test_a_question_of_pieces_is_answered_from_any_piece(pbx: SimulatedPbx) -> None:
    """Several prompts then digits cost two AGI commands (EXEC Read, GET FULL VARIABLE), not
    one per prompt; a key pressed during an early piece answers at once; silence times out."""
    seen: list[str] = []
    pbx.world.sinks.append(lambda data, _category: seen.append(data.decode()))
    got: list[tuple[str, bool]] = []
    pieces = ["survey/you_on", "digits/1", "survey/at", "survey/rate"]

    async def ivr(channel: AgiChannel) -> None:
        got.append(await channel.read_digits(pieces, 3000, 1))
        got.append(await channel.read_digits(pieces, 300, 1))
        await channel.hangup()

    script = CallerScript(
        caller="13800138000", steps=[WaitForPrompt(name="1"), Press("2"), Silence(60)]
    )
    call = await run_call(pbx, ivr, script)
    assert got == [("2", False), ("", True)]
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.prompts[:2] == ["you_on", "1"] and outcome.prompts[2:] == [
        "you_on", "1", "at", "rate",
    ]  # fmt: skip
    commands = [f for f in seen if f.startswith("Event: AGIExecStart\r\n")]
    assert len(commands) == 6  # twice Read + GET FULL VARIABLE, then the hang-up's two


async def test_link_lost_is_not_a_caller_hang_up(pbx: SimulatedPbx) -> None:
    """The AMI link dropping fails the pending command and later ones with ChannelLinkLost
    (a ChannelHungUp that says the caller did not hang up)."""
    errors: list[type[Exception]] = []

    async def ivr(channel: AgiChannel) -> None:
        # the link drops while GET DATA waits for the caller
        asyncio.get_running_loop().call_later(0.05, pbx.faults.drop_connections)
        for attempt in (channel.get_data("hotline/menu", 60000, 4), channel.answer()):
            try:
                await attempt
            except ChannelHungUp as exc:
                errors.append(type(exc))
        assert channel.link_lost

    await run_call(pbx, ivr, CallerScript(caller="13800138000", steps=[Silence(600)]))
    assert errors == [ChannelLinkLost, ChannelLinkLost]
