"""Dashboard sessions ended on the server (logout) before their cookie expires."""

from __future__ import annotations

from datetime import datetime

from gateway.clock import Clock, utc_iso
from gateway.store.db import Database


class SessionRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def end(self, nonce: str, expires_at: datetime) -> None:
        """Refuse the session ``nonce`` from now on; forget ended sessions already expired."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO ended_sessions (nonce, expires_at) VALUES (?, ?)",
                (nonce, utc_iso(expires_at)),
            )
            await conn.execute(
                "DELETE FROM ended_sessions WHERE expires_at < ?", (utc_iso(self._clock.now()),)
            )

    async def ended(self, nonce: str) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM ended_sessions WHERE nonce = ?", (nonce,))
        return row is not None
