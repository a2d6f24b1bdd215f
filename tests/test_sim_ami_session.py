"""The simulated PBX's manager session behaves like Asterisk 22's, seen over raw TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.sim.ami import Answer, CallerScript, HangUp, Silence, SimConfig, SimulatedPbx
from gateway.sim.ami.config import parse_manager_conf, shipped_gateway_user
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


SHIPPED = Path(__file__).resolve().parents[1] / "asterisk" / "manager.conf"


async def test_shipped_user_reads_no_dialplan_or_system_events() -> None:
    """The shipped manager.conf's [gateway] user, like on Asterisk 22, gets call, AGI and
    Cdr events but no VarSet, Newexten, FullyBooted or SuccessfulAuth; CEL (class call,
    which the gateway does not use) and RTCP events are dropped by its eventfilters."""
    users = parse_manager_conf(SHIPPED.read_text(encoding="utf-8"))
    gateway = next(u for u in users if u.name == "gateway")
    assert gateway == shipped_gateway_user(gateway.secret)  # the mirror tests and demos use
    config = SimConfig(port=0, time_scale=0.01, users=users)
    async with SimulatedPbx(config) as pbx:
        ami = await RawAmi.connect(pbx.port)
        try:
            reply = await ami.login(secret=gateway.secret)
            assert reply["Message"] == "Authentication accepted"
            call = pbx.place_call(CallerScript(caller="13800000002", steps=[Silence(1), HangUp()]))
            await asyncio.wait_for(call.finished, 5)
            pbx.world.emit("CEL", "call,all", [("EventName", "CHAN_END")])
            pbx.world.emit("RTCPSent", "reporting,all", [("SSRC", "0x1")])
            await ami.action("Ping")  # answered after the events raised before it
            seen = {f["Event"] for f in ami.frames if "Event" in f}
        finally:
            await ami.close()
    assert {"Newchannel", "AsyncAGIStart", "Hangup", "Cdr"} <= seen
    assert not seen & {"VarSet", "Newexten", "FullyBooted", "SuccessfulAuth", "RTCPSent", "CEL"}


async def test_write_classes_and_including_filters_apply_per_user() -> None:
    """An action outside the user's write classes is 'Permission denied'; an including
    eventfilter lets only matching events through."""
    users = parse_manager_conf(
        "[general]\nenabled = yes\n\n[watcher]\nsecret = w\nread = call,agi\n"
        "write = reporting\neventfilter = Event: Newchannel\n"
    )
    async with SimulatedPbx(SimConfig(port=0, time_scale=0.01, users=users)) as pbx:
        ami = await RawAmi.connect(pbx.port)
        try:
            await ami.login(user="Watcher", secret="w")
            denied = await ami.action(
                "Originate", ("Channel", "PJSIP/trunk/1"), ("Application", "Wait")
            )
            assert denied["Response"] == "Error" and denied["Message"] == "Permission denied"
            assert (await ami.action("CoreShowChannels"))["Response"] == "Success"
            call = pbx.place_call(CallerScript(caller="13800000003", steps=[Silence(1), HangUp()]))
            await asyncio.wait_for(call.finished, 5)
            await ami.action("Ping")
        finally:
            await ami.close()
    assert {f["Event"] for f in ami.frames if "Event" in f} - {
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    } == {"Newchannel"}


async def test_header_names_are_case_insensitive(pbx: SimulatedPbx) -> None:
    """Lower-case header names (action, username, actionid, variable) work as in Asterisk."""
    reader, writer = await asyncio.open_connection("127.0.0.1", pbx.port)
    ami = RawAmi(reader, writer)
    try:
        writer.write(
            b"action: login\r\nusername: gateway\r\nsecret: s3cret\r\nactionid: a1\r\n\r\n"
        )
        assert (await ami.response("a1"))["Message"] == "Authentication accepted"
        writer.write(b"ACTION: PING\r\nACTIONID: a2\r\n\r\n")
        assert (await ami.response("a2"))["Ping"] == "Pong"
        pbx.set_citizen("13900000009", Answer(ring_seconds=0.1, steps=[]))
        writer.write(
            b"action: Originate\r\nchannel: PJSIP/trunk/13900000009\r\ncontext: survey\r\n"
            b"exten: s\r\npriority: 1\r\nasync: true\r\nvariable: GW_ITEM=5\r\n"
            b"actionid: a3\r\n\r\n"
        )
        assert (await ami.response("a3"))["Response"] == "Success"
        start = await ami.event("AsyncAGIStart")
        chan = pbx.world.channels[start["Channel"]]
        assert chan.variables.get("GW_ITEM") == "5"
    finally:
        await ami.close()


async def test_unauthenticated_connection_is_closed_after_authtimeout() -> None:
    """A connection that does not log in is closed after authtimeout (30 s, scaled);
    a logged-in one stays open."""
    async with SimulatedPbx(SimConfig(port=0, time_scale=0.01)) as pbx:
        idle = await RawAmi.connect(pbx.port)
        busy = await RawAmi.connect(pbx.port)
        try:
            await busy.login()
            await asyncio.wait_for(idle.closed.wait(), 3)
            await asyncio.sleep(0.2)
            assert not busy.closed.is_set()
            assert (await busy.action("Ping"))["Response"] == "Success"
        finally:
            await idle.close()
            await busy.close()


async def test_client_that_stops_reading_is_disconnected(pbx: SimulatedPbx) -> None:
    """A client that stops reading while events pile up is cut off after writetimeout,
    and the PBX goes on serving others."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", pbx.port))
    sock.sendall(b"Action: Login\r\nUsername: gateway\r\nSecret: s3cret\r\n\r\n")
    async with asyncio.timeout(5):
        while not pbx.sessions:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    before = pbx.sessions
    try:
        payload = "x" * 1000
        async with asyncio.timeout(10):
            while pbx.sessions == before:
                for _ in range(200):
                    pbx.world.emit("UserEvent", "user,all", [("Data", payload)])
                await asyncio.sleep(0.01)
        assert pbx.sessions == before - 1
    finally:
        sock.close()
