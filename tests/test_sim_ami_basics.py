"""The simulated PBX over real loopback TCP: login, ping, commands, errors, event lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.sim.ami import SimConfig, SimulatedPbx
from tests.sim_ami_client import RawAmi


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    async with SimulatedPbx(
        SimConfig(port=0, agents=2, time_scale=0.01, ring_seconds=(1, 1), talk_seconds=(5, 5))
    ) as sim:
        yield sim


@pytest.fixture
async def ami(pbx: SimulatedPbx) -> AsyncIterator[RawAmi]:
    client = await RawAmi.connect(pbx.port)
    reply = await client.login()
    assert reply["Message"] == "Authentication accepted"
    yield client
    await client.close()


async def test_banner_then_plain_login_accepted_and_fully_booted(pbx: SimulatedPbx) -> None:
    """The banner comes first; a right secret is accepted and FullyBooted follows."""
    client = await RawAmi.connect(pbx.port)
    try:
        reply = await client.login()
        assert list(reply.items())[:3] == [
            ("Response", "Success"),
            ("ActionID", reply["ActionID"]),
            ("Message", "Authentication accepted"),
        ]
        booted = await client.event("FullyBooted")
        assert booted["Privilege"] == "system,all" and booted["Status"] == "Fully Booted"
        assert client.parser.banner == "Asterisk Call Manager/11.0.0"
        assert bytes(client.raw).startswith(
            b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n"
        )
    finally:
        await client.close()


async def test_wrong_secret_is_refused_and_the_connection_closed(pbx: SimulatedPbx) -> None:
    """A wrong secret gets 'Authentication failed' and Asterisk closes the session."""
    client = await RawAmi.connect(pbx.port)
    try:
        reply = await client.login(secret="wrong")
        assert reply["Response"] == "Error" and reply["Message"] == "Authentication failed"
        await asyncio.wait_for(client.closed.wait(), 2)
    finally:
        await client.close()


async def test_md5_login_with_the_challenge_is_accepted(pbx: SimulatedPbx) -> None:
    """Challenge/AuthType MD5 with md5(challenge+secret) logs in."""
    client = await RawAmi.connect(pbx.port)
    try:
        reply = await client.login_md5()
        assert reply["Message"] == "Authentication accepted"
    finally:
        await client.close()


async def test_md5_login_with_a_wrong_key_is_refused(pbx: SimulatedPbx) -> None:
    """An MD5 key computed from the wrong secret is refused."""
    client = await RawAmi.connect(pbx.port)
    try:
        reply = await client.login_md5(secret="nope")
        assert reply["Message"] == "Authentication failed"
    finally:
        await client.close()


async def test_actions_before_login_get_permission_denied(pbx: SimulatedPbx) -> None:
    """An action other than Login/Challenge/Logoff before login is refused."""
    client = await RawAmi.connect(pbx.port)
    try:
        reply = await client.action("Ping")
        assert reply["Response"] == "Error" and reply["Message"] == "Permission denied"
    finally:
        await client.close()


async def test_ping_answers_pong_with_a_timestamp(ami: RawAmi) -> None:
    """Ping → Ping: Pong and an epoch.micro Timestamp, ActionID echoed."""
    reply = await ami.action(
        "Ping",
    )
    assert list(reply) == ["Response", "ActionID", "Ping", "Timestamp"]
    assert reply["Ping"] == "Pong"
    seconds, micro = reply["Timestamp"].split(".")
    assert seconds.isdigit() and len(micro) == 6


async def test_logoff_says_goodbye_and_closes(ami: RawAmi) -> None:
    """Logoff → Goodbye 'Thanks for all the fish.' then the connection closes."""
    reply = await ami.action("Logoff")
    assert reply["Response"] == "Goodbye" and reply["Message"] == "Thanks for all the fish."
    await asyncio.wait_for(ami.closed.wait(), 2)


async def test_command_core_show_version_outputs_one_line(ami: RawAmi) -> None:
    """Command output comes as Output: headers after 'Command output follows'."""
    reply = await ami.action("Command", ("Command", "core show version"))
    assert reply["Message"] == "Command output follows"
    assert reply["Output"].startswith("Asterisk 22.10.1 built by")


async def test_command_core_show_channels_counts_channels(ami: RawAmi) -> None:
    """With no calls, core show channels prints the header and zero counts."""
    reply = await ami.action("Command", ("Command", "core show channels"))
    lines = reply.getall("Output")
    assert lines[0].startswith("Channel ") and "Application(Data)" in lines[0]
    assert lines[1:] == ["0 active channels", "0 active calls", "0 calls processed"]


async def test_command_queue_show_lists_members(ami: RawAmi) -> None:
    """queue show prints the queue line and its seats."""
    reply = await ami.action("Command", ("Command", "queue show hotline"))
    lines = reply.getall("Output")
    assert lines[0].startswith("hotline has 0 calls (max unlimited)")
    assert any("Seat 01 (PJSIP/seat01)" in line for line in lines)


async def test_unknown_cli_command_is_an_error_with_asterisk_text(ami: RawAmi) -> None:
    """An unknown CLI command answers Error with Asterisk's 'No such command' line."""
    reply = await ami.action("Command", ("Command", "frobnicate now"))
    assert reply["Response"] == "Error"
    assert reply["Output"] == (
        "No such command 'frobnicate now' "
        "(type 'core show help frobnicate now' for other possible commands)"
    )


async def test_unknown_action_gets_invalid_unknown_command(ami: RawAmi) -> None:
    """An unknown action is refused with Asterisk's exact message."""
    reply = await ami.action("NoSuchAction")
    assert reply["Message"] == (
        "Invalid/unknown command: NoSuchAction. "
        "Use Action: ListCommands to show available commands."
    )


async def test_errors_for_unknown_channels(ami: RawAmi) -> None:
    """Hangup, AGI, MixMonitor and Status on a channel that does not exist are refused."""
    hangup = await ami.action("Hangup", ("Channel", "PJSIP/nope-00000000"))
    assert hangup["Message"] == "No such channel"
    agi = await ami.action(
        "AGI", ("Channel", "Local/nope-00000000;1"), ("Command", "ANSWER"), ("CommandID", "x")
    )
    assert agi["Message"] == "Channel Local/nope-00000000;1 does not exist."
    mix = await ami.action(
        "MixMonitor",
        ("Channel", "PJSIP/nope-00000000"),
        ("File", "/var/spool/asterisk/monitor/x.wav"),
    )
    assert mix["Message"] == "No such channel"
    status = await ami.action("Status", ("Channel", "PJSIP/nope-00000000"))
    assert status["Message"] == "No such channel"
    missing = await ami.action("AGI", ("Command", "ANSWER"))
    assert missing["Message"] == "Both, Channel and Command are *required*"


async def test_events_off_stops_event_delivery(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """After Events: off the connection receives no events; on brings them back."""
    from gateway.sim.ami import CallerScript, HangUp

    off = await ami.action("Events", ("EventMask", "off"))
    assert list(off.items())[2] == ("Events", "Off")
    before = len(ami.events("Newchannel"))
    call = pbx.place_call(CallerScript(caller="+8613900000001", steps=[HangUp()]))
    await asyncio.wait_for(call.finished, 5)
    await ami.action("Ping")
    assert len(ami.events("Newchannel")) == before
    on = await ami.action("Events", ("EventMask", "on"))
    assert on["Events"] == "On"
    call = pbx.place_call(CallerScript(caller="+8613900000001", steps=[HangUp()]))
    await ami.event("Newchannel", Channel=call.channel)
    await asyncio.wait_for(call.finished, 5)


async def test_queue_status_is_an_event_list_with_list_items(ami: RawAmi) -> None:
    """QueueStatus: EventList start, QueueParams and QueueMember items with ActionID, Complete."""
    aid = ami.send("QueueStatus", ("Queue", "hotline"))
    reply = await ami.response(aid)
    assert list(reply) == ["Response", "ActionID", "EventList", "Message"]
    assert reply["Message"] == "Queue status will follow"
    done = await ami.event("QueueStatusComplete", ActionID=aid)
    assert done["EventList"] == "Complete" and done["ListItems"] == "3"
    items = [
        f
        for f in ami.frames
        if f.get("ActionID") == aid and f.get("Event") in ("QueueParams", "QueueMember")
    ]
    assert len(items) == 3


async def test_core_show_channels_lists_live_channels(ami: RawAmi, pbx: SimulatedPbx) -> None:
    """CoreShowChannels lists the call in progress and counts it in ListItems."""
    from gateway.sim.ami import CallerScript

    call = pbx.place_call(CallerScript(caller="+8613900000002", caller_name="李四"))
    await ami.event("AsyncAGIStart", Channel=call.channel)
    aid = ami.send("CoreShowChannels")
    done = await ami.event("CoreShowChannelsComplete", ActionID=aid)
    assert done["ListItems"] == "1"
    item = await ami.event("CoreShowChannel", ActionID=aid)
    assert item["Channel"] == call.channel and item["Application"] == "AGI"
    assert item["CallerIDName"] == "李四"
    await ami.action("Hangup", ("Channel", call.channel))
    outcome = await asyncio.wait_for(call.finished, 5)
    assert outcome.ended_by == "pbx"
