"""The simulator's frames have the header names and order of the recorded Asterisk 22 frames."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from gateway.ami.frames import Frame, iter_frames
from gateway.sim.ami import (
    Busy,
    CallerScript,
    HangUp,
    Press,
    SimConfig,
    SimulatedPbx,
    WaitForAgent,
    WaitForPrompt,
)
from tests.sim_ami_client import RawAmi


def kind(frame: Frame) -> str:
    """Event name, or response plus its message (channel names blanked) or first own header."""
    if "Event" in frame:
        return "E:" + frame["Event"]
    message = frame.get("Message")
    if message is None:
        own = [k for k in frame if k not in ("Response", "ActionID")]
        return f"R:{frame['Response']}:[{own[0] if own else ''}]"
    return f"R:{frame['Response']}:" + re.sub(r"\S*/\S*;?\S*", "<x>", message)


def shapes(frames: list[Frame]) -> dict[str, set[tuple[str, ...]]]:
    out: dict[str, set[tuple[str, ...]]] = {}
    for frame in frames:
        out.setdefault(kind(frame), set()).add(tuple(frame))
    return out


def recorded(folder: Path) -> dict[str, set[tuple[str, ...]]]:
    frames: list[Frame] = []
    for path in sorted(folder.glob("*.rx.txt")):
        frames += [f for f in iter_frames(path.read_bytes()) if isinstance(f, Frame)]
    return shapes(frames)


async def run_scenario(pbx: SimulatedPbx) -> list[Frame]:
    ami = await RawAmi.connect(pbx.port)
    try:
        await ami.login()
        await ami.action("Ping")
        await ami.action("Command", ("Command", "core show version"))
        await ami.action("NoSuchAction")
        await ami.action(
            "AGI", ("Channel", "Local/nope-00000000;1"), ("Command", "ANSWER"), ("CommandID", "x")
        )
        await ami.action(
            "QueueAdd",
            ("Queue", "hotline"),
            ("Interface", "PJSIP/extra"),
            ("MemberName", "Extra"),
            ("Penalty", "0"),
            ("Paused", "true"),
        )
        await ami.action("QueueStatus", ("Queue", "hotline"))
        await ami.action("QueueSummary", ("Queue", "hotline"))
        await ami.action("QueueRemove", ("Queue", "hotline"), ("Interface", "PJSIP/extra"))
        call = pbx.place_call(
            CallerScript(
                caller="5551234",
                caller_name="Sim Caller",
                steps=[
                    WaitForPrompt(input=True),
                    Press("1"),
                    WaitForPrompt(input=True),
                    Press("2"),
                    WaitForAgent(),
                ],
            )
        )
        await ami.event("AsyncAGIStart", Channel=call.channel)
        await ami.agi(call.channel, "ANSWER", "c0")
        await ami.agi(call.channel, "WAIT FOR DIGIT 5000", "c1")
        await ami.agi(call.channel, "GET DATA beep 5000 1", "c2")
        await ami.agi(call.channel, "GET VARIABLE CHANNEL", "c3")
        await ami.agi(call.channel, "ASYNCAGI BREAK", "c4")
        await ami.event("AgentConnect", Channel=call.channel)
        await ami.action(
            "MixMonitor",
            ("Channel", call.channel),
            ("File", "/var/spool/asterisk/monitor/rec.wav"),
            ("Options", "b"),
        )
        await ami.action("CoreShowChannels")
        await asyncio.wait_for(call.finished, 5)
        pbx.set_citizen("5550001", Busy())
        aid = ami.send(
            "Originate",
            ("Channel", "PJSIP/5550001@trunk"),
            ("Context", "survey"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Async", "true"),
        )
        await ami.event("OriginateResponse", ActionID=aid)
        aid = ami.send(
            "Originate",
            ("Channel", "PJSIP/5550002@trunk"),
            ("Context", "survey"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Async", "true"),
            ("CallerID", '"Queue Caller" <5550001>'),
            ("Variable", "FOO=bar"),
        )
        await ami.event("OriginateResponse", ActionID=aid)
        start = await ami.event("AsyncAGIStart", Context="survey")
        await ami.agi(start["Channel"], "HANGUP", "h1")
        await ami.event("Cdr", Channel=start["Channel"])
        hang = pbx.place_call(CallerScript(caller="5551235", steps=[WaitForPrompt(), HangUp()]))
        await ami.event("AsyncAGIStart", Channel=hang.channel)
        await ami.agi(hang.channel, 'STREAM FILE hello ""', "s1")
        await asyncio.wait_for(hang.finished, 5)
        await ami.action("Logoff")
        return list(ami.frames)
    finally:
        await ami.close()


async def test_every_shared_frame_type_has_the_recorded_header_order(transcripts: Path) -> None:
    """For each event and response both produce, the simulator's headers are a recorded shape."""
    expected = recorded(transcripts)
    config = SimConfig(port=0, agents=1, time_scale=0.01, ring_seconds=(1, 1), talk_seconds=(2, 2))
    async with SimulatedPbx(config) as pbx:
        produced = shapes(await run_scenario(pbx))
    shared = sorted(set(expected) & set(produced))
    mismatches = {k: sorted(produced[k] - expected[k]) for k in shared if produced[k] - expected[k]}
    assert not mismatches, mismatches
    must_cover = {
        "E:Newchannel",
        "E:Newstate",
        "E:Newexten",
        "E:VarSet",
        "E:DTMFBegin",
        "E:DTMFEnd",
        "E:AsyncAGIStart",
        "E:AsyncAGIExec",
        "E:AsyncAGIEnd",
        "E:AGIExecStart",
        "E:AGIExecEnd",
        "E:SoftHangupRequest",
        "E:HangupRequest",
        "E:Hangup",
        "E:Cdr",
        "E:QueueCallerJoin",
        "E:QueueCallerLeave",
        "E:AgentCalled",
        "E:AgentConnect",
        "E:AgentComplete",
        "E:QueueMemberStatus",
        "E:QueueMemberAdded",
        "E:QueueMemberRemoved",
        "E:DialBegin",
        "E:DialEnd",
        "E:MixMonitorStart",
        "E:OriginateResponse",
        "E:CoreShowChannel",
        "E:CoreShowChannelsComplete",
        "E:QueueParams",
        "E:QueueMember",
        "E:QueueStatusComplete",
        "E:FullyBooted",
        "E:SuccessfulAuth",
        "E:RequestBadFormat",
        "E:BridgeCreate",
        "E:BridgeEnter",
        "E:BridgeLeave",
        "E:BridgeDestroy",
        "E:QueueSummary",
        "E:QueueSummaryComplete",
        "R:Success:Authentication accepted",
        "R:Success:Command output follows",
        "R:Success:Added AGI command to queue",
        "R:Success:Originate successfully queued",
        "R:Goodbye:Thanks for all the fish.",
        "R:Success:Queue status will follow",
        "R:Success:Channels will follow",
        "R:Success:[Ping]",
        "R:Success:[]",
        "R:Success:Added interface to queue",
        "R:Success:Removed interface from queue",
    }
    assert must_cover <= set(shared), sorted(must_cover - set(shared))
    unknown_channel = "R:Error:Channel <x> does not exist."
    invalid = (
        "R:Error:<x> command: NoSuchAction. Use Action: ListCommands to show available commands."
    )
    assert {unknown_channel, invalid} <= set(shared)
