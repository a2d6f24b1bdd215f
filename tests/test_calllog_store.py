"""Call records in the store: idempotent upserts, attachments, reading back."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.ami.frames import Frame, iter_frames
from gateway.calllog.builder import CallLogBuilder, CallRecord
from gateway.clock import ManualClock
from gateway.store import Store, StoreError


def build(path: Path, clock: ManualClock, *, cut_at_hangup: bool = False) -> list[CallRecord]:
    builder = CallLogBuilder("main", clock)
    frames = [f for f in iter_frames(path.read_bytes()) if isinstance(f, Frame)]
    if cut_at_hangup:
        frames = frames[: next(i for i, f in enumerate(frames) if f.event == "Hangup")]
    for frame in frames:
        clock.advance(0.01)
        builder.feed(frame)
    return builder.drain()


async def test_upsert_is_idempotent(store: Store, clock: ManualClock, transcripts: Path) -> None:
    """Storing the same 200 records twice leaves 200 rows, equal to what was stored."""
    records = build(transcripts / "sip-load-200-calls.rx.txt", clock)
    assert await store.calls.upsert(records) == 200
    await store.calls.upsert(records)
    assert await store.calls.count() == 200
    stored = await store.calls.get("main", records[0].linkedid)
    assert stored is not None and stored.record == records[0]


async def test_open_record_is_replaced_by_the_complete_one(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """A record stored while the call lives is updated in place when the call ends."""
    path = transcripts / "ivr-asyncagi-dtmf.rx.txt"
    (live,) = build(path, clock, cut_at_hangup=True)
    (done,) = build(path, clock)
    await store.calls.upsert([live])
    await store.calls.upsert([done])
    rows = await store.calls.find()
    assert len(rows) == 1 and rows[0].record.complete and rows[0].record.disposition == "ANSWERED"


async def test_stale_open_snapshot_never_reopens_a_complete_record(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """An open snapshot stored after the complete one (e.g. before a restart) changes nothing."""
    path = transcripts / "ivr-asyncagi-dtmf.rx.txt"
    (live,) = build(path, clock, cut_at_hangup=True)
    (done,) = build(path, clock)
    await store.calls.upsert([done])
    assert await store.calls.upsert([live]) == 0
    stored = await store.calls.get("main", done.linkedid)
    assert stored is not None and stored.record == done


async def test_attach_after_the_record_exists(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """Attaching to a stored call updates its row; a later upsert without them keeps them."""
    (done,) = build(transcripts / "ivr-asyncagi-dtmf.rx.txt", clock)
    await store.calls.upsert([done])
    assert await store.calls.attach("main", done.linkedid, ivr_path=["欢迎", "菜单:1"], case_id=3)
    await store.calls.upsert([done])
    stored = await store.calls.get("main", done.linkedid)
    assert stored is not None
    assert stored.record.ivr_path == ("欢迎", "菜单:1") and stored.record.case_id == 3


async def test_attach_before_the_record_exists(
    store: Store, clock: ManualClock, transcripts: Path
) -> None:
    """An attachment to a call not stored yet is taken over by the call's first upsert."""
    (done,) = build(transcripts / "sip-call-rfc4733-dtmf.rx.txt", clock)
    assert not await store.calls.attach("main", done.linkedid, recording="/data/voice/m1.wav")
    assert not await store.calls.attach("main", done.linkedid, case_id=9)
    await store.calls.upsert([done])
    stored = await store.calls.get("main", done.linkedid)
    assert stored is not None
    assert stored.record.recording == "/data/voice/m1.wav" and stored.record.case_id == 9
    rows = await store.db.fetchall("SELECT * FROM call_record_attachments")
    assert rows == []


async def test_list_filters(store: Store, clock: ManualClock, transcripts: Path) -> None:
    """Calls are listed newest first, filtered by start, direction and caller."""
    sip = build(transcripts / "sip-call-rfc4733-dtmf.rx.txt", clock)
    queue = build(transcripts / "queue-errors-command.rx.txt", clock)
    outbound = dataclasses.replace(
        sip[0],
        linkedid="x.1",
        direction="outbound",
        caller_number="+8613912345678",
        started_at=sip[0].started_at + timedelta(days=1),
    )
    await store.calls.upsert([*sip, *queue, outbound])
    assert [r.record.linkedid for r in await store.calls.find()] == [
        "x.1",
        sip[0].linkedid,
        queue[0].linkedid,
    ]
    assert [r.record.linkedid for r in await store.calls.find(direction="outbound")] == ["x.1"]
    by_caller = await store.calls.find(caller="+8613912345678")
    assert [r.record.linkedid for r in by_caller] == ["x.1"]
    later = await store.calls.find(since=sip[0].started_at + timedelta(hours=1))
    assert [r.record.linkedid for r in later] == ["x.1"]
    assert len(await store.calls.find(limit=1)) == 1


async def test_bad_input_is_refused(store: Store, clock: ManualClock, transcripts: Path) -> None:
    """An unknown direction or a zero limit is refused with a message naming it; nothing written."""
    (done,) = build(transcripts / "sip-call-rfc4733-dtmf.rx.txt", clock)
    with pytest.raises(StoreError, match="unknown direction 'sideways'"):
        await store.calls.upsert([dataclasses.replace(done, direction="sideways")])
    assert await store.calls.count() == 0
    with pytest.raises(StoreError, match="unknown direction 'up'"):
        await store.calls.find(direction="up")
    with pytest.raises(StoreError, match="limit must be at least 1"):
        await store.calls.find(limit=0)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
