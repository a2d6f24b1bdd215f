"""The store's connection: one aiosqlite connection, WAL, numbered migrations.

All writes go through :meth:`Database.transaction`, which serialises them with an
asyncio lock, so that two tasks never interleave statements of their own
transactions on the shared connection. Reads use :meth:`Database.fetchall` and
:meth:`Database.fetchone` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.errors import GatewayError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreError(GatewayError):
    """The store refused an operation; the message says which and why."""


class Migration:
    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def bundled_migrations() -> list[Migration]:
    """The numbered ``.sql`` files in ``gateway/store/migrations``, in order."""
    found = []
    for entry in resources.files("gateway.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {[m.name for m in found]}")
    return found


class Database:
    """An open store file. Use ``async with Database.open(path) as db``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path, *, migrate: bool = True) -> AsyncIterator[Database]:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        db = cls(conn, path)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA synchronous=NORMAL")
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.conn.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"store {self.path} was never closed", ResourceWarning, stacklevel=1)

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self, migrations: Iterable[Migration] | None = None) -> list[str]:
        """Apply the migrations newer than the file's ``user_version``; return their names."""
        applied = []
        current = await self.schema_version()
        for migration in migrations if migrations is not None else bundled_migrations():
            if migration.version <= current:
                continue
            async with self.transaction() as conn:
                try:
                    # executescript would COMMIT our transaction; run statement by statement.
                    for statement in _statements(migration.sql):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version={migration.version}")
                except aiosqlite.Error as exc:
                    raise StoreError(f"migration {migration.name} failed: {exc}") from exc
            log.info("store %s: applied migration %s", self.path, migration.name)
            applied.append(migration.name)
            current = migration.version
        return applied

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); rolled back on any exception."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()


def _statements(script: str) -> list[str]:
    """Split a migration into statements: each ends with ``;`` at the end of a line."""
    out, buffer = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(buffer).strip())
            buffer = []
    tail = "\n".join(buffer).strip()
    if tail:
        out.append(tail)
    return out
