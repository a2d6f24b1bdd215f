"""People's accounts, their failed logins and the audit log (migration 0014).

Passwords arrive here already hashed (:mod:`gateway.accounts.passwords`); the store
never sees one in clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.db import Database, StoreError

AUDIT_PAGE_MAX = 1000


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    unit_id: int
    unit_code: str
    unit_name: str
    password_hash: str
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: str
    address: str
    action: str
    target: str
    detail: str


_USER_COLUMNS = (
    "u.id, u.username, u.display_name, u.role, u.unit_id, n.code, n.name, u.password_hash,"
    " u.created_at, u.password_changed_at, u.disabled_at"
)
_USERS = f"SELECT {_USER_COLUMNS} FROM users u JOIN units n ON n.id = u.unit_id"


def _user(r: Any) -> User:
    return User(
        int(r[0]),
        r[1],
        r[2],
        r[3],
        int(r[4]),
        r[5],
        r[6],
        r[7],
        parse_utc(r[8]),
        parse_utc(r[9]),
        parse_utc(r[10]) if r[10] else None,
    )


class AccountRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- accounts ---------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        role: str,
        unit_id: int,
        password_hash: str,
        display_name: str,
        audit: tuple[str, str],
    ) -> User:
        """A new account, and its audit line (``audit`` = actor, address) in the same
        transaction; a taken name is a :class:`StoreError`."""
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            cursor = await conn.execute("SELECT 1 FROM users WHERE username = ?", (username,))
            if await cursor.fetchone() is not None:
                raise StoreError(f"user {username!r} already exists")
            await conn.execute(
                "INSERT INTO users (username, display_name, role, unit_id, password_hash,"
                " created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, display_name, role, unit_id, password_hash, now, now),
            )
            await _append(conn, now, audit, "user_add", username, f"role={role}")
        user = await self.user_by_name(username)
        assert user is not None
        return user

    async def user_by_name(self, username: str) -> User | None:
        row = await self._db.fetchone(f"{_USERS} WHERE u.username = ?", (username,))
        return _user(row) if row else None

    async def user(self, user_id: int) -> User | None:
        row = await self._db.fetchone(f"{_USERS} WHERE u.id = ?", (user_id,))
        return _user(row) if row else None

    async def users(self) -> list[User]:
        return [_user(r) for r in await self._db.fetchall(f"{_USERS} ORDER BY u.username")]

    async def set_password(self, user_id: int, password_hash: str, audit: tuple[str, str]) -> None:
        """A new password; every open session of the user ends with the old one."""
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?"
                " RETURNING username",
                (password_hash, now, user_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"no user with id {user_id}")
            await _end_sessions(conn, user_id, now)
            await _append(conn, now, audit, "user_passwd", row[0], "")

    async def rehash(self, user_id: int, old_hash: str, new_hash: str) -> None:
        """Store a stronger hash of the same password (parameters raised since)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, user_id, old_hash),
            )

    async def set_disabled(self, user_id: int, disabled: bool, audit: tuple[str, str]) -> None:
        """Disable (ending every open session) or enable an account."""
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE users SET disabled_at = ? WHERE id = ? RETURNING username",
                (now if disabled else None, user_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"no user with id {user_id}")
            if disabled:
                await _end_sessions(conn, user_id, now)
            await _append(conn, now, audit, "user_disable" if disabled else "user_enable", row[0])

    # -- failed logins ----------------------------------------------------------

    async def begin_login(
        self,
        username: str,
        address: str,
        *,
        window: timedelta,
        most_by_name: int,
        most_by_address: int,
    ) -> int:
        """Seconds the login of ``username`` from ``address`` must wait, if either has
        failed that often within ``window``; else 0, and the attempt counts as a failure
        until :meth:`clear_failures` (so a burst of parallel guesses cannot all pass the
        check before the first is counted). Failures older than the window are forgotten."""
        now = self._clock.now()
        since = utc_iso(now - window)
        waits = []
        async with self._db.transaction() as conn:
            for column, value, most in (
                ("username", username, most_by_name),
                ("address", address, most_by_address),
            ):
                cursor = await conn.execute(
                    f"SELECT at FROM login_failures WHERE {column} = ? AND at >= ? ORDER BY at",
                    (value, since),
                )
                times = [parse_utc(r[0]) for r in await cursor.fetchall()]
                if len(times) >= most:
                    lifted = times[-most] + window - now
                    waits.append(max(1, math.ceil(lifted.total_seconds())))
            if waits:
                return max(waits)
            await conn.execute(
                "INSERT INTO login_failures (username, address, at) VALUES (?, ?, ?)",
                (username, address, utc_iso(now)),
            )
            await conn.execute("DELETE FROM login_failures WHERE at < ?", (since,))
        return 0

    async def clear_failures(self, username: str) -> None:
        """A right password: the name's failed logins (and this attempt) no longer count."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))

    # -- the audit log ----------------------------------------------------------

    async def audit(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: str = "",
        *,
        role: str = "",
        address: str = "",
    ) -> None:
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            await _append(conn, now, (actor, address), action, target, detail, role)

    async def audit_entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Audit lines newest first: at most ``limit``, with ids below ``before``."""
        if not 1 <= limit <= AUDIT_PAGE_MAX:
            raise StoreError(f"a page holds 1 to {AUDIT_PAGE_MAX} audit lines, not {limit}")
        sql = "SELECT id, at, actor, role, address, action, target, detail FROM audit_log WHERE 1=1"
        params: list[object] = []
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        if actor is not None:
            sql += " AND actor = ?"
            params.append(actor)
        if since is not None:
            sql += " AND at >= ?"
            params.append(utc_iso(since))
        rows = await self._db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [AuditEntry(int(r[0]), parse_utc(r[1]), *r[2:]) for r in rows]


async def _end_sessions(conn: Any, user_id: int, now: str) -> None:
    await conn.execute(
        "UPDATE user_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL",
        (now, user_id),
    )


async def _append(
    conn: Any,
    now: str,
    who: tuple[str, str],
    action: str,
    target: str,
    detail: str = "",
    role: str = "",
) -> None:
    actor, address = who
    await conn.execute(
        "INSERT INTO audit_log (at, actor, role, address, action, target, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now, actor, role, address, action, target, detail),
    )
