"""The simulated PBX's Cdr and CEL events against what a real Asterisk 22 sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.ami.frames import Frame, iter_frames
from gateway.sim.ami import SimConfig
from gateway.sim.ami.channel import STATE_RING, STATE_UP
from gateway.sim.ami.tasks import TaskSet
from gateway.sim.ami.world import World
from tests.session_transcript import load

SESSION = "gateway-session-shipped-config.txt"
EPOCH = 1796052932.0  # 2026-11-30 15:35:32 UTC


class Captured:
    """Every event the world emits, parsed back into frames."""

    def __init__(self, world: World) -> None:
        self.frames: list[Frame] = []
        world.sinks.append(self._sink)

    def _sink(self, data: bytes, category: str) -> None:
        self.frames += [f for f in iter_frames(data, expect_banner=False) if isinstance(f, Frame)]

    def events(self, name: str) -> list[Frame]:
        return [f for f in self.frames if f.event == name]


async def make_world(**changes: object) -> AsyncIterator[tuple[World, Captured]]:
    tasks = TaskSet()
    world = World(SimConfig(port=0, epoch=EPOCH, time_scale=0.001, **changes), tasks)  # type: ignore[arg-type]
    try:
        yield world, Captured(world)
    finally:
        await tasks.close()


@pytest.fixture
async def utc_world() -> AsyncIterator[tuple[World, Captured]]:
    async for pair in make_world():
        yield pair


@pytest.fixture
async def shanghai_world() -> AsyncIterator[tuple[World, Captured]]:
    async for pair in make_world(timezone="Asia/Shanghai", cel=True):
        yield pair


@pytest.fixture(scope="module")
def real_frames() -> list[Frame]:
    from tests.conftest import TRANSCRIPTS

    return [t.frame for s in load(TRANSCRIPTS / SESSION) for t in s.received]


async def two_seat_call(world: World) -> None:
    """A caller bridged to one seat, then (the seat gone) to a second, then hanging up."""
    caller = world.new_channel(
        "trunk",
        caller_num="13800000206",
        caller_name="",
        context="hotline",
        exten="s",
        state=STATE_RING,
    )
    world.set_state(caller, STATE_UP)
    for seat in ("PJSIP/seat01-00000001", "PJSIP/seat02-00000002"):
        await world.sleep(20)
        caller.dest_channel = seat
        caller.last_app, caller.last_data = "Queue", "hotline,,,,180"
        await world.sleep(20)
        if seat.endswith("1"):
            world.split_cdr(caller)  # seat 1 hung up; the caller goes on
    world.request_hangup(caller, cause=16)
    world.destroy(caller)


def cdr_time(frame: Frame, key: str) -> datetime:
    return datetime.strptime(frame[key], "%Y-%m-%d %H:%M:%S")


async def test_a_call_through_two_seats_sends_one_cdr_per_bridge_segment(
    utc_world: tuple[World, Captured], real_frames: list[Frame]
) -> None:
    """Two Cdr for the caller's channel, like Asterisk: the second starts where the first ended."""
    world, captured = utc_world
    await two_seat_call(world)
    cdrs = captured.events("Cdr")
    assert len(cdrs) == 2
    first, second = cdrs
    assert first["UniqueID"] == second["UniqueID"]
    assert first["DestinationChannel"] == "PJSIP/seat01-00000001"
    assert second["DestinationChannel"] == "PJSIP/seat02-00000002"
    assert second["StartTime"] == first["EndTime"] == second["AnswerTime"]
    created = datetime.fromtimestamp(int(first["UniqueID"].split(".")[0]), UTC)
    assert cdr_time(first, "StartTime") == created.replace(tzinfo=None)  # the PBX runs in UTC
    # The recorded call 1796053041.12 did the same: two Cdr, contiguous.
    real = [f for f in real_frames if f.event == "Cdr" and f["UniqueID"] == "1796053041.12"]
    assert len(real) == 2 and real[1]["StartTime"] == real[0]["EndTime"] == real[1]["AnswerTime"]
    assert list(first) == list(real[0]) == list(second)


async def test_a_caller_hung_up_at_once_after_the_seat_has_one_cdr(
    utc_world: tuple[World, Captured],
) -> None:
    """The segment begun when the seat left is dropped if the caller is gone at once."""
    world, captured = utc_world
    caller = world.new_channel(
        "trunk",
        caller_num="13800000801",
        caller_name="",
        context="hotline",
        exten="s",
        state=STATE_RING,
    )
    world.set_state(caller, STATE_UP)
    caller.dest_channel = "PJSIP/seat03-00000003"
    await world.sleep(30)
    world.split_cdr(caller)
    world.request_hangup(caller, cause=16)
    world.destroy(caller)
    (cdr,) = captured.events("Cdr")
    assert cdr["DestinationChannel"] == "PJSIP/seat03-00000003"


async def test_cdr_and_cel_times_are_the_pbx_local_time(
    shanghai_world: tuple[World, Captured],
) -> None:
    """A PBX in Asia/Shanghai writes 23:35:32 for a channel made at 15:35:32 UTC."""
    world, captured = shanghai_world
    await two_seat_call(world)
    first = captured.events("Cdr")[0]
    epoch = float(first["UniqueID"].split(".")[0])
    local = datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) + timedelta(hours=8)
    assert cdr_time(first, "StartTime") == local
    start = next(f for f in captured.events("CEL") if f["EventName"] == "CHAN_START")
    assert cdr_time(start, "EventTime") == local


async def test_cel_events_have_the_recorded_shape(
    shanghai_world: tuple[World, Captured], real_frames: list[Frame]
) -> None:
    """CEL events carry the recorded headers in the recorded order, Extra as compact JSON."""
    world, captured = shanghai_world
    await two_seat_call(world)
    real_order = {tuple(f) for f in real_frames if f.event == "CEL"}
    cels = captured.events("CEL")
    names = [f["EventName"] for f in cels]
    assert names[0] == "CHAN_START" and names[1] == "ANSWER"
    assert names[-3:] == ["HANGUP", "CHAN_END", "LINKEDID_END"]
    for frame in cels:
        assert tuple(frame) in real_order, tuple(frame)
    hangup = next(f for f in cels if f["EventName"] == "HANGUP")
    real_hangup = next(f for f in real_frames if f.event == "CEL" and f["EventName"] == "HANGUP")
    assert json.loads(hangup["Extra"]).keys() == json.loads(real_hangup["Extra"]).keys()
    assert hangup["Extra"].startswith('{"hangupcause":16,')


async def test_cel_is_off_unless_asked(utc_world: tuple[World, Captured]) -> None:
    """A site without cel.conf's manager backend sends no CEL."""
    world, captured = utc_world
    await two_seat_call(world)
    assert captured.events("CEL") == []


async def test_getvar_reads_strftime_in_the_pbx_timezone(
    shanghai_world: tuple[World, Captured],
) -> None:
    """``Getvar STRFTIME(,,%z)`` without a channel gives the host's offset, as Asterisk does."""
    world, _ = shanghai_world
    assert world.evaluate("STRFTIME(,,%z)") == "+0800"
    assert world.evaluate(f"STRFTIME({int(EPOCH)},UTC,%H:%M:%S)") == "15:35:32"
    assert world.evaluate("NOSUCHFUNC()") is None


def test_the_transcript_has_cel_frames(real_frames: list[Frame]) -> None:
    """The recorded session (shipped cel.conf) carries CEL, the shapes compared above."""
    assert sum(1 for f in real_frames if f.event == "CEL") == 1415
