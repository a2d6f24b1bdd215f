"""The call log across restarts and reconnects, and the PBX's clock, against the simulated PBX."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.calllog.builder import INBOUND, NOTE_CLOSED_AT_RESYNC, CallRecord
from gateway.calllog.pbx_clock import parse_utc_offset, probe_pbx_offset
from gateway.calllog.service import CallLogService
from gateway.clock import Clock, ManualClock
from gateway.pbx.session import AmiSession
from gateway.sim.ami import CallerScript, SimConfig, SimulatedPbx
from gateway.store import Store
from tests.pbx_support import SECRET, section
from tests.polling import until


def open_record(linkedid: str, started: datetime) -> CallRecord:
    """A record an earlier run stored while the call was up, and never completed."""
    return CallRecord(
        pbx="main", linkedid=linkedid, uniqueid=linkedid, direction=INBOUND,
        caller_number="+8613800000001", caller_name=None, dialled_number=None,
        started_at=started, answered_at=started, ended_at=None, duration_s=None,
        billable_s=None, disposition=None, hangup_cause=None, hangup_cause_text=None,
        ivr_path=(), queue=None, queue_wait_s=None, agent=None, recording=None,
        case_id=None, dtmf="", complete=False, partial=False, note=None,
    )  # fmt: skip


async def test_records_left_open_by_a_killed_run_are_closed_after_the_resync(
    tmp_path: Path,
) -> None:
    """After the first resync an open record whose call is not live is closed with a note;
    the record of a call still up at the PBX stays open."""
    sim = SimConfig(port=0, secret=SECRET, time_scale=0.01, recordings_dir=tmp_path)
    async with SimulatedPbx(sim) as pbx, Store.open(tmp_path / "s.sqlite3", Clock()) as store:
        # A caller who waits in AsyncAGI while no gateway is logged in.
        live = pbx.place_call(CallerScript(caller="+8613912345678", dialled="9600110"))
        now = datetime.now(UTC)
        await store.calls.upsert(
            [
                open_record("1796000000.7", now - timedelta(minutes=3)),
                open_record(live.linkedid, now),
            ]
        )
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
            async with AmiSession(section(pbx)) as session:
                calllog.connect(session)
                await session.wait_connected(5)

                async def stale_closed() -> bool:
                    row = await store.calls.get("main", "1796000000.7")
                    return row is not None and row.record.complete

                await until(stale_closed, seconds=5)
                still = await store.calls.get("main", live.linkedid)
    assert still is not None and not still.record.complete


async def test_a_closed_stale_record_says_why_and_when(tmp_path: Path) -> None:
    """The closed record is complete, answered, ended at its last update, with the note."""
    async with SimulatedPbx(SimConfig(port=0, secret=SECRET, time_scale=0.01)) as pbx:
        async with Store.open(tmp_path / "s.sqlite3", Clock()) as store:
            started = datetime.now(UTC) - timedelta(minutes=3)
            await store.calls.upsert([open_record("1796000000.9", started)])
            before = await store.calls.get("main", "1796000000.9")
            assert before is not None
            async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
                async with AmiSession(section(pbx)) as session:
                    calllog.connect(session)
                    await session.wait_connected(5)

                    async def closed() -> bool:
                        row = await store.calls.get("main", "1796000000.9")
                        return row is not None and row.record.complete

                    await until(closed, seconds=5)
            row = await store.calls.get("main", "1796000000.9")
    assert row is not None
    record = row.record
    assert record.note == NOTE_CLOSED_AT_RESYNC
    assert record.disposition == "ANSWERED"
    assert record.ended_at == before.updated_at
    assert record.duration_s is not None
    assert abs(record.duration_s - (before.updated_at - started).total_seconds()) < 0.01


async def test_the_pbx_clock_is_asked_after_login(tmp_path: Path) -> None:
    """A PBX in Asia/Shanghai answers Getvar STRFTIME(,,%z) with +0800; the call log keeps it."""
    sim = SimConfig(port=0, secret=SECRET, time_scale=0.01, timezone="Asia/Shanghai")
    async with SimulatedPbx(sim) as pbx, Store.open(tmp_path / "s.sqlite3", Clock()) as store:
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
            async with AmiSession(section(pbx)) as session:
                calllog.connect(session)
                await session.wait_connected(5)
                assert await probe_pbx_offset(session) == timedelta(hours=8)

                async def learned() -> bool:
                    return calllog.pbx_clocks()[0].offset is not None

                await until(learned, seconds=5)
                (clock,) = calllog.pbx_clocks()
    assert clock.offset == timedelta(hours=8)
    assert "UTC+08:00" in clock.describe()


async def test_cdr_times_of_a_pbx_in_another_zone_are_right(tmp_path: Path) -> None:
    """A hotline call on a PBX writing Cdr in Asia/Shanghai is stored at its true UTC time,
    and an IVR's hang-up is recorded as ended by the gateway."""
    sim = SimConfig(
        port=0, secret=SECRET, time_scale=0.01, timezone="Asia/Shanghai", recordings_dir=tmp_path
    )
    async with SimulatedPbx(sim) as pbx, Store.open(tmp_path / "s.sqlite3", Clock()) as store:
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:

            async def ivr(channel: object) -> None:
                await channel.answer()  # type: ignore[attr-defined]
                await channel.hangup()  # type: ignore[attr-defined]

            async with AmiSession(section(pbx), agi_handler=ivr) as session:
                calllog.connect(session)
                await session.wait_connected(5)
                call = pbx.place_call(CallerScript(caller="+8613912345678", dialled="9600110"))
                await asyncio.wait_for(call.finished, 5)

                async def complete() -> bool:
                    row = await store.calls.get("main", call.linkedid)
                    return (
                        row is not None and row.record.complete and row.record.ended_at is not None
                    )

                await until(complete, seconds=5)
                row = await store.calls.get("main", call.linkedid)
    assert row is not None
    created = datetime.fromtimestamp(int(call.linkedid.split(".")[0]), UTC)
    assert abs(row.record.started_at - created) <= timedelta(seconds=2)
    assert row.record.ended_at is not None and row.record.ended_at - created < timedelta(minutes=1)
    # The IVR's AGI HANGUP: cause 0 from the PBX, but the record says who ended the call.
    assert row.record.ended_by == "gateway"


def test_utc_offsets_parse_as_strftime_writes_them() -> None:
    """``%z`` forms parse; anything else is refused."""
    assert parse_utc_offset("+0800") == timedelta(hours=8)
    assert parse_utc_offset("-0330") == timedelta(hours=-3, minutes=-30)
    assert parse_utc_offset("+00:00") == timedelta(0)
    for bad in ("", "0800", "+8", "+2500", "+0860", "UTC"):
        try:
            parse_utc_offset(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} parsed")


async def test_run_check_line_names_the_pbx_clock_and_a_wrong_setting(tmp_path: Path) -> None:
    """`run --check` gets one line: the PBX's offset, and whether the setting agrees."""
    from gateway.calllog.pbx_clock import check_pbx_clock

    sim = SimConfig(port=0, secret=SECRET, time_scale=0.01, timezone="Asia/Shanghai")
    async with SimulatedPbx(sim) as pbx, AmiSession(section(pbx)) as session:
        await session.wait_connected(5)
        ok, line = await check_pbx_clock(session, "main")
        assert ok and line.startswith("PBX main clock: UTC+08:00")
        ok, line = await check_pbx_clock(session, "main", "Asia/Shanghai")
        assert ok and "as pbx.main.timezone Asia/Shanghai says" in line
        ok, line = await check_pbx_clock(session, "main", "UTC")
        assert not ok and "pbx.main.timezone UTC is UTC+00:00 now" in line
        ok, line = await check_pbx_clock(session, "main", "Mars/Base")
        assert not ok and "is not a timezone" in line
    ok, line = await check_pbx_clock(session, "main")
    assert not ok and line.startswith("PBX main clock: could not ask")


async def test_a_call_begun_after_the_resync_is_not_taken_for_a_stale_one(
    store: Store, clock: ManualClock
) -> None:
    """Only records open before the resync and not live are closed; a call that began
    between the resync and the flush keeps its open record."""
    from tests.test_calllog_builder import event

    calllog = CallLogService(store.calls, clock)
    await store.calls.upsert([open_record("1796000000.3", clock.now())])
    calllog.on_resync([])
    calllog.on_event(
        event("Newchannel", Channel="PJSIP/trunk-01", Uniqueid="1796000100.1",
              Linkedid="1796000100.1", ChannelState="4", Context="hotline", Exten="s")
    )  # fmt: skip
    await calllog.flush()
    stale = await store.calls.get("main", "1796000000.3")
    fresh = await store.calls.get("main", "1796000100.1")
    assert stale is not None and stale.record.complete
    assert fresh is not None and not fresh.record.complete


async def test_a_queued_call_on_a_pbx_sending_cel_is_logged_whole(tmp_path: Path) -> None:
    """IVR, queue, a seat who hangs up: one inbound record at true UTC times, with the seat,
    its talk time and 'ended by the seat', on a PBX in UTC+8 that also sends CEL."""
    sim = SimConfig(
        port=0, secret=SECRET, time_scale=0.01, agents=1, timezone="Asia/Shanghai", cel=True,
        talk_seconds=(20.0, 20.0), ring_seconds=(1.0, 1.0), recordings_dir=tmp_path,
    )  # fmt: skip
    cel: list[str] = []

    async def ivr(channel: object) -> None:
        await channel.answer()  # type: ignore[attr-defined]
        # returning hands the caller back to the dialplan: Queue(hotline)

    async with SimulatedPbx(sim) as pbx, Store.open(tmp_path / "s.sqlite3", Clock()) as store:
        async with CallLogService(store.calls, Clock(), flush_interval=0.02) as calllog:
            async with AmiSession(section(pbx), agi_handler=ivr) as session:
                session.add_listener(lambda f: cel.append(f.get("EventName", "")), ["CEL"])
                calllog.connect(session)
                await session.wait_connected(5)
                call = pbx.place_call(CallerScript(caller="+8613912345678", dialled="9600110"))
                await asyncio.wait_for(call.finished, 10)

                async def complete() -> bool:
                    row = await store.calls.get("main", call.linkedid)
                    return (
                        row is not None and row.record.complete and row.record.ended_at is not None
                    )

                await until(complete, seconds=5)
                row = await store.calls.get("main", call.linkedid)
    assert row is not None
    record = row.record
    created = datetime.fromtimestamp(int(call.linkedid.split(".")[0]), UTC)
    assert abs(record.started_at - created) <= timedelta(seconds=2)
    assert record.direction == INBOUND and record.agent is not None
    assert record.talk_s is not None and 19 <= record.talk_s <= 21
    assert record.ended_by == "seat"
    assert "CHAN_START" in cel and "BRIDGE_ENTER" in cel and "LINKEDID_END" in cel


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
