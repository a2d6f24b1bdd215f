"""The case store: the only package that writes SQL.

``Store`` opens the database and gathers one repository per feature::

    async with Store.open(path, clock) as store:
        await store.units.add_unit(...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import aiosqlite

from gateway.clock import Clock
from gateway.config import Config
from gateway.store.accounts import AccountRepository
from gateway.store.bookings import BookingRepository
from gateway.store.callbacks import CallbackRepository
from gateway.store.calls import CallRecordRepository
from gateway.store.cases import CaseRepository
from gateway.store.chases import ChaseRepository
from gateway.store.dashboard import DashboardReads
from gateway.store.db import Database, StoreError, StoreUnavailable
from gateway.store.figures import FigureRepository
from gateway.store.postgres import (
    LOCK_TIMEOUT,
    POOL_SIZE,
    PostgresDatabase,
    PostgresReads,
    is_postgres_url,
)
from gateway.store.reader import ReadConnection
from gateway.store.sessions import SessionRepository
from gateway.store.sms import SmsRepository
from gateway.store.units import Officer, Unit, UnitRepository
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)

OPTIMIZE_EVERY = 24 * 3600.0
# Bounds the work of one PRAGMA optimize on a big store (rows sampled per index).
ANALYSIS_LIMIT = 1000

__all__ = ["Database", "Officer", "Store", "StoreError", "StoreUnavailable", "Unit"]


class Store:
    def __init__(
        self, db: Database, clock: Clock, reads: ReadConnection | PostgresReads | None = None
    ) -> None:
        self.db = db
        self.reads = reads
        self.clock = clock
        self.units = UnitRepository(db, clock)
        self.sms = SmsRepository(db, clock)
        self.callbacks = CallbackRepository(db, clock)
        self.calls = CallRecordRepository(db, clock)
        self.cases = CaseRepository(db, clock)
        self.chases = ChaseRepository(db, clock)
        self.bookings = BookingRepository(db, clock)
        self.sessions = SessionRepository(db, clock)
        self.accounts = AccountRepository(db, clock)
        self.figures = FigureRepository(reads or db, clock)
        self.dashboard = DashboardReads(reads or db, clock)
        # The same read queries as calls and cases, on the read connection (reads only).
        read_db = cast(Database, reads or db)
        self.read_calls = CallRecordRepository(read_db, clock)
        self.read_cases = CaseRepository(read_db, clock)

    @classmethod
    def configured(
        cls, config: Config, clock: Clock, *, migrate: bool = True
    ) -> contextlib.AbstractAsyncContextManager[Store]:
        """The configured store (``store.url``, else the SQLite file), with its settings:
        what every command opens."""
        return cls.open(
            config.store_location,
            clock,
            migrate=migrate,
            lock_timeout=config.store.lock_timeout,
            pool_size=config.store.pool_size,
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        location: Path | str,
        clock: Clock,
        *,
        migrate: bool = True,
        lock_timeout: float = LOCK_TIMEOUT,
        pool_size: int = POOL_SIZE,
    ) -> AsyncIterator[Store]:
        """The store at ``location``: a SQLite file's path, or a ``postgresql://`` URL
        (whose writers wait ``lock_timeout`` seconds at most for another's lock, over a
        pool of ``pool_size`` connections)."""
        async with contextlib.AsyncExitStack() as opened:
            if is_postgres_url(location):
                url = str(location)
                db: Database = await opened.enter_async_context(
                    PostgresDatabase.open(
                        url, migrate=migrate, lock_timeout=lock_timeout, pool_size=pool_size
                    )
                )
                reads: ReadConnection | PostgresReads = await opened.enter_async_context(
                    PostgresReads.open(url)
                )
            else:
                path = Path(location)
                db = await opened.enter_async_context(Database.open(path, migrate=migrate))
                reads = await opened.enter_async_context(ReadConnection.open(path))
            store = cls(db, clock, reads)
            supervisor = Supervisor("store")
            supervisor.loop("optimize", store._optimize_daily)
            try:
                yield store
            finally:
                await supervisor.aclose()
                await store.optimize()

    @property
    def name(self) -> str:
        """The store for messages: the file's path, or the database's URL without password."""
        return self.db.label

    async def optimize(self) -> None:
        """``PRAGMA optimize``: refresh the planner's statistics where they are stale
        (the first time, when the store has none, ``ANALYZE`` them all), each index
        sampled at most :data:`ANALYSIS_LIMIT` rows so that a big store stays quick.
        PostgreSQL's autovacuum keeps its statistics itself."""
        if isinstance(self.db, PostgresDatabase):
            return
        try:
            async with self.db.transaction() as conn:
                await conn.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
                cursor = await conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
                )
                analysed = await cursor.fetchone() is not None
                await conn.execute("PRAGMA optimize" if analysed else "ANALYZE")
        except (aiosqlite.Error, ValueError) as exc:
            log.warning("store %s: PRAGMA optimize failed: %s", self.db.label, exc)

    async def _optimize_daily(self) -> None:
        await asyncio.sleep(OPTIMIZE_EVERY)
        await self.optimize()

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")

    async def ping_write(self) -> None:
        """Prove the store still takes writes (a full disk fails here, not only reads)."""
        await self.db.probe_write()
