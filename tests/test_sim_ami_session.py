"""The simulated PBX's manager session behaves like Asterisk 22's, seen over raw TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.sim.ami import CallerScript, Silence, SimConfig, SimulatedPbx
from tests.sim_ami_client import RawAmi


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    async with SimulatedPbx(SimConfig(port=0, time_scale=0.01)) as sim:
        yield sim


@pytest.fixture
async def ami(pbx: SimulatedPbx) -> AsyncIterator[RawAmi]:
    client = await RawAmi.connect(pbx.port)
    reply = await client.login()
    assert reply["Message"] == "Authentication accepted"
    yield client
    await client.close()


async def test_events_raised_during_a_list_follow_its_complete(
    pbx: SimulatedPbx, ami: RawAmi
) -> None:
    """A call hanging up while CoreShowChannels is built still appears in the list, and its
    Hangup event comes after the list's Complete, as Asterisk sends it between actions."""
    call = pbx.place_call(CallerScript(caller="13800000001", steps=[Silence(3000)]))
    await ami.event("Newchannel", Channel=call.channel)
    pbx.faults.slow_lists(0.3)
    action_id = ami.send("CoreShowChannels")
    await ami.response(action_id)
    pbx.world.request_hangup(pbx.world.channels[call.channel], cause=16)
    await ami.event("Hangup", Channel=call.channel)
    order = [
        f.get("Event") or "Response"
        for f in ami.frames
        if f.get("ActionID") == action_id
        or (f.get("Event") == "Hangup" and f.get("Channel") == call.channel)
    ]
    assert order == ["Response", "CoreShowChannel", "CoreShowChannelsComplete", "Hangup"]
    await asyncio.wait_for(call.finished, 5)
