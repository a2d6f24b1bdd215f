"""A read-only connection for reports, beside the store's one writing connection.

The writing connection (``gateway.store.db``) runs every statement in its own
thread, one after the other: a report that reads for a while there makes an IVR
lookup or a call-log write wait behind it. Reports read here instead. In WAL mode
a reader sees the last committed state and neither waits for the writer nor holds
it up; the connection is opened ``mode=ro`` and ``query_only``, so it cannot write
by mistake.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite


class ReadConnection:
    """One read-only connection. Use ``async with ReadConnection.open(path) as reads``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[ReadConnection]:
        # An absolute path: the URI must not depend on the working folder.
        uri = f"{path.absolute().as_uri()}?mode=ro"  # noqa: ASYNC240 - no I/O, only a name
        conn = await aiosqlite.connect(uri, uri=True)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA query_only=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            yield cls(conn)
        finally:
            await conn.close()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def trace(self, callback: Callable[[str], None] | None) -> None:
        """Pass every statement this connection runs to ``callback`` (None: stop)."""
        await self.conn.set_trace_callback(callback)  # type: ignore[arg-type]
