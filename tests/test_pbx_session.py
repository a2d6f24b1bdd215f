"""The AMI session against the simulated PBX over loopback: login, keep-alive,
reconnect and resync, actions, faults, several PBXs; and its pure helpers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.ami.frames import Frame
from gateway.clock import Clock
from gateway.config import ConfigError, PbxSection, Secret, load
from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import (
    AmiActionFailed,
    AmiActionTimeout,
    AmiLoginError,
    AmiNotConnected,
    ChannelHungUp,
    OriginateOutcomeUnknown,
)
from gateway.pbx.session import (
    AmiSession,
    OriginateOutcome,
    PbxPool,
    ResyncReport,
    backoff_delay,
    originate_outcome,
)
from gateway.sim.ami import Answer, CallerScript, Silence, SimConfig, SimulatedPbx, WaitForPrompt
from tests.pbx_support import SECRET, section, simulated_pbx


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    """A simulated Asterisk on a free loopback port, 100× faster than real time."""
    async for sim in simulated_pbx():
        yield sim


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait (polling the loop) until ``predicate()`` holds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class GateClock(Clock):
    """Real time, except that reconnect backoff waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1


# -- login ------------------------------------------------------------------------


async def test_plain_login_ping_and_command(pbx: SimulatedPbx) -> None:
    """A plain login connects; Ping measures a round trip; Command returns output lines."""
    async with AmiSession(section(pbx)) as session:
        await session.wait_connected(2)
        assert session.connected
        rtt = await session.ping()
        assert 0 < rtt < 1
        lines = await session.command("core show version")
        assert lines and lines[0].startswith("Asterisk 22")


async def test_md5_login(pbx: SimulatedPbx) -> None:
    """The MD5 challenge login connects without sending the secret."""
    async with AmiSession(section(pbx, auth="md5")) as session:
        await session.wait_connected(2)
        assert session.connected


class RecordingClock(Clock):
    """Real time; remembers every backoff the session slept."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)


async def test_wrong_secret_is_retried_for_ever_with_a_long_backoff(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused secret is logged as an error each time and retried for ever, every
    reconnect_max after login_attempts quick tries; actions raise the AmiLoginError
    naming the PBX and user meanwhile; the secret never appears in a log."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    clock = RecordingClock()
    config = section(
        pbx,
        secret=Secret("wrong-secret"),
        login_attempts=2,
        reconnect_min=0.001,
        reconnect_max=0.05,
    )
    async with AmiSession(config, clock=clock) as session:
        with pytest.raises(AmiLoginError) as info:
            await session.wait_connected(5)
        assert info.value.pbx == "main" and info.value.username == "gateway"
        assert "Authentication failed" in str(info.value)
        with pytest.raises(AmiLoginError):
            await session.action({"Action": "Ping"})
        await eventually(lambda: len(clock.slept) >= 5, within=10)
        assert not session.link.stopped.is_set()
    refusals = [r for r in caplog.records if "refused: Authentication failed" in r.getMessage()]
    assert len(refusals) >= 5 and all(r.levelno == logging.ERROR for r in refusals)
    assert "fix the AMI user or secret" in caplog.text
    assert all(delay >= 0.025 for delay in clock.slept[2:5])  # the long backoff
    assert "wrong-secret" not in caplog.text


async def test_a_link_that_drops_soon_after_login_keeps_backing_off(pbx: SimulatedPbx) -> None:
    """A PBX that accepts the login and drops at once is retried with a growing backoff:
    only a link that stayed up a while starts it afresh."""
    clock = RecordingClock()
    config = section(pbx, reconnect_min=0.01, reconnect_max=0.16)
    async with AmiSession(config, clock=clock) as session:
        for connects in range(1, 5):
            await eventually(lambda n=connects: session.connects == n and session.connected)
            pbx.faults.drop_connections()
        await eventually(lambda: len(clock.slept) >= 4)
    # ceilings 0.01, 0.02, 0.04, 0.08: each delay drawn from the ceiling's upper half
    assert clock.slept[3] >= 0.04


async def test_unreachable_pbx_is_not_connected() -> None:
    """With nothing listening, an action waits action_timeout and fails AmiNotConnected."""
    config = PbxSection(
        port=1, action_timeout=0.2, connect_timeout=0.2, reconnect_min=0.05, reconnect_max=0.1
    )
    async with AmiSession(config) as session:
        with pytest.raises(AmiNotConnected) as info:
            await session.action({"Action": "Ping"})
        assert info.value.action == "Ping"


# -- actions -----------------------------------------------------------------------


async def test_error_response_raises_action_failed(pbx: SimulatedPbx) -> None:
    """An Error response raises AmiActionFailed carrying Asterisk's message."""
    async with AmiSession(section(pbx)) as session:
        with pytest.raises(AmiActionFailed) as info:
            await session.action({"Action": "NoSuchAction"})
        assert "Invalid/unknown command" in info.value.message
        reply = await session.action({"Action": "NoSuchAction"}, check=False)
        assert reply.response == "Error"


async def test_action_timeout(pbx: SimulatedPbx) -> None:
    """An answer slower than the action's timeout raises AmiActionTimeout with its ActionID."""
    async with AmiSession(section(pbx)) as session:
        await session.wait_connected(2)
        pbx.faults.slow(0.5)
        with pytest.raises(AmiActionTimeout) as info:
            await session.action({"Action": "Ping"}, reply_timeout=0.1)
        assert info.value.action == "Ping" and info.value.action_id
        pbx.faults.slow(0)


async def test_event_list_collects_items(pbx: SimulatedPbx) -> None:
    """CoreShowChannels returns one item per live channel, the Complete event excluded."""
    call = pbx.place_call(CallerScript(caller="13800138000", steps=[Silence(500)]))
    async with AmiSession(section(pbx)) as session:
        await eventually(lambda: call.channel in pbx.active_channels)
        items = await session.event_list({"Action": "CoreShowChannels"})
        assert [i["Channel"] for i in items] == pbx.active_channels
        assert all(i.event == "CoreShowChannel" for i in items)
        status = await session.event_list({"Action": "QueueStatus"})
        assert any(i.event == "QueueParams" for i in status)


async def test_unknown_action_id_is_logged_and_ignored(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """A response nobody waits for is logged and dropped; the session goes on."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    async with AmiSession(section(pbx)) as session:
        await session.wait_connected(2)
        session.dispatcher.on_response(Frame(Response="Success", ActionID="stale-42"))
        assert "unknown ActionID 'stale-42'" in caplog.text
        assert await session.ping() > 0


# -- listeners and faults --------------------------------------------------------------


async def test_listeners_get_events_in_order_and_survive_errors(pbx: SimulatedPbx) -> None:
    """Listeners run synchronously from one consumer; one that raises does not stop others."""
    seen: list[tuple[str, str]] = []

    def broken(frame: Frame) -> None:
        raise RuntimeError("listener bug")

    async with AmiSession(section(pbx)) as session:
        session.add_listener(broken)
        session.add_listener(
            lambda f: seen.append((f["Event"], f["Channel"])), events={"Newchannel", "Hangup"}
        )
        await session.wait_connected(2)
        call = pbx.place_call(CallerScript(caller="13800138000", steps=[Silence(1)]))
        await call.finished
        await eventually(lambda: ("Hangup", call.channel) in seen)
        mine = [event for event, channel in seen if channel == call.channel]
        assert mine == ["Newchannel", "Hangup"]


async def test_split_utf8_through_the_socket(pbx: SimulatedPbx) -> None:
    """Frames written a few bytes at a time, cut inside Chinese characters, arrive whole."""
    names: list[str] = []
    async with AmiSession(section(pbx)) as session:
        session.add_listener(
            lambda f: (
                names.append(f["CallerIDName"]) if f["CallerIDNum"] == "13800138000" else None
            ),
            events={"Newchannel"},
        )
        await session.wait_connected(2)
        pbx.faults.split_writes(3)
        call = pbx.place_call(
            CallerScript(caller="13800138000", caller_name="张伟（市民）", steps=[Silence(1)])
        )
        await call.finished
        await eventually(lambda: bool(names))
        assert names[0] == "张伟（市民）"
        assert session.frame_errors == 0


async def test_garbled_frame_and_lf_endings_are_survived(pbx: SimulatedPbx) -> None:
    """A malformed frame is logged and skipped; \\r\\n\\n endings parse; the link stays up."""
    async with AmiSession(section(pbx)) as session:
        await session.wait_connected(2)
        pbx.faults.garble_next()
        pbx.faults.lf_only(True)
        assert await session.ping() > 0
        assert session.frame_errors == 1
        assert (await session.command("core show version"))[0].startswith("Asterisk")
        assert session.connects == 1


async def test_ping_timeout_declares_the_link_dead(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """No Pong within ping_timeout: the link is declared dead and the session reconnects."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    config = section(pbx, ping_interval=0.1, ping_timeout=0.1)
    async with AmiSession(config) as session:
        await session.wait_connected(2)
        pbx.faults.slow(0.4)
        await eventually(lambda: "no Pong" in caplog.text)
        pbx.faults.slow(0)
        await eventually(lambda: session.connects >= 2 and session.connected)


async def test_busy_link_with_a_late_pong_stays_up(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """A Pong far later than ping_timeout on a link that keeps delivering events is a busy
    link, not a dead one: no reconnect, and the caller in the IVR goes on with the flow."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    config = section(pbx, ping_interval=0.05, ping_timeout=0.2)
    flow: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        flow.append("answered")
        await asyncio.sleep(1.5)  # the caller listens while the PBX lags
        await channel.stream_file("hotline/welcome")
        flow.append("played")
        await channel.hangup()

    async def load() -> None:
        while True:  # a busy PBX: events keep flowing every 50 ms
            pbx.world.emit("UserEvent", "user,all", [("UserEvent", "Load")])
            await asyncio.sleep(0.05)

    async with AmiSession(config, agi_handler=ivr) as session:
        await session.wait_connected(2)
        pbx.place_call(CallerScript(caller="13800138000", steps=[Silence(1000)]))
        await eventually(lambda: flow == ["answered"])
        pbx.faults.lag_pong(1.0)
        loader = asyncio.ensure_future(load())
        try:
            await eventually(lambda: "busy, not dead" in caplog.text, within=5)
            await eventually(lambda: flow == ["answered", "played"], within=5)
        finally:
            loader.cancel()
            pbx.faults.lag_pong(0)
        assert session.connects == 1
        assert "declared dead" not in caplog.text


async def test_ping_timeout_adapts_to_a_pbx_that_answers_late(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """Once Pongs have come late on a busy link, a quiet spell as long as those late
    answers is waited out (the limit follows the round trip), not taken for a dead link."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    config = section(pbx, ping_interval=0.05, ping_timeout=0.2)

    async def load() -> None:
        while True:
            pbx.world.emit("UserEvent", "user,all", [("UserEvent", "Load")])
            await asyncio.sleep(0.05)

    async with AmiSession(config) as session:
        await session.wait_connected(2)
        pbx.faults.lag_pong(0.5)
        loader = asyncio.ensure_future(load())
        try:
            await eventually(lambda: caplog.text.count("busy, not dead") >= 3, within=10)
        finally:
            loader.cancel()
        assert session.link.silence_limit() > 0.5
        quiet_from = caplog.text.count("busy, not dead")
        await eventually(lambda: caplog.text.count("busy, not dead") >= quiet_from + 2, within=10)
        pbx.faults.lag_pong(0)
        assert session.connects == 1
        assert "declared dead" not in caplog.text


async def test_shutdown_event_reconnects(pbx: SimulatedPbx) -> None:
    """Asterisk's Shutdown event closes the link and the session logs in again."""
    async with AmiSession(section(pbx)) as session:
        await session.wait_connected(2)
        await pbx.faults.shutdown(restart=True)
        await eventually(lambda: session.connects == 2 and session.connected)
        assert await session.ping() > 0


async def test_reconnect_resync_reports_lost_and_surviving_calls(pbx: SimulatedPbx) -> None:
    """After a drop, CoreShowChannels tells listeners which calls survived and which ended
    while the link was down; an IVR session cut off by the drop gets ChannelHungUp and
    its surviving call is handed back to the dialplan."""
    clock = GateClock()
    reports: list[ResyncReport] = []
    hung_up: list[str] = []
    started: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        started.append(channel.name)
        try:
            while True:
                await channel.stream_file("hotline/hold-music")
        except ChannelHungUp as exc:
            hung_up.append(exc.during)
            raise

    before = pbx.place_call(CallerScript(caller="13800000009", steps=[Silence(3000)]))
    async with AmiSession(section(pbx), clock=clock, agi_handler=ivr) as session:
        session.add_resync_listener(reports.append)
        await eventually(lambda: len(reports) == 1)
        assert not reports[0].reconnect
        assert before.uniqueid in {c.uniqueid for c in reports[0].appeared}
        # it waited in AsyncAGI with nobody driving it: handed back to the dialplan
        assert reports[0].released == (before.channel,)
        outcome = await asyncio.wait_for(before.finished, 5)
        assert outcome.queue == "hotline"
        stays = pbx.place_call(CallerScript(caller="13800000001", steps=[Silence(3000)]))
        goes = pbx.place_call(CallerScript(caller="13800000002", steps=[Silence(3000)]))
        await eventually(lambda: len(started) == 2)

        clock.gate.clear()
        pbx.faults.drop_connections()
        await eventually(lambda: clock.waiting == 1)
        assert not session.connected
        assert hung_up == ["AMI link lost", "AMI link lost"]
        # while we are away, the second caller's call ends
        async with AmiSession(section(pbx, name="operator")) as operator:
            await operator.action({"Action": "Hangup", "Channel": goes.channel})
        await goes.finished
        clock.gate.set()

        await eventually(lambda: len(reports) == 2)
        report = reports[1]
        assert report.reconnect
        assert goes.uniqueid in {c.uniqueid for c in report.lost}
        assert stays.uniqueid in {c.uniqueid for c in report.survived}
        assert stays.channel in report.released
        assert goes.channel not in report.released
        assert goes.uniqueid not in session.live_channels


async def test_a_call_that_reached_asyncagi_while_the_link_was_down_is_handed_back(
    pbx: SimulatedPbx,
) -> None:
    """A callback that was ringing when the link dropped and was answered while it was down
    sits in AGI(agi:async) with its AsyncAGIStart lost: the resync finds it among the
    survivors and hands it back to the dialplan, so the citizen is not left in silence."""
    clock = GateClock()
    reports: list[ResyncReport] = []
    pbx.set_citizen("13900000004", Answer(steps=[WaitForPrompt(input=True)], ring_seconds=10))

    async def survey(channel: AgiChannel) -> None:
        raise AssertionError(f"no flow may start for {channel.name}")

    async with AmiSession(section(pbx), clock=clock, agi_handler=survey) as session:
        session.add_resync_listener(reports.append)
        await session.wait_connected(2)
        placing = asyncio.ensure_future(
            session.originate("PJSIP/trunk/13900000004", "survey", "s", 1, "", 30000)
        )
        await eventually(lambda: len(pbx.world.channels) == 1)
        await asyncio.sleep(0.05)  # its Newchannel reaches the session
        clock.gate.clear()
        pbx.faults.drop_connections()
        with pytest.raises(OriginateOutcomeUnknown):
            await asyncio.wait_for(placing, 5)
        (chan,) = pbx.world.channels.values()
        await eventually(lambda: chan.in_agi)
        clock.gate.set()
        await eventually(lambda: len(reports) == 2)
        report = reports[1]
        assert chan.uniqueid in {c.uniqueid for c in report.survived}
        assert report.released == (chan.name,)
        await eventually(lambda: not pbx.world.channels, within=5)


async def test_a_call_queued_by_a_killed_gateways_flow_is_handed_back_when_its_queue_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A caller whose flow ran EXEC Queue when its gateway was killed is listed in Queue,
    not AGI: a fresh gateway queues ASYNCAGI BREAK for it, which Asterisk runs when the
    seat hangs up first, so the caller goes back to the dialplan instead of waiting in
    silence; a caller the dialplan itself queued is refused the BREAK and left alone."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    sim = SimConfig(
        port=0,
        secret=SECRET,
        time_scale=0.01,
        agents=1,
        ring_seconds=(1, 1),
        talk_seconds=(100, 100),
    )
    async with SimulatedPbx(sim) as pbx:
        clock = GateClock()
        flows: list[str] = []

        async def killed_gateways_flow(channel: AgiChannel) -> None:
            flows.append(channel.name)
            if len(flows) == 1:
                await channel.exec("Queue", "hotline,,,,180")
            else:
                await channel.release()  # the dialplan queues this one

        killed = AmiSession(section(pbx), clock=clock, agi_handler=killed_gateways_flow)
        async with killed:
            await killed.wait_connected(2)
            in_flow = pbx.place_call(CallerScript(caller="13800000011", steps=[Silence(3000)]))
            await eventually(lambda: len(flows) == 1)
            dialplan = pbx.place_call(CallerScript(caller="13800000012", steps=[Silence(3000)]))
            chans = pbx.world.channels
            await eventually(lambda: chans[in_flow.channel].app == "Queue")
            await eventually(lambda: chans[dialplan.channel].app == "Queue")
            assert chans[in_flow.channel].in_agi and not chans[dialplan.channel].in_agi
            clock.gate.clear()  # the killed gateway never comes back
            pbx.faults.drop_connections()
            await eventually(lambda: clock.waiting == 1)
            reports: list[ResyncReport] = []

            async def no_flow(channel: AgiChannel) -> None:
                raise AssertionError(f"no flow may start for {channel.name}")

            async with AmiSession(section(pbx), agi_handler=no_flow) as fresh:
                fresh.add_resync_listener(reports.append)
                await eventually(lambda: len(reports) == 1)
                (report,) = reports
                assert set(report.maybe_in_asyncagi) == {in_flow.channel, dialplan.channel}
                assert report.released == ()
                outcome = await asyncio.wait_for(in_flow.finished, 10)
                assert outcome.queue == "hotline"
                assert (await asyncio.wait_for(dialplan.finished, 10)).agent is not None
    handed_back = [r.message for r in caplog.records if "inside AsyncAGI" in r.message]
    assert handed_back == [
        f"PBX main: {in_flow.channel} runs an application inside AsyncAGI with no flow:"
        " handed back to the dialplan when it returns"
    ]


async def test_close_hands_callers_in_the_ivr_back_to_the_dialplan(
    pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the session (SIGTERM) sends every caller in a flow back to the dialplan,
    whose fallback queues them, before it logs off; their flows end as released."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    started: list[str] = []
    ended: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        started.append(channel.name)
        try:
            while True:
                await channel.stream_file("hotline/hold-music")
        except ChannelHungUp as exc:
            ended.append(exc.during)
            raise

    async with AmiSession(section(pbx), agi_handler=ivr) as session:
        await session.wait_connected(2)
        calls = [
            pbx.place_call(CallerScript(caller=f"1380000000{i}", steps=[Silence(3000)]))
            for i in range(2)
        ]
        await eventually(lambda: len(started) == 2)
    assert "handing 2 calls back to the dialplan" in caplog.text
    assert ended == ["AsyncAGI ended", "AsyncAGI ended"]
    assert session.agi.flows == 0
    outcomes = [await asyncio.wait_for(call.finished, 5) for call in calls]
    assert [o.queue for o in outcomes] == ["hotline", "hotline"]


async def test_hangup_while_the_channel_list_is_read_wins_over_the_list(
    pbx: SimulatedPbx,
) -> None:
    """A call that hangs up while the resync's CoreShowChannels is being built (its Hangup
    follows the list's Complete) is neither survived nor live nor handed back."""
    clock = GateClock()
    reports: list[ResyncReport] = []
    started: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        started.append(channel.name)
        while True:
            await channel.stream_file("hotline/hold-music")

    async with AmiSession(section(pbx), clock=clock, agi_handler=ivr) as session:
        session.add_resync_listener(reports.append)
        await session.wait_connected(2)
        call = pbx.place_call(CallerScript(caller="13800000007", steps=[Silence(3000)]))
        await eventually(lambda: len(started) == 1)
        clock.gate.clear()
        pbx.faults.drop_connections()
        await eventually(lambda: clock.waiting == 1)
        async with AmiSession(section(pbx, name="operator")) as operator:
            await operator.wait_connected(2)
            pbx.faults.slow_lists(0.5)
            clock.gate.set()
            await eventually(lambda: session.connected)
            await operator.action({"Action": "Hangup", "Channel": call.channel})
            await eventually(lambda: len(reports) == 2, within=5)
            pbx.faults.slow_lists(0)
        report = reports[1]
        assert call.uniqueid not in {c.uniqueid for c in report.survived + report.appeared}
        assert call.channel not in report.released
        assert call.uniqueid not in session.live_channels


async def test_a_call_begun_while_the_channel_list_is_read_is_live_in_the_report(
    pbx: SimulatedPbx,
) -> None:
    """A call that begins while the resync's CoreShowChannels is being built (its
    Newchannel follows the list's Complete, so listeners see it before the report) is
    in the report as live, not taken for one that ended, and not handed back."""
    clock = GateClock()
    reports: list[ResyncReport] = []
    started: list[str] = []

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        started.append(channel.name)
        while True:
            await channel.stream_file("hotline/hold-music")

    async with AmiSession(section(pbx), clock=clock, agi_handler=ivr) as session:
        session.add_resync_listener(reports.append)
        await session.wait_connected(2)
        pbx.place_call(CallerScript(caller="13800000007", steps=[Silence(3000)]))
        await eventually(lambda: len(started) == 1)
        clock.gate.clear()
        pbx.faults.drop_connections()
        await eventually(lambda: clock.waiting == 1)
        pbx.faults.slow_lists(0.5)
        clock.gate.set()
        await eventually(lambda: session.connected)
        late = pbx.place_call(CallerScript(caller="13800000008", steps=[Silence(3000)]))
        await eventually(lambda: len(reports) == 2, within=5)
        pbx.faults.slow_lists(0)
        report = reports[1]
        assert late.uniqueid in {c.uniqueid for c in report.appeared}
        assert late.channel not in report.released
        assert late.uniqueid in session.live_channels


async def test_two_pbxs_at_once() -> None:
    """A pool opens one session per configured PBX; listeners learn which PBX spoke."""
    seen: list[tuple[str, str]] = []
    async with (
        SimulatedPbx(SimConfig(port=0, secret=SECRET, time_scale=0.01)) as east,
        SimulatedPbx(SimConfig(port=0, secret=SECRET, time_scale=0.01)) as west,
    ):
        sections = [section(east, name="east"), section(west, name="west", auth="md5")]
        async with PbxPool(sections) as pool:
            pool.add_listener(
                lambda name, f: (
                    seen.append((name, f["CallerIDNum"]))
                    if f["CallerIDNum"].startswith("138")
                    else None
                ),
                events={"Newchannel"},
            )
            for session in pool:
                await session.wait_connected(2)
            assert await pool["east"].ping() > 0 and await pool["west"].ping() > 0
            east.place_call(CallerScript(caller="13800000001", steps=[Silence(1)]))
            west.place_call(CallerScript(caller="13800000002", steps=[Silence(1)]))
            await eventually(lambda: len(set(seen)) == 2)
            assert sorted(set(seen)) == [("east", "13800000001"), ("west", "13800000002")]
            with pytest.raises(KeyError, match="no PBX named 'north'"):
                pool["north"]
        assert east.sessions == 0 and west.sessions == 0


def test_pool_refuses_duplicate_names() -> None:
    """Two PBX sections with one name are refused at construction."""
    with pytest.raises(ValueError, match="two PBXs are named 'main'"):
        PbxPool([PbxSection(), PbxSection()])


async def test_close_leaves_nothing_running(pbx: SimulatedPbx) -> None:
    """On exit the session logs off, its tasks are done and the PBX sees no connection."""
    session = AmiSession(section(pbx))
    async with session:
        await session.wait_connected(2)
        assert session.supervisor.tasks == 2  # the event consumer and the link
    assert session.supervisor.tasks == 0 and session.agi.flows == 0
    await eventually(lambda: pbx.sessions == 0)
    with pytest.raises(AmiNotConnected):
        await session.ping()


# -- pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason", "outcome"),
    [
        ("Success", "4", OriginateOutcome.ANSWERED),
        ("Failure", "5", OriginateOutcome.BUSY),
        ("Failure", "1", OriginateOutcome.NO_ANSWER),
        ("Failure", "3", OriginateOutcome.NO_ANSWER),
        ("Failure", "8", OriginateOutcome.CONGESTION),
        ("Failure", "0", OriginateOutcome.NO_SUCH_NUMBER),
        ("Failure", "4", OriginateOutcome.FAILED),
        ("Failure", "99", OriginateOutcome.FAILED),
        ("Failure", "", OriginateOutcome.FAILED),
        ("Failure", "x", OriginateOutcome.FAILED),
    ],
)
def test_originate_reason_codes(response: str, reason: str, outcome: OriginateOutcome) -> None:
    """OriginateResponse Reason codes map to the domain outcomes."""
    assert originate_outcome(response, reason) is outcome


def test_backoff_grows_with_jitter_and_caps() -> None:
    """Backoff doubles from reconnect_min, stays in its upper half, never passes the cap."""
    rng = random.Random(7)
    delays = [backoff_delay(a, 0.5, 30.0, rng) for a in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not fixed steps
    with pytest.raises(ValueError):
        backoff_delay(-1, 0.5, 30.0, rng)


# -- charset -------------------------------------------------------------------------------


async def test_gbk_caller_names_are_warned_once_per_pbx(caplog: pytest.LogCaptureFixture) -> None:
    """A PBX writing GBK, read as UTF-8, gives replacement characters and one warning
    naming the PBX and the charset setting, however many such frames arrive."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    names: list[str] = []
    config = SimConfig(port=0, secret=SECRET, time_scale=0.01, charset="gbk")
    async with SimulatedPbx(config) as pbx, AmiSession(section(pbx)) as session:
        session.add_listener(lambda f: names.append(f["CallerIDName"]), events={"Newchannel"})
        await session.wait_connected(2)
        for caller in ("13800138001", "13800138002"):
            await pbx.place_call(
                CallerScript(caller=caller, caller_name="张伟", steps=[Silence(1)])
            ).finished
        await eventually(lambda: len(names) >= 2)
    assert all("\ufffd" in name for name in names[:2])
    warnings = [r for r in caplog.records if "not valid utf-8" in r.getMessage()]
    assert len(warnings) == 1 and "PBX main" in warnings[0].getMessage()
    assert "charset" in warnings[0].getMessage()


async def test_charset_setting_reads_gbk_caller_names(caplog: pytest.LogCaptureFixture) -> None:
    """With charset = "gbk" for that PBX, GBK caller names arrive whole, without a warning."""
    caplog.set_level(logging.INFO, logger="gateway.pbx")
    names: list[str] = []
    config = SimConfig(port=0, secret=SECRET, time_scale=0.01, charset="gbk")
    async with SimulatedPbx(config) as pbx, AmiSession(section(pbx, charset="gbk")) as session:
        session.add_listener(lambda f: names.append(f["CallerIDName"]), events={"Newchannel"})
        await session.wait_connected(2)
        await pbx.place_call(
            CallerScript(caller="13800138003", caller_name="张伟（市民）", steps=[Silence(1)])
        ).finished
        await eventually(lambda: bool(names))
    assert names[0] == "张伟（市民）"
    assert "not valid" not in caplog.text


def test_unknown_charset_is_refused_naming_the_key(tmp_path: Path) -> None:
    """An unknown charset in a [[pbx]] section is one ConfigError naming the key."""
    path = tmp_path / "gateway.toml"
    path.write_text('[[pbx]]\nname = "main"\ncharset = "klingon"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pbx\[0\]\.charset.*unknown charset 'klingon'"):
        load(path)


async def test_a_standby_gateway_runs_no_asyncagi_flow_until_it_serves_the_pbx(
    pbx: SimulatedPbx,
) -> None:
    """While another gateway serves the PBX's AsyncAGI calls, a call entering
    AGI(agi:async) starts no flow here, and a resync hands nothing back (the call is the
    other's). Once this gateway serves them (the other died), the calls left waiting in
    AsyncAGI go back to the dialplan, and the next call runs a flow here."""
    reports: list[ResyncReport] = []
    flows: list[str] = []
    serves = False
    for citizen in ("13900000005", "13900000006"):
        pbx.set_citizen(citizen, Answer(steps=[WaitForPrompt(input=True)], ring_seconds=1))

    async def survey(channel: AgiChannel) -> None:
        flows.append(channel.name)
        await channel.hangup()

    async with AmiSession(section(pbx), agi_handler=survey) as session:
        session.share_asyncagi(lambda: serves)
        session.add_resync_listener(reports.append)
        await session.wait_connected(2)
        await session.originate("PJSIP/trunk/13900000005", "survey", "s", 1, "", 30000)
        (chan,) = pbx.world.channels.values()
        await eventually(lambda: chan.in_agi)
        pbx.faults.drop_connections()
        await eventually(lambda: len(reports) == 2)
        assert reports[1].released == () and chan.uniqueid in {
            c.uniqueid for c in reports[1].survived
        }
        await asyncio.sleep(0.2)
        assert flows == [] and chan.in_agi  # left to the gateway that serves the PBX
        serves = True
        session.asyncagi_gained()
        await eventually(lambda: not pbx.world.channels, within=5)  # the dialplan hangs up
        assert flows == []
        await session.originate("PJSIP/trunk/13900000006", "survey", "s", 1, "", 30000)
        await eventually(lambda: len(flows) == 1)
