"""The call log service: listener in, batched upserts out, clean stop, retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.ami.frames import Frame, iter_frames
from gateway.calllog.builder import EVENTS, NOTE_ENDED_OFFLINE, CallLogBuilder, CallRecord
from gateway.calllog.service import CallLogService
from gateway.clock import ManualClock
from gateway.config import load
from gateway.errors import GatewayError
from gateway.store import Store, StoreError
from gateway.store.calls import CallRecordRepository
from gateway.supervise import ComponentDegraded


class ReplaySession:
    """Plays a recorded stream to its listeners the way the AMI session does: a
    synchronous call per event, filtered by the names the listener asked for."""

    def __init__(self) -> None:
        self.listeners: list[tuple[Callable[[Frame], None], frozenset[str] | None]] = []
        self.resync_listeners: list[Callable[[Any], None]] = []

    def add_listener(
        self, fn: Callable[[Frame], None], events: Iterable[str] | None = None
    ) -> None:
        self.listeners.append((fn, None if events is None else frozenset(events)))

    def add_resync_listener(self, fn: Callable[[Any], None]) -> None:
        self.resync_listeners.append(fn)

    async def play(self, frames: Sequence[Frame], every: int = 50) -> None:
        for index, frame in enumerate(frames):
            for fn, wanted in self.listeners:
                if wanted is None or frame.get("Event") in wanted:
                    fn(frame)
            if index % every == 0:
                await asyncio.sleep(0)  # the session's consumer yields between reads

    def resync(self, report: Any) -> None:
        for fn in self.resync_listeners:
            fn(report)


@dataclass(frozen=True)
class Channel:
    channel: str
    uniqueid: str
    linkedid: str
    caller_number: str = ""


@dataclass(frozen=True)
class Report:
    pbx: str
    at: datetime
    reconnect: bool
    survived: tuple[Channel, ...] = ()
    lost: tuple[Channel, ...] = ()
    appeared: tuple[Channel, ...] = ()
    released: tuple[str, ...] = field(default_factory=tuple)


class FlakyRepository(CallRecordRepository):
    """The real repository, whose first ``failures`` writes fail as a full disk would."""

    def __init__(self, inner: CallRecordRepository, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def upsert(self, records: Sequence[CallRecord]) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("database or disk is full")
        return await self.inner.upsert(records)


def frames_of(path: Path) -> list[Frame]:
    return [f for f in iter_frames(path.read_bytes()) if isinstance(f, Frame)]


async def eventually(check: Callable[[], Any], tries: int = 200) -> None:
    """Poll the store (which has no change feed) every 10 ms, for at most ``tries`` times."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"condition not met after {tries} polls")


def test_events_named_are_the_events_read() -> None:
    """EVENTS (given to the session's filter) is exactly the set the builder handles."""
    builder = CallLogBuilder("main", ManualClock(datetime(2026, 1, 1, tzinfo=UTC)))
    assert set(builder._handlers) == EVENTS


async def test_two_hundred_calls_are_stored_once(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """200 replayed calls end as 200 complete rows; stopping stores what was left."""
    session = ReplaySession()
    async with CallLogService(store.calls, clock, flush_interval=0.05, batch_size=64) as calllog:
        calllog.connect(session)
        await session.play(frames_of(transcripts / "sip-load-200-calls.rx.txt"))
    rows = await store.calls.find(limit=500)
    assert len(rows) == 200 and all(r.record.complete for r in rows)
    assert calllog.stored >= 200 and calllog.failed_flushes == 0


async def test_a_full_batch_is_stored_before_the_interval(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """With a long interval, a full batch of changes wakes the flush task at once."""
    session = ReplaySession()
    async with CallLogService(store.calls, clock, flush_interval=60, batch_size=20) as calllog:
        calllog.connect(session)
        await session.play(frames_of(transcripts / "sip-load-200-calls.rx.txt"))

        async def some_stored() -> bool:
            return await store.calls.count() > 0

        await eventually(some_stored)


async def test_open_call_is_stored_while_it_lives(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """A live call is stored open within the flush interval, then completed in place."""
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cut = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    session = ReplaySession()
    async with CallLogService(store.calls, clock, flush_interval=0.02) as calllog:
        calllog.connect(session)
        await session.play(frames[:cut])

        async def stored_open() -> bool:
            row = await store.calls.get("main", "1795896766.4")
            return row is not None and not row.record.complete

        await eventually(stored_open)
        await session.play(frames[cut:])
    row = await store.calls.get("main", "1795896766.4")
    assert row is not None and row.record.complete and await store.calls.count() == 1


async def test_failed_writes_are_retried(
    store: Store, clock: ManualClock, transcripts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store error on flush loses nothing: the records are written by a later flush; the
    error is logged once, not at every retry, and /health's check fails until it passes."""
    caplog.set_level(logging.INFO, logger="gateway.calllog")
    repo = FlakyRepository(store.calls, failures=2)
    calllog = CallLogService(repo, clock, flush_interval=0.01)
    session = ReplaySession()
    calllog.connect(session)
    await session.play(frames_of(transcripts / "queue-errors-command.rx.txt"))
    calllog.check()
    assert await calllog.flush() == 0
    assert await calllog.flush() == 0
    with pytest.raises(ComponentDegraded, match="2 failed flushes"):
        calllog.check()
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert await calllog.flush() == 1
    calllog.check()
    assert "stored again after 2 failed flushes" in caplog.text
    assert calllog.failed_flushes == 2
    rows = await store.calls.find()
    assert len(rows) == 1 and rows[0].record.agent == "Agent Smith"


async def test_resync_report_closes_lost_calls(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """A resync report without the call ends its record with the note; an appeared one opens."""
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cut = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    session = ReplaySession()
    async with CallLogService(store.calls, clock) as calllog:
        calllog.connect(session)
        await session.play(frames[:cut])
        session.resync(
            Report(
                pbx="main",
                at=clock.now(),
                reconnect=True,
                appeared=(
                    Channel("PJSIP/trunk-00000007", "1795899999.7", "1795899999.7", "13912345678"),
                ),
            )
        )
        await session.play(frames[cut:])  # stragglers of the lost call
    lost = await store.calls.get("main", "1795896766.4")
    assert lost is not None and lost.record.complete and lost.record.note == NOTE_ENDED_OFFLINE
    appeared = await store.calls.get("main", "1795899999.7")
    assert appeared is not None and appeared.record.partial and not appeared.record.complete
    assert appeared.record.caller_number == "+8613912345678"
    assert await store.calls.count() == 2


async def test_attach_through_the_service(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """The flow runner's attach reaches the stored record."""
    session = ReplaySession()
    async with CallLogService(store.calls, clock) as calllog:
        calllog.connect(session)
        calllog.attach("1795897503.0", ivr_path=["welcome", "menu:2"], case_id=12)
        await session.play(frames_of(transcripts / "sip-call-rfc4733-dtmf.rx.txt"))
    row = await store.calls.get("main", "1795897503.0")
    assert row is not None and row.record.case_id == 12
    assert row.record.ivr_path == ("welcome", "menu:2")


async def test_from_config_and_bad_input(store: Store, clock: ManualClock) -> None:
    """The service is built per configured PBX; an unknown PBX or bad setting is refused."""
    config = load()
    calllog = CallLogService.from_config(config, store.calls, clock)
    assert calllog.builder().pbx == config.pbx[0].name
    with pytest.raises(GatewayError, match="unknown PBX 'nowhere'"):
        calllog.builder("nowhere")
    with pytest.raises(ValueError, match="flush_interval must be positive"):
        CallLogService(store.calls, clock, flush_interval=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        CallLogService(store.calls, clock, batch_size=0)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store


async def test_two_pbxs_with_one_linkedid_give_two_records_each_naming_its_pbx(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """A Linkedid is unique per PBX only: the same call on two PBXs is two records, each
    naming its PBX, and the resync of one PBX closes only its own open records."""
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cut = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    north, south = ReplaySession(), ReplaySession()
    async with CallLogService(store.calls, clock, pbx=["north", "south"]) as calllog:
        calllog.connect(north, "north")
        calllog.connect(south, "south")
        await north.play(frames[:cut])
        await south.play(frames[:cut])
        await calllog.flush()
        both = await store.calls.find(limit=10)
        assert sorted(r.record.pbx for r in both) == ["north", "south"]
        assert {r.record.linkedid for r in both} == {"1795896766.4"}
        north.resync(Report(pbx="north", at=clock.now(), reconnect=True))
        await calllog.flush()
        closed = await store.calls.get("north", "1795896766.4")
        still = await store.calls.get("south", "1795896766.4")
        assert closed is not None and closed.record.complete
        assert still is not None and not still.record.complete
        await south.play(frames[cut:])
    ended = await store.calls.get("south", "1795896766.4")
    assert ended is not None and ended.record.complete and ended.record.note is None
    assert await store.calls.count() == 2
