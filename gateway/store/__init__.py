"""The case store: the only package that writes SQL.

``Store`` opens the database and gathers one repository per feature::

    async with Store.open(path, clock) as store:
        await store.units.add_unit(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.clock import Clock
from gateway.store.callbacks import CallbackRepository
from gateway.store.calls import CallRecordRepository
from gateway.store.cases import CaseRepository
from gateway.store.db import Database, StoreError, StoreUnavailable
from gateway.store.sessions import SessionRepository
from gateway.store.sms import SmsRepository
from gateway.store.units import Officer, Unit, UnitRepository

__all__ = ["Database", "Officer", "Store", "StoreError", "StoreUnavailable", "Unit"]


class Store:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.units = UnitRepository(db, clock)
        self.sms = SmsRepository(db, clock)
        self.callbacks = CallbackRepository(db, clock)
        self.calls = CallRecordRepository(db, clock)
        self.cases = CaseRepository(db, clock)
        self.sessions = SessionRepository(db, clock)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path, clock: Clock, *, migrate: bool = True) -> AsyncIterator[Store]:
        async with Database.open(path, migrate=migrate) as db:
            yield cls(db, clock)

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")

    async def ping_write(self) -> None:
        """Prove the store still takes writes (a full disk fails here, not only reads)."""
        await self.db.probe_write()
