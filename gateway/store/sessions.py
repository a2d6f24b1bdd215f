"""People's sessions, kept on the server.

The browser holds a random value in its cookie; the store keeps only its SHA-256
(:func:`token_hash`), so the store alone opens no session. A session ends at
logout, when its user is disabled or changes password, when it has been idle
longer than the idle lifetime, or when it is older than the absolute lifetime
(both given by the caller, from ``web.session_idle`` and ``web.session_lifetime``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.db import Database

# A session's last use is written at most this often (each open dashboard asks every
# 10 seconds): the idle lifetime is kept to within this much.
TOUCH_EVERY = timedelta(seconds=30)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class LiveSession:
    """A session that is open now, with the account it belongs to."""

    token_hash: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime


class SessionRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def start(self, token: str, user_id: int, address: str, lifetime: timedelta) -> None:
        """Open a session for ``token``; forget sessions that ended or expired a while ago."""
        now = self._clock.now()
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO user_sessions (token_hash, user_id, address, created_at,"
                " last_seen_at) VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), user_id, address, utc_iso(now), utc_iso(now)),
            )
            await conn.execute(
                "DELETE FROM user_sessions WHERE created_at < ?", (utc_iso(now - 2 * lifetime),)
            )

    async def live(self, token: str, idle: timedelta, lifetime: timedelta) -> LiveSession | None:
        """The session of ``token`` if it is open now (not ended, idle or too old);
        its last use is brought up to now."""
        now = self._clock.now()
        row = await self._db.fetchone(
            "SELECT s.token_hash, s.user_id, s.created_at, s.last_seen_at FROM user_sessions s"
            " JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = ? AND s.ended_at IS NULL AND u.disabled_at IS NULL",
            (token_hash(token),),
        )
        if row is None:
            return None
        session = LiveSession(row[0], int(row[1]), parse_utc(row[2]), parse_utc(row[3]))
        if now - session.created_at >= lifetime or now - session.last_seen_at >= idle:
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "UPDATE user_sessions SET last_seen_at = ? WHERE token_hash = ?",
                    (utc_iso(now), session.token_hash),
                )
        return session

    async def end(self, token: str) -> int | None:
        """End the session of ``token``; the user it belonged to, None if it was not open."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE user_sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL"
                " RETURNING user_id",
                (utc_iso(self._clock.now()), token_hash(token)),
            )
            row = await cursor.fetchone()
        return None if row is None else int(row[0])
