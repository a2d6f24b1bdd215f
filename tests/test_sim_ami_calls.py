"""Scripted hotline calls driven by AsyncAGI over AMI, outbound Originate outcomes, queues."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from gateway.sim.ami import (
    Answer,
    Busy,
    CallerScript,
    CallOutcome,
    HangUp,
    NoAnswer,
    Press,
    Silence,
    SimCall,
    SimConfig,
    SimulatedPbx,
    Speak,
    Unreachable,
    WaitForAgent,
    WaitForPrompt,
)
from tests.folders import unwritable_folder
from tests.sim_ami_client import RawAmi


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[SimulatedPbx]:
    config = SimConfig(
        port=0,
        agents=1,
        time_scale=0.01,
        recordings_dir=tmp_path,
        ring_seconds=(1, 1),
        talk_seconds=(5, 5),
    )
    async with SimulatedPbx(config) as sim:
        yield sim


@pytest.fixture
async def ami(pbx: SimulatedPbx) -> AsyncIterator[RawAmi]:
    client = await RawAmi.connect(pbx.port)
    await client.login()
    yield client
    await client.close()


async def hang_up(ami: RawAmi, call: SimCall) -> CallOutcome:
    """Hang the call up over AMI and wait for the caller's outcome."""
    await ami.action("Hangup", ("Channel", call.channel))
    return await asyncio.wait_for(call.finished, 5)


async def quiet_call(ami: RawAmi, pbx: SimulatedPbx) -> SimCall:
    """A caller who stays on the line saying nothing, once the call is in AsyncAGI."""
    call = pbx.place_call(CallerScript(caller="+8613912345678", steps=[Silence(60)]))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    return call


def env(frame: dict[str, str]) -> dict[str, str]:
    text = unquote(frame["Env"])
    return dict(line.split(": ", 1) for line in text.splitlines() if line)


async def test_inbound_call_starts_async_agi_with_the_agi_environment(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """A call enters the hotline: Newchannel, Answer, AsyncAGIStart with URL-encoded Env."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", caller_name="张三", dialled="9600110")
    )
    new = await ami.event("Newchannel", Channel=call.channel)
    assert new["ChannelState"] == "4" and new["Context"] == "hotline" and new["Exten"] == "9600110"
    assert new["Uniqueid"] == new["Linkedid"] == call.uniqueid
    start = await ami.event("AsyncAGIStart", Channel=call.channel)
    assert start["Privilege"] == "agi,all" and start["ChannelState"] == "6"
    values = env(start)
    assert list(values)[:6] == [
        "agi_request",
        "agi_channel",
        "agi_language",
        "agi_type",
        "agi_uniqueid",
        "agi_version",
    ]
    assert values["agi_channel"] == call.channel and values["agi_type"] == "PJSIP"
    assert values["agi_calleridname"] == "张三" and values["agi_dnid"] == "9600110"
    assert start["Env"].endswith("%0A%0A")
    await hang_up(ami, call)


async def test_wait_for_digit_returns_the_ascii_code_url_encoded(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """The caller presses 1 during WAIT FOR DIGIT: Result 200%20result%3D49%0A."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", steps=[WaitForPrompt(input=True), Press("1")])
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    result = await ami.agi(call.channel, "WAIT FOR DIGIT 5000", "c1")
    assert result["Result"] == "200%20result%3D49%0A"
    assert list(result)[-2:] == ["Result", "CommandId"]
    dtmf = await ami.event("DTMFEnd", Channel=call.channel)
    assert dtmf["Digit"] == "1" and dtmf["DurationMs"] == "100" and dtmf["Direction"] == "Received"
    timeout = await ami.agi(call.channel, "WAIT FOR DIGIT 100", "c2")
    assert timeout["Result"] == "200%20result%3D0%0A"
    brk = await ami.agi(call.channel, "ASYNCAGI BREAK", "c3")
    assert brk["Result"] == "200%20result%3D0%0A"
    await ami.event("AsyncAGIEnd", Channel=call.channel)
    outcome = await hang_up(ami, call)
    assert outcome.keys == "1"


async def test_get_data_collects_digits_and_reports_timeout(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """GET DATA returns the digits pressed; silence gives 'result= (timeout)'."""
    call = pbx.place_call(
        CallerScript(
            caller="+8613912345678",
            steps=[
                WaitForPrompt(name="menu"),
                Press("12#"),
                WaitForPrompt(name="again"),
                Silence(30),
            ],
        )
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    got = await ami.agi(call.channel, "GET DATA menu 3000 4", "g1")
    assert unquote(got["Result"]) == "200 result=12\n"
    silent = await ami.agi(call.channel, "GET DATA again 500 4", "g2")
    assert unquote(silent["Result"]) == "200 result= (timeout)\n"
    outcome = await hang_up(ami, call)
    assert outcome.prompts == ["menu", "again"]


async def test_digit_pressed_while_nobody_listens_is_lost(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """A key pressed during STREAM FILE without escape digits never reaches the IVR."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", steps=[WaitForPrompt(name="welcome"), Press("5")])
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    played = await ami.agi(call.channel, 'STREAM FILE welcome ""', "s1")
    assert unquote(played["Result"]).startswith("200 result=0 endpos=")
    await ami.event("DTMFEnd", Channel=call.channel, Digit="5")
    waited = await ami.agi(call.channel, "WAIT FOR DIGIT 200", "s2")
    assert unquote(waited["Result"]) == "200 result=0\n"
    await hang_up(ami, call)


async def test_stream_file_interrupted_by_an_escape_digit(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """STREAM FILE with escape digits returns the digit pressed (ascii) and the endpos."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", steps=[WaitForPrompt(input=True), Press("9")])
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    played = await ami.agi(call.channel, "STREAM FILE long-menu 0123456789", "s1")
    assert unquote(played["Result"]).startswith("200 result=57 endpos=")
    await hang_up(ami, call)


async def test_record_file_writes_a_wav_of_the_callers_speech(
    ami: RawAmi, pbx: SimulatedPbx, tmp_path: Path
) -> None:
    """RECORD FILE with BEEP and s=2 ends on silence after the caller spoke; the WAV exists."""
    call = pbx.place_call(
        CallerScript(
            caller="+8613912345678",
            steps=[WaitForPrompt(input=True), Speak(3.0), Silence(5), Press("#")],
        )
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    target = tmp_path / "msg-1"
    rec = await ami.agi(
        call.channel, f"RECORD FILE {target} wav # 20000 BEEP s=2", "r1", timeout=10
    )
    text = unquote(rec["Result"])
    assert text.startswith("200 result=0 (timeout) endpos=")
    endpos = int(text.rsplit("=", 1)[1])
    assert 3.0 * 8000 <= endpos <= 5.5 * 8000
    with wave.open(str(target) + ".wav", "rb") as wav:
        assert wav.getframerate() == 8000 and wav.getnchannels() == 1
        assert wav.getnframes() == endpos
    outcome = await hang_up(ami, call)
    assert outcome.prompts == ["beep"] and outcome.recordings == [str(target) + ".wav"]


async def test_record_file_ends_on_silence_even_if_nothing_was_said(
    ami: RawAmi, pbx: SimulatedPbx, tmp_path: Path
) -> None:
    """As in Asterisk, s=2 ends a recording after 2 s of silence from its start."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", steps=[WaitForPrompt(input=True), Silence(30)])
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    target = tmp_path / "msg-silent"
    rec = await ami.agi(call.channel, f"RECORD FILE {target} wav # 20000 s=2", "r1", timeout=10)
    text = unquote(rec["Result"])
    assert text.startswith("200 result=0 (timeout) endpos=")
    assert int(text.rsplit("=", 1)[1]) <= 1.5 * 8000  # the trailing silence is trimmed
    await hang_up(ami, call)


async def test_record_file_stops_on_the_escape_digit(
    ami: RawAmi, pbx: SimulatedPbx, tmp_path: Path
) -> None:
    """Pressing # during RECORD FILE ends it with result=35 (dtmf)."""
    call = pbx.place_call(
        CallerScript(
            caller="+8613912345678", steps=[WaitForPrompt(input=True), Speak(2.0), Press("#")]
        )
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    rec = await ami.agi(call.channel, f"RECORD FILE {tmp_path / 'm2'} wav # -1", "r1", timeout=10)
    assert unquote(rec["Result"]).startswith("200 result=35 (dtmf) endpos=")
    await hang_up(ami, call)


async def test_record_file_into_a_folder_it_cannot_write_answers_writefile(
    ami: RawAmi, pbx: SimulatedPbx, tmp_path: Path
) -> None:
    """As Asterisk: RECORD FILE opens its file first; a folder it may not write answers
    result=-1 (writefile) at once (no beep), and the caller is still there."""
    call = await quiet_call(ami, pbx)
    target = unwritable_folder(tmp_path) / "msg-1"
    rec = await ami.agi(call.channel, f"RECORD FILE {target} wav # 20000 BEEP s=2", "w1")
    assert unquote(rec["Result"]) == "200 result=-1 (writefile)\n"
    status = await ami.agi(call.channel, "CHANNEL STATUS", "w2")
    assert unquote(status["Result"]) == "200 result=6\n"
    outcome = await hang_up(ami, call)
    assert outcome.prompts == [] and outcome.recordings == []


async def test_agi_file_commands_take_one_file_and_playback_joins_them(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """As Asterisk: STREAM FILE and GET DATA open 'a&b' as one (missing) file and answer -1;
    EXEC Playback plays a&b&c as one command, each file in turn."""
    call = await quiet_call(ami, pbx)
    streamed = await ami.agi(call.channel, "STREAM FILE hotline/a&hotline/b 12", "p1")
    assert unquote(streamed["Result"]) == "200 result=-1 endpos=0\n"
    got = await ami.agi(call.channel, "GET DATA hotline/a&hotline/b 2000 1", "p2")
    assert unquote(got["Result"]) == "200 result=-1\n"
    assert call.outcome.prompts == []
    played = await ami.agi(call.channel, "EXEC Playback digits/1&digits/2&hotline/bye", "p3")
    assert unquote(played["Result"]) == "200 result=0\n"
    assert call.outcome.prompts == ["1", "2", "bye"]
    assert len(ami.events("AGIExecStart")) == 3  # one command each
    await hang_up(ami, call)


async def test_read_plays_joined_files_interruptible_and_sets_readstatus(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """EXEC Read plays a&b&c as one command; a key during any file answers it; the digits
    and READSTATUS come back with GET FULL VARIABLE. Silence gives TIMEOUT."""
    call = pbx.place_call(
        CallerScript(
            caller="+8613912345678",
            steps=[WaitForPrompt(name="b"), Press("3"), Press("#"), Silence(60)],
        )
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    read = await ami.agi(call.channel, "EXEC Read KEYS,menu/a&menu/b&menu/c,4,,1,3", "r1")
    assert unquote(read["Result"]) == "200 result=0\n"
    got = await ami.agi(call.channel, "GET FULL VARIABLE ${KEYS},${READSTATUS}", "r2")
    assert unquote(got["Result"]) == "200 result=1 (3,OK)\n"
    assert call.outcome.prompts == ["a", "b"]  # c never played: the key answered
    await ami.agi(call.channel, "EXEC Read KEYS,menu/d&menu/e,1,,1,0.5", "r3")
    got = await ami.agi(call.channel, "GET FULL VARIABLE ${KEYS},${READSTATUS}", "r4")
    assert unquote(got["Result"]) == "200 result=1 (,TIMEOUT)\n"
    assert call.outcome.prompts == ["a", "b", "d", "e"]
    await hang_up(ami, call)


async def test_hangup_application_carries_its_cause(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """EXEC Hangup 16 answers -1 and hangs up with cause 16 Normal Clearing (AGI's own
    HANGUP leaves cause 0 Unknown); a dialplan function set by SET VARIABLE is no VarSet."""
    call = await quiet_call(ami, pbx)
    set_source = await ami.agi(call.channel, "SET VARIABLE CHANNEL(hangupsource) gateway", "h1")
    assert unquote(set_source["Result"]) == "200 result=1\n"
    source = await ami.agi(call.channel, "GET VARIABLE CHANNEL(hangupsource)", "h2")
    assert unquote(source["Result"]) == "200 result=1 (gateway)\n"
    assert not [f for f in ami.events("VarSet") if "(" in f.get("Variable", "")]
    res = await ami.agi(call.channel, "EXEC Hangup 16", "h3")
    assert unquote(res["Result"]) == "200 result=-1\n"
    soft = await ami.event("SoftHangupRequest", Channel=call.channel)
    assert soft["Cause"] == "32"
    hangup = await ami.event("Hangup", Channel=call.channel)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("16", "Normal Clearing")
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "pbx" and outcome.cause == 16


async def test_commands_are_picked_up_on_the_async_agi_poll(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """As res_agi: a command sent after the previous result starts on the next poll, at least
    100 ms (simulated) later; one already queued when a result is sent starts at once."""
    emitted: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    pbx.world.sinks.append(lambda data, _category: emitted.append((loop.time(), data)))

    def at(event: str, command_id: str | None = None) -> float:
        for when, data in emitted:
            text = data.decode()
            if f"Event: {event}\r\n" in text and (
                command_id is None or f"CommandId: {command_id}\r\n" in text
            ):
                return when
        raise AssertionError(f"no {event} {command_id or ''}")

    def starts(command: str) -> list[float]:
        return [
            w
            for w, d in emitted
            if b"AGIExecStart" in d and f"Command: {command}\r\n".encode() in d
        ]

    call = await quiet_call(ami, pbx)
    await ami.agi(call.channel, "ANSWER", "c1")
    await ami.agi(call.channel, "NOOP", "c2")
    # queued back to back: the second waits in the queue while the first plays
    ami.send(
        "AGI",
        ("Channel", call.channel),
        ("Command", 'STREAM FILE hotline/x ""'),
        ("CommandID", "c3"),
    )
    ami.send("AGI", ("Channel", call.channel), ("Command", "VERBOSE queued 1"), ("CommandID", "c4"))
    await ami.event("AsyncAGIExec", CommandId="c4")
    scale = pbx.config.time_scale
    poll = 0.1 - 1e-6
    assert (starts("ANSWER")[0] - at("AsyncAGIStart")) / scale >= poll
    assert (starts("NOOP")[0] - at("AsyncAGIExec", "c1")) / scale >= poll
    # already queued: taken at once, the very next thing the PBX does after c3's result
    follows = [w for w, _ in emitted].index(at("AsyncAGIExec", "c3")) + 1
    assert emitted[follows][0] == starts("VERBOSE queued 1")[0]
    await hang_up(ami, call)


async def test_variables_set_and_get(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """SET VARIABLE emits VarSet and GET VARIABLE reads it back as 'result=1 (value)'."""
    call = pbx.place_call(CallerScript(caller="+8613912345678"))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    setv = await ami.agi(call.channel, 'SET VARIABLE CASE_ID "A 42"', "v1")
    assert unquote(setv["Result"]) == "200 result=1\n"
    varset = await ami.event("VarSet", Channel=call.channel, Variable="CASE_ID")
    assert varset["Value"] == "A 42"
    getv = await ami.agi(call.channel, "GET VARIABLE CASE_ID", "v2")
    assert unquote(getv["Result"]) == "200 result=1 (A 42)\n"
    chan = await ami.agi(call.channel, "GET VARIABLE CHANNEL", "v3")
    assert unquote(chan["Result"]) == f"200 result=1 ({call.channel})\n"
    missing = await ami.agi(call.channel, "GET VARIABLE NOPE", "v4")
    assert unquote(missing["Result"]) == "200 result=0\n"
    await hang_up(ami, call)


async def test_unknown_agi_command_and_bad_usage(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """An unknown AGI command gives 510; a malformed one 520 with the usage."""
    call = pbx.place_call(CallerScript(caller="+8613912345678"))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    unknown = await ami.agi(call.channel, "DANCE WILDLY", "u1")
    assert unquote(unknown["Result"]) == "510 Invalid or unknown command\n"
    bad = await ami.agi(call.channel, "WAIT FOR DIGIT", "u2")
    assert unquote(bad["Result"]).startswith("520-Invalid command syntax.  Proper usage follows:\n")
    end = await ami.event("AGIExecEnd", Channel=call.channel, Command="WAIT FOR DIGIT")
    assert end["ResultCode"] == "520" and end["Result"] == "Usage"
    await hang_up(ami, call)


async def test_caller_hangup_during_a_command_returns_minus_one(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """The caller hangs up during GET DATA: result=-1, AsyncAGIEnd, Hangup 16; later AGI refused."""
    call = pbx.place_call(CallerScript(caller="+8613912345678", steps=[WaitForPrompt(), HangUp()]))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    got = await ami.agi(call.channel, "GET DATA menu 5000 1", "h1")
    assert unquote(got["Result"]) == "200 result=-1\n"
    await ami.event("AsyncAGIEnd", Channel=call.channel)
    hangup = await ami.event("Hangup", Channel=call.channel)
    assert hangup["Cause"] == "16" and hangup["Cause-txt"] == "Normal Clearing"
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "caller"
    late = await ami.action(
        "AGI", ("Channel", call.channel), ("Command", "ANSWER"), ("CommandID", "z")
    )
    assert late["Message"] == f"Channel {call.channel} does not exist."
    cdr = await ami.event("Cdr", Channel=call.channel)
    assert cdr["Disposition"] == "ANSWERED" and cdr["UniqueID"] == call.uniqueid


async def test_agi_hangup_ends_the_call(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """AGI HANGUP answers result=1 then the channel hangs up."""
    call = pbx.place_call(CallerScript(caller="+8613912345678"))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    res = await ami.agi(call.channel, "HANGUP", "x1")
    assert unquote(res["Result"]) == "200 result=1\n"
    await ami.event("Hangup", Channel=call.channel)
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "pbx"


async def test_break_sends_the_call_to_an_agent(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """After ASYNCAGI BREAK the call queues: join, agent called/connect/complete, leave."""
    call = pbx.place_call(
        CallerScript(caller="+8613912345678", caller_name="张三", steps=[WaitForAgent()])
    )
    await ami.event("AsyncAGIStart", Channel=call.channel)
    await ami.agi(call.channel, "ASYNCAGI BREAK", "b1")
    join = await ami.event("QueueCallerJoin", Channel=call.channel)
    assert join["Queue"] == "hotline" and join["Position"] == "1"
    await ami.event("AgentCalled", Channel=call.channel)
    connect = await ami.event("AgentConnect", Channel=call.channel)
    assert connect["MemberName"] == "Seat 01" and connect["Interface"] == "PJSIP/seat01"
    assert connect["DestLinkedid"] == call.linkedid
    leave = await ami.event("QueueCallerLeave", Channel=call.channel)
    assert leave["Count"] == "0"
    complete = await ami.event("AgentComplete", Channel=call.channel)
    assert complete["Reason"] == "agent" and complete["TalkTime"] in ("4", "5", "6")
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.agent == "Seat 01" and outcome.queue == "hotline" and not outcome.abandoned


async def test_seat_hanging_up_first_leaves_the_caller_up_and_queue_answers_minus_one(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """As Asterisk 22: EXEC Queue answers 200 result=-1 when the seat hangs up first, the
    caller's channel still Up (CHANNEL STATUS 6) and still taking commands."""
    call = pbx.place_call(CallerScript(caller="+8613912345678", steps=[WaitForAgent()]))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    res = await ami.agi(call.channel, "EXEC Queue hotline,,,,180", "q1", timeout=10)
    assert unquote(res["Result"]) == "200 result=-1\n"
    complete = await ami.event("AgentComplete", Channel=call.channel)
    assert complete["Reason"] == "agent"
    assert not [f for f in ami.events("Hangup") if f["Channel"] == call.channel]
    status = await ami.agi(call.channel, "CHANNEL STATUS", "q2")
    assert unquote(status["Result"]) == "200 result=6\n"
    await ami.agi(call.channel, 'STREAM FILE hotline/goodbye ""', "q3")
    assert call.outcome.prompts[-1] == "goodbye" and call.outcome.agent == "Seat 01"
    await ami.agi(call.channel, "HANGUP", "q4")
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "pbx"


async def test_caller_abandons_while_the_only_agent_is_busy(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """With the single seat busy, a second caller who hangs up abandons the queue."""
    first = pbx.place_call(CallerScript(caller="+8613900000001", steps=[WaitForAgent()]))
    second = pbx.place_call(CallerScript(caller="+8613900000002", steps=[Silence(600)]))
    for call in (first, second):
        await ami.event("AsyncAGIStart", Channel=call.channel)
    await ami.agi(first.channel, "ASYNCAGI BREAK", "a1")
    await ami.event("AgentConnect", Channel=first.channel)
    ami.send("AGI", ("Channel", second.channel), ("Command", "EXEC Queue hotline"),
             ("CommandID", "a2"))  # fmt: skip
    await ami.event("QueueCallerJoin", Channel=second.channel)
    # the caller gives up while the only seat talks to the first one
    pbx.world.request_hangup(
        pbx.world.channels[second.channel], cause=16, soft=False, by_caller=True
    )
    left = await ami.event("AsyncAGIExec", CommandId="a2")
    assert unquote(left["Result"]) == "200 result=-1\n"
    abandon = await ami.event("QueueCallerAbandon", Channel=second.channel)
    assert abandon["Queue"] == "hotline" and abandon["OriginalPosition"] == "1"
    outcome = await asyncio.wait_for(second.finished, 5)
    assert outcome.abandoned and outcome.agent is None
    await asyncio.wait_for(first.finished, 5)


async def test_queue_timeout_leaves_the_queue_and_goes_on(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """EXEC Queue with a timeout: nobody free by then, the caller leaves (no abandon),
    QUEUESTATUS is TIMEOUT and EXEC returns 0 so the IVR goes on."""
    first = pbx.place_call(CallerScript(caller="+8613900000001", steps=[WaitForAgent()]))
    second = pbx.place_call(CallerScript(caller="+8613900000002", steps=[Silence(600)]))
    for call in (first, second):
        await ami.event("AsyncAGIStart", Channel=call.channel)
    await ami.agi(first.channel, "ASYNCAGI BREAK", "t1")
    await ami.event("AgentConnect", Channel=first.channel)
    res = await ami.agi(second.channel, "EXEC Queue hotline,,,,3", "t2")
    assert unquote(res["Result"]) == "200 result=0\n"
    leave = await ami.event("QueueCallerLeave", Channel=second.channel)
    assert leave["Queue"] == "hotline" and leave["Count"] == "0"
    status = await ami.agi(second.channel, "GET VARIABLE QUEUESTATUS", "t3")
    assert unquote(status["Result"]) == "200 result=1 (TIMEOUT)\n"
    assert not ami.events("QueueCallerAbandon")
    assert second.outcome.agent is None and not second.outcome.abandoned
    await ami.agi(second.channel, "HANGUP", "t4")
    await asyncio.wait_for(second.finished, 5)
    await asyncio.wait_for(first.finished, 5)


@pytest.mark.parametrize(
    ("behaviour", "reason", "cause"),
    [
        (Busy(), "5", "17"),
        (NoAnswer(), "3", "19"),
        (NoAnswer(ringing=False), "1", "18"),
        (Unreachable(), "8", "34"),
        (Unreachable(no_such_number=True), "0", "1"),
    ],
)
async def test_originate_failures_report_each_reason(
    ami: RawAmi, pbx: SimulatedPbx, behaviour: object, reason: str, cause: str
) -> None:
    """A citizen who does not answer gives OriginateResponse Failure with the right Reason."""
    pbx.set_citizen("+8613911112222", behaviour)  # type: ignore[arg-type]
    reply = await ami.action(
        "Originate",
        ("Channel", "PJSIP/13911112222@trunk"),
        ("Context", "survey"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("Async", "true"),
        ("CallerID", '"Hotline" <9600110>'),
    )
    assert reply["Message"] == "Originate successfully queued"
    event = await ami.event("OriginateResponse", ActionID=reply["ActionID"])
    assert event["Response"] == "Failure" and event["Reason"] == reason
    assert event["Channel"] == "PJSIP/13911112222@trunk" and event["Uniqueid"] == "<null>"
    (call,) = pbx.calls_to("13911112222")
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.reason == int(reason) and str(outcome.cause) == cause
    hangup = await ami.event("Hangup", Channel=call.channel)
    assert hangup["Cause"] == cause


async def test_originate_answered_runs_async_agi_with_the_variables(
    ami: RawAmi, pbx: SimulatedPbx
) -> None:
    """An answering citizen: AsyncAGIStart on the new channel, OriginateResponse Success Reason 4,
    the Originate's Variable visible to GET VARIABLE."""
    pbx.set_citizen(
        "+8613911113333", Answer(steps=[WaitForPrompt(input=True), Press("1")], ring_seconds=1)
    )
    reply = await ami.action(
        "Originate",
        ("Channel", "PJSIP/13911113333@trunk"),
        ("Context", "survey"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("Async", "true"),
        ("Variable", "SURVEY_ID=77"),
        ("Variable", "ITEM=3"),
    )
    start = await ami.event("AsyncAGIStart")
    assert start["Context"] == "survey"
    event = await ami.event("OriginateResponse", ActionID=reply["ActionID"])
    assert event["Response"] == "Success" and event["Reason"] == "4"
    assert event["Channel"] == start["Channel"] and event["Uniqueid"] == start["Uniqueid"]
    channel = start["Channel"]
    var = await ami.agi(channel, "GET VARIABLE SURVEY_ID", "o1")
    assert unquote(var["Result"]) == "200 result=1 (77)\n"
    digit = await ami.agi(channel, "GET DATA rate-us 3000 1", "o2")
    assert unquote(digit["Result"]) == "200 result=1\n"
    await ami.agi(channel, "HANGUP", "o3")
    (call,) = pbx.calls_to("+8613911113333")
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.answered and outcome.reason == 4 and outcome.keys == "1"


async def test_originate_without_priority_is_refused_like_asterisk(ami: RawAmi) -> None:
    """Originate to an Exten needs Context and Priority; a missing Channel is refused."""
    reply = await ami.action(
        "Originate",
        ("Channel", "PJSIP/1@trunk"),
        ("Context", "survey"),
        ("Exten", "s"),
        ("Async", "true"),
    )
    assert reply["Message"] == "Originate with 'Exten' requires 'Context' and 'Priority'"
    reply = await ami.action("Originate", ("Context", "survey"), ("Exten", "s"), ("Priority", "1"))
    assert reply["Message"] == "Channel not specified"
