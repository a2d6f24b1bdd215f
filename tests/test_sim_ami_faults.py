"""Faults on demand: dropped links, garbled frames, split writes, LF ends, slowness, Shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.sim.ami import CallerScript, SimConfig, SimulatedPbx
from tests.sim_ami_client import RawAmi


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    async with SimulatedPbx(SimConfig(port=0, agents=1, time_scale=0.01)) as sim:
        yield sim


@pytest.fixture
async def ami(pbx: SimulatedPbx) -> AsyncIterator[RawAmi]:
    client = await RawAmi.connect(pbx.port)
    await client.login()
    yield client
    await client.close()


async def test_drop_connections_cuts_every_session_and_new_ones_work(
    pbx: SimulatedPbx, ami: RawAmi
) -> None:
    """After drop_connections the client sees EOF; a new connection logs in again."""
    pbx.faults.drop_connections()
    await asyncio.wait_for(ami.closed.wait(), 2)
    again = await RawAmi.connect(pbx.port)
    try:
        reply = await again.login()
        assert reply["Message"] == "Authentication accepted"
    finally:
        await again.close()


async def test_garbled_frame_is_reported_and_the_stream_goes_on(
    pbx: SimulatedPbx, ami: RawAmi
) -> None:
    """garble_next sends one malformed frame; the parser flags it and the next reply parses."""
    pbx.faults.garble_next()
    reply = await ami.action("Ping")
    assert reply["Ping"] == "Pong"
    assert len(ami.errors) == 1


async def test_split_writes_cut_inside_chinese_caller_names(pbx: SimulatedPbx, ami: RawAmi) -> None:
    """With writes split at odd places, a Chinese CallerIDName still arrives whole."""
    pbx.faults.split_writes(max_chunk=7)
    chunks = pbx.faults.chunks("CallerIDName: 张三\r\n\r\n".encode())
    assert any(c and (c[-1] & 0xC0) == 0xC0 for c in chunks)  # a cut right after a lead byte
    call = pbx.place_call(CallerScript(caller="+8613912345678", caller_name="张三"))
    new = await ami.event("Newchannel", Channel=call.channel)
    assert new["CallerIDName"] == "张三"
    await ami.event("AsyncAGIStart", Channel=call.channel)
    await ami.action("Hangup", ("Channel", call.channel))
    await asyncio.wait_for(call.finished, 5)
    assert not ami.errors
    pbx.faults.split_writes(None)
    with pytest.raises(ValueError, match="max_chunk"):
        pbx.faults.split_writes(0)


async def test_lf_only_frame_ends_parse(pbx: SimulatedPbx, ami: RawAmi) -> None:
    """Frames ended by a lone CRLF+LF are sent as such and still parse."""
    pbx.faults.lf_only(True)
    reply = await ami.action("Ping")
    assert reply["Ping"] == "Pong"
    assert bytes(ami.raw).endswith(b"\r\n\n")


async def test_slow_delays_every_write(pbx: SimulatedPbx, ami: RawAmi) -> None:
    """slow(0.05) delays each frame by at least that long."""
    pbx.faults.slow(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ami.action("Ping")
    assert loop.time() - started >= 0.05
    pbx.faults.slow(0)
    with pytest.raises(ValueError, match="negative"):
        pbx.faults.slow(-1)


async def test_shutdown_announces_then_closes_and_ends_calls(
    pbx: SimulatedPbx, ami: RawAmi
) -> None:
    """shutdown sends Event: Shutdown (Uncleanly, Restart False), closes, and calls end."""
    call = pbx.place_call(CallerScript(caller="+8613912345678"))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    await pbx.faults.shutdown()
    event = await ami.event("Shutdown")
    assert list(event.items()) == [
        ("Event", "Shutdown"),
        ("Privilege", "system,all"),
        ("Shutdown", "Uncleanly"),
        ("Restart", "False"),
    ]
    await asyncio.wait_for(ami.closed.wait(), 2)
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "pbx"
    assert pbx.sessions == 0


def test_bad_configuration_and_scripts_are_refused_with_the_reason() -> None:
    """A bad time scale, an empty secret, a non-DTMF key are refused, naming what was wrong."""
    from gateway.sim.ami import Press

    with pytest.raises(ValueError, match="time_scale"):
        SimConfig(time_scale=0)
    with pytest.raises(ValueError, match="secret"):
        SimConfig(secret="")
    with pytest.raises(ValueError, match="hotline_queue"):
        SimConfig(queues=("other",))
    with pytest.raises(ValueError, match="not DTMF digits: 'x'"):
        Press("1x")
    with pytest.raises(ValueError, match="caller number"):
        CallerScript(caller="")


async def test_random_population_places_calls_that_all_end(pbx: SimulatedPbx) -> None:
    """The seeded population generator places calls that end on their own (no gateway)."""
    from gateway.sim.ami import generate_calls

    calls = await generate_calls(pbx, 5, per_minute=600, seed=3)
    assert len(calls) == 5 and len({c.outcome.number for c in calls}) == 5
    for call in calls:
        await ami_free_hangup(pbx, call.channel)
    outcomes = await asyncio.wait_for(asyncio.gather(*(c.finished for c in calls)), 5)
    assert all(o.ended_by for o in outcomes)


async def ami_free_hangup(pbx: SimulatedPbx, channel: str) -> None:
    chan = pbx.world.find_channel(channel)
    if chan is not None:
        pbx.world.request_hangup(chan)
