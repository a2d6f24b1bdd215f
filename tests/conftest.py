"""Shared fixtures: paths to the real Asterisk transcripts, a fresh store per test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.store import Store

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts" / "asterisk-22"


@pytest.fixture
def transcripts() -> Path:
    """The folder of real Asterisk 22 byte streams."""
    if not TRANSCRIPTS.is_dir():
        pytest.fail(f"the recorded AMI transcripts are missing at {TRANSCRIPTS}")
    return TRANSCRIPTS


@pytest.fixture
def clock() -> ManualClock:
    """A clock fixed at 2026-11-30 02:00 UTC (10:00 in Shanghai, a Monday)."""
    return ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Store]:
    """A migrated store in a temporary folder."""
    async with Store.open(tmp_path / "gateway.sqlite3", clock) as opened:
        yield opened


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Start without root log handlers (an earlier test's may write to a closed capture) and
    undo the set-up done by the code under test (``gateway.cli.main``) afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
