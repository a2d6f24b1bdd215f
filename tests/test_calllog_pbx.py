"""The call log wired to a real AMI session against the simulated PBX over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.calllog.service import CallLogService
from gateway.clock import Clock
from gateway.config import PbxSection, Secret
from gateway.pbx.channel import AgiChannel
from gateway.pbx.session import AmiSession
from gateway.sim.ami import Busy, CallerScript, SimConfig, SimulatedPbx
from gateway.store import Store


async def test_hotline_call_is_logged_end_to_end(tmp_path: Path) -> None:
    """A call to the simulated hotline, answered and hung up by the IVR, is one stored record."""
    sim_config = SimConfig(port=0, agents=1, time_scale=0.01, recordings_dir=tmp_path)
    handled = asyncio.Event()

    async def ivr(channel: AgiChannel) -> None:
        await channel.answer()
        await channel.hangup()
        handled.set()

    async with (
        SimulatedPbx(sim_config) as pbx,
        Store.open(tmp_path / "s.sqlite3", Clock()) as store,
    ):
        pbx_config = PbxSection(
            port=pbx.port,
            username=sim_config.username,
            secret=Secret(sim_config.secret),
            reconnect_min=0.05,
            reconnect_max=0.2,
        )
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
            async with AmiSession(pbx_config, agi_handler=ivr) as session:
                calllog.connect(session)
                await session.wait_connected(5)
                call = pbx.place_call(
                    CallerScript(caller="+8613912345678", caller_name="张三", dialled="9600110")
                )
                await asyncio.wait_for(handled.wait(), 5)
                await asyncio.wait_for(call.finished, 5)
                for _ in range(200):  # the Hangup and Cdr travel after the IVR is done
                    row = await store.calls.get("main", call.uniqueid)
                    if row is not None and row.record.complete:
                        break
                    await asyncio.sleep(0.01)
        rows = await store.calls.find()
    assert len(rows) == 1
    record = rows[0].record
    assert record.complete and record.direction == "inbound"
    assert record.caller_number == "+8613912345678" and record.caller_name == "张三"
    assert record.dialled_number == "9600110"
    assert record.disposition == "ANSWERED"


async def test_busy_callback_is_logged_outbound(tmp_path: Path) -> None:
    """A callback the gateway originates to a busy citizen is one outbound BUSY record."""
    sim_config = SimConfig(port=0, agents=1, time_scale=0.01, recordings_dir=tmp_path)
    async with (
        SimulatedPbx(sim_config) as pbx,
        Store.open(tmp_path / "s.sqlite3", Clock()) as store,
    ):
        pbx.set_citizen("+8613911112222", Busy())
        pbx_config = PbxSection(
            port=pbx.port,
            username=sim_config.username,
            secret=Secret(sim_config.secret),
        )
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
            async with AmiSession(pbx_config) as session:
                calllog.connect(session)
                await session.wait_connected(5)
                await session.originate("PJSIP/13911112222@trunk", "survey", "s")
                (call,) = pbx.calls_to("13911112222")
                await asyncio.wait_for(call.finished, 5)
                for _ in range(200):
                    rows = await store.calls.find()
                    if rows and rows[0].record.complete:
                        break
                    await asyncio.sleep(0.01)
        rows = await store.calls.find()
    assert len(rows) == 1
    record = rows[0].record
    assert record.complete and record.direction == "outbound" and record.disposition == "BUSY"
