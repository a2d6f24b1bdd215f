"""Bookings of police business and the state of their texts (see :mod:`gateway.bookings`).

Writes take the caller's transaction (``conn``) so that a booking's change and the
text it causes are written together; each change is conditional on the state it was
decided from and says whether it applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.db import Database

_COLUMNS = (
    "id, ref, number, digest, kind, citizen_number, citizen_name, slot_at, place, bring,"
    " status, reminder, remind_at, cancelled_at, cancel_reason, created_at"
)


@dataclass(frozen=True)
class Booking:
    id: int
    ref: str
    number: str
    digest: str
    kind: str
    citizen_number: str
    citizen_name: str
    slot_at: datetime
    place: str
    bring: str
    status: str  # booked, cancelled
    reminder: str  # due, sent, none, skipped
    remind_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str
    created_at: datetime


@dataclass(frozen=True)
class NewBooking:
    ref: str
    digest: str
    kind: str
    citizen_number: str
    citizen_name: str
    slot_at: datetime
    place: str
    bring: str
    remind_at: datetime | None  # None: no reminder


def _booking(row: Any) -> Booking:
    return Booking(
        id=row["id"],
        ref=row["ref"],
        number=row["number"],
        digest=row["digest"],
        kind=row["kind"],
        citizen_number=row["citizen_number"],
        citizen_name=row["citizen_name"],
        slot_at=parse_utc(row["slot_at"]),
        place=row["place"],
        bring=row["bring"],
        status=row["status"],
        reminder=row["reminder"],
        remind_at=parse_utc(row["remind_at"]) if row["remind_at"] else None,
        cancelled_at=parse_utc(row["cancelled_at"]) if row["cancelled_at"] else None,
        cancel_reason=row["cancel_reason"],
        created_at=parse_utc(row["created_at"]),
    )


class BookingRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def by_ref(self, ref: str, conn: aiosqlite.Connection | None = None) -> Booking | None:
        sql = f"SELECT {_COLUMNS} FROM bookings WHERE ref = ?"
        if conn is None:
            row = await self._db.fetchone(sql, (ref,))
        else:
            cursor = await conn.execute(sql, (ref,))
            row = await cursor.fetchone()
        return _booking(row) if row is not None else None

    async def by_id(self, booking_id: int) -> Booking | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM bookings WHERE id = ?", (booking_id,)
        )
        return _booking(row) if row is not None else None

    async def insert(self, conn: aiosqlite.Connection, new: NewBooking) -> Booking:
        """Store a booking, numbered ``B<local YYYYMMDD>-<NNNN>`` by the day it was made."""
        now = self._clock.now()
        day = self._clock.local(now).strftime("%Y%m%d")
        # A range, not LIKE: the number's unique index serves it ('.' sorts after '-').
        cursor = await conn.execute(
            "SELECT COUNT(*) FROM bookings WHERE number > ? AND number < ?",
            (f"B{day}-", f"B{day}."),
        )
        row = await cursor.fetchone()
        number = f"B{day}-{int(row[0]) + 1 if row else 1:04d}"
        await conn.execute(
            "INSERT INTO bookings (ref, number, digest, kind, citizen_number, citizen_name,"
            " slot_at, place, bring, status, reminder, remind_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?, ?, ?)",
            (
                new.ref,
                number,
                new.digest,
                new.kind,
                new.citizen_number,
                new.citizen_name,
                utc_iso(new.slot_at),
                new.place,
                new.bring,
                "due" if new.remind_at else "none",
                utc_iso(new.remind_at) if new.remind_at else None,
                utc_iso(now),
                utc_iso(now),
            ),
        )
        booking = await self.by_ref(new.ref, conn)
        assert booking is not None
        return booking

    async def cancel(self, conn: aiosqlite.Connection, booking_id: int, reason: str) -> bool:
        """Cancel a booked booking (a due reminder is skipped); False if it was not booked."""
        now = utc_iso(self._clock.now())
        cursor = await conn.execute(
            "UPDATE bookings SET status = 'cancelled', cancelled_at = ?, cancel_reason = ?,"
            " reminder = CASE reminder WHEN 'due' THEN 'skipped' ELSE reminder END,"
            " updated_at = ? WHERE id = ? AND status = 'booked'",
            (now, reason, now, booking_id),
        )
        return cursor.rowcount == 1

    async def due_reminders(self, now: datetime, limit: int = 200) -> list[Booking]:
        """Booked bookings whose reminder is due at ``now``."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM bookings WHERE reminder = 'due' AND remind_at <= ?"
            " AND status = 'booked' ORDER BY remind_at, id LIMIT ?",
            (utc_iso(now), limit),
        )
        return [_booking(r) for r in rows]

    async def settle_reminder(self, conn: aiosqlite.Connection, booking_id: int, to: str) -> bool:
        """Move a due reminder to ``sent`` or ``skipped``; False if it was not due any more."""
        cursor = await conn.execute(
            "UPDATE bookings SET reminder = ?, updated_at = ? WHERE id = ? AND reminder = 'due'"
            " AND status = 'booked'",
            (to, utc_iso(self._clock.now()), booking_id),
        )
        return cursor.rowcount == 1

    async def listed(
        self,
        *,
        status: str | None = None,
        slot_from: datetime | None = None,
        slot_until: datetime | None = None,
        limit: int = 200,
    ) -> list[Booking]:
        """Bookings by slot, optionally of one status and within a span of slots."""
        where, params = ["1 = 1"], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if slot_from is not None:
            where.append("slot_at >= ?")
            params.append(utc_iso(slot_from))
        if slot_until is not None:
            where.append("slot_at < ?")
            params.append(utc_iso(slot_until))
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM bookings WHERE {' AND '.join(where)}"
            " ORDER BY slot_at, id LIMIT ?",
            (*params, limit),
        )
        return [_booking(r) for r in rows]
