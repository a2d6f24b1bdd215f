"""FastAGI, the second AGI transport: the same flows through one AGI router, calls placed
by the simulated PBX with AGI(agi://…)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from gateway.config import PbxSection, Secret
from gateway.pbx.agi_router import AgiRouter
from gateway.pbx.channel import AgiChannel
from gateway.pbx.fastagi import FastAgiServer
from gateway.pbx.session import AmiSession
from gateway.sim.ami import CallerScript, Press, Silence, SimConfig, SimulatedPbx, WaitForPrompt

SECRET = "s3cret"


def section_for(port: int) -> PbxSection:
    """Fast timings against the simulated PBX on ``port``."""
    return PbxSection(
        name="main",
        port=port,
        secret=Secret(SECRET),
        auth="plain",
        action_timeout=2.0,
        connect_timeout=2.0,
        reconnect_min=0.01,
        reconnect_max=0.05,
    )


@pytest.fixture
async def router() -> AsyncIterator[AgiRouter]:
    """An AGI router for the PBX "main"; its handler is set by each test."""
    agi = AgiRouter("main")
    yield agi
    await agi.aclose()


async def test_a_flow_runs_over_fastagi(router: AgiRouter) -> None:
    """A hotline call placed by AGI(agi://…) runs the flow: prompts, keys, hang-up."""
    heard: list[tuple[str, bool]] = []

    async def ivr(channel: AgiChannel) -> None:
        assert channel.caller_number == "13800000011" and channel.pbx == "main"
        await channel.answer()
        heard.append(await channel.get_data("hotline/main-menu", 3000, 1))
        await channel.stream_file("hotline/goodbye")
        await channel.hangup()

    router.handler = ivr
    async with FastAgiServer({"main": router}, "127.0.0.1", 0) as server:
        url = f"agi://127.0.0.1:{server.port}/main"
        async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, agi_url=url)) as pbx:
            call = pbx.place_call(
                CallerScript(caller="13800000011", steps=[WaitForPrompt(input=True), Press("2")])
            )
            outcome = await asyncio.wait_for(call.finished, 5)
    assert heard == [("2", False)]
    assert outcome.prompts[-2:] == ["main-menu", "goodbye"]
    assert outcome.ended_by == "pbx" and outcome.queue is None


async def test_a_call_handed_back_over_fastagi_goes_on_to_the_queue(router: AgiRouter) -> None:
    """A flow that ends without hanging up closes the FastAGI session; the dialplan goes
    on to its queue."""

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        await channel.release()

    router.handler = ivr
    async with FastAgiServer({"main": router}, "127.0.0.1", 0) as server:
        url = f"agi://127.0.0.1:{server.port}/main"
        async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, agi_url=url)) as pbx:
            call = pbx.place_call(CallerScript(caller="13800000012", steps=[Silence(600)]))
            outcome = await asyncio.wait_for(call.finished, 10)
    assert outcome.queue == "hotline"


async def test_with_the_gateway_away_callers_go_straight_to_the_queue() -> None:
    """With nothing listening at the FastAGI address the call does not wait in silence:
    AGI() fails at once and the dialplan queues the caller for a seat."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = f"agi://127.0.0.1:{port}/main"
    async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, agi_url=url)) as pbx:
        call = pbx.place_call(CallerScript(caller="13800000013", steps=[Silence(600)]))
        outcome = await asyncio.wait_for(call.finished, 10)
    assert outcome.queue == "hotline"
    assert outcome.prompts == []


async def test_an_unknown_pbx_in_the_url_is_handed_back(router: AgiRouter) -> None:
    """A FastAGI call whose URL names no configured PBX is handed back to the dialplan."""
    ran: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        ran.append(channel.name)

    router.handler = ivr
    async with FastAgiServer({"main": router}, "127.0.0.1", 0) as server:
        url = f"agi://127.0.0.1:{server.port}/other"
        async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, agi_url=url)) as pbx:
            call = pbx.place_call(CallerScript(caller="13800000014", steps=[Silence(600)]))
            outcome = await asyncio.wait_for(call.finished, 10)
    assert outcome.queue == "hotline" and ran == []


async def test_shutting_down_hands_calls_back_and_releases_new_ones(router: AgiRouter) -> None:
    """On shutdown the router hands the calls in a flow back to the dialplan, and a call
    entering AGI meanwhile is released at once instead of starting a flow."""
    started: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        started.append(channel.name)
        while True:
            await channel.wait_for_digit(1000)

    router.handler = ivr
    async with FastAgiServer({"main": router}, "127.0.0.1", 0) as server:
        url = f"agi://127.0.0.1:{server.port}/main"
        async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, agi_url=url)) as pbx:
            first = pbx.place_call(CallerScript(caller="13800000015", steps=[Silence(600)]))
            async with asyncio.timeout(5):
                while not started:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert await router.hand_back(2.0) == 0
            late = pbx.place_call(CallerScript(caller="13800000016", steps=[Silence(600)]))
            outcomes = [await asyncio.wait_for(c.finished, 10) for c in (first, late)]
    assert [o.queue for o in outcomes] == ["hotline", "hotline"]
    assert len(started) == 1


async def test_an_ami_link_cut_does_not_end_fastagi_calls() -> None:
    """FastAGI calls do not ride on the AMI link: a cut AMI link ends no FastAGI flow."""
    went_on = asyncio.Event()
    heard: list[tuple[str, bool]] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        await went_on.wait()
        heard.append(await channel.get_data("hotline/main-menu", 3000, 1))
        await channel.hangup()

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    ami_port = probe.getsockname()[1]
    probe.close()
    session = AmiSession(section_for(ami_port), agi_handler=ivr)
    async with FastAgiServer({"main": session.agi}, "127.0.0.1", 0) as server:
        url = f"agi://127.0.0.1:{server.port}/main"
        config = SimConfig(port=ami_port, secret=SECRET, time_scale=0.01, agi_url=url)
        async with SimulatedPbx(config) as pbx, session:
            await session.wait_connected(2)
            call = pbx.place_call(
                CallerScript(caller="13800000017", steps=[WaitForPrompt(input=True), Press("3")])
            )
            async with asyncio.timeout(5):
                while not session.agi.channels:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            pbx.faults.drop_connections()
            async with asyncio.timeout(5):
                while session.connects < 2 or not session.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            went_on.set()
            await asyncio.wait_for(call.finished, 5)
    assert heard == [("3", False)]
