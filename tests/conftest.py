"""Shared fixtures: paths to the real Asterisk transcripts, a fresh store per test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sms_support import ACCOUNT as SMS_ACCOUNT
from sms_support import TOKEN as SMS_TOKEN

from gateway.clock import Clock, ManualClock
from gateway.sim.twilio import SimulatedTwilio
from gateway.store import Store

# The throwaway PostgreSQL (fixtures postgres_cluster, postgres_url; marker postgres).
pytest_plugins = ["postgres_cluster"]

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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store is, once per engine: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "gateway.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def engine_store(store_location: Path | str, clock: ManualClock) -> AsyncIterator[Store]:
    """A migrated store on each engine. A module runs on both by naming it its ``store``."""
    async with Store.open(store_location, clock) as opened:
        yield opened


@pytest.fixture
async def engine_live_store(store_location: Path | str) -> AsyncIterator[Store]:
    """A store on real time, once per engine (a module names it its ``live_store``)."""
    async with Store.open(store_location, Clock()) as opened:
        yield opened


@pytest.fixture
async def live_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on real time (the SMS worker and the simulated Twilio run on real time)."""
    async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as opened:
        yield opened


@pytest.fixture
async def tw() -> AsyncIterator[SimulatedTwilio]:
    """The simulated Twilio with a fast walk to delivered."""
    async with SimulatedTwilio(SMS_ACCOUNT, SMS_TOKEN, time_scale=0.1) as sim:
        yield sim


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
