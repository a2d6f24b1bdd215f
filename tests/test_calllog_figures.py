"""Hotline figures on the dashboard count hotline calls only, never the gateway's callbacks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.db import bundled_migrations
from tests.test_calllog_replay import SESSION, replay_session


async def test_replayed_callbacks_do_not_count_as_hotline_calls(
    store: Store, transcripts: Path
) -> None:
    """The real session's 33 survey callbacks stay out of the day's hotline total."""
    builder = replay_session(transcripts / SESSION)
    records = builder.complete_records()
    await store.calls.upsert(records)
    day = datetime(2026, 11, 30, tzinfo=UTC)
    figures = await store.calls.hotline_figures(day, day.replace(hour=23, minute=59))
    hotline = [r for r in records if r.recording and r.recording.startswith("hotline/")]
    assert figures.total == len(hotline) >= 15
    assert figures.answered_by_agent == sum(1 for r in hotline if r.agent is not None)
    assert len(records) - figures.total >= 33


async def test_migration_turns_earlier_inbound_callbacks_outbound(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Records of callbacks stored as inbound before 0006 become outbound, with their ActionID."""
    path = tmp_path / "s.sqlite3"
    async with Store.open(path, clock, migrate=False) as store:
        await store.db.migrate([m for m in bundled_migrations() if m.version <= 5])
        conn = store.db.conn
        await conn.execute("PRAGMA foreign_keys=OFF")
        await conn.execute(
            "INSERT INTO callback_attempts (item_id, round, attempt, channel, outcome, pbx,"
            " action_id, uniqueid, started_at) VALUES (1, 1, 1, 'call', 'rated', 'main',"
            " 'action/x/1/289', '1796053467.41', '2026-11-30T15:44:27+00:00')"
        )
        for linkedid in ("1796053467.41", "1796052932.0"):
            await conn.execute(
                "INSERT INTO call_records (pbx, linkedid, uniqueid, direction, started_at,"
                " complete, updated_at) VALUES ('main', ?, ?, 'inbound',"
                " '2026-11-30T15:44:27+00:00', 1, '2026-11-30T15:45:00+00:00')",
                (linkedid, linkedid),
            )
        await conn.commit()
        await conn.execute("PRAGMA foreign_keys=ON")
        await store.db.migrate()
        callback = await store.calls.get("main", "1796053467.41")
        hotline = await store.calls.get("main", "1796052932.0")
    assert callback is not None and hotline is not None
    assert callback.record.direction == "outbound"
    assert callback.record.originate_id == "action/x/1/289"
    assert hotline.record.direction == "inbound" and hotline.record.originate_id is None


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
