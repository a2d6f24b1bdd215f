"""Texts in the store: the outbox, its history, replies and opt-outs.

The outbox's guarantees live here, in SQL:

* a text is a row before any network call, and ``idempotency_key`` is unique, so
  the same order never yields two rows;
* :meth:`SmsRepository.claim_due` moves due rows ``queued → sending`` in one
  ``UPDATE … RETURNING``, as a *lease* held by one worker (a gateway's name) until
  ``lease_until``: another worker reclaims a row (for a look-up before any re-send)
  only once its lease has expired, never while its holder may be sending. On
  PostgreSQL, gateways claim at once, each skipping the rows another is claiming
  (``FOR UPDATE SKIP LOCKED``), outside the store's write lock;
* ``first_attempt_at`` is set by the first claim and never overwritten: the look-up
  before a re-send searches the provider from there, whatever the gap;
* ``provider_sid`` is unique: one provider message belongs to one row only, and
  :meth:`SmsRepository.adopt` picks the first candidate no row holds in the same
  transaction that records it;
* provider updates go through :func:`gateway.sms.policy.advances`, so a status
  never moves backwards whatever order callbacks come in.

Many texts are written in one transaction where the callers have many at once
(:meth:`SmsRepository.insert_many`, :meth:`SmsRepository.record_accepted_many`);
the guarantees above hold per row inside the batch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.sms.policy import FAILED, FINAL, QUEUED, SENDING, advances, from_provider_status
from gateway.store.db import Database

_COLUMNS = (
    "id, purpose, audience, to_number, sender, template, variables, body, encoding, segments,"
    " idempotency_key, status, attempts, next_attempt_at, claimed_at, needs_lookup,"
    " provider_sid, error_code, error_message, created_at, updated_at, sent_at, final_at,"
    " first_attempt_at, lease_owner, lease_until"
)
# A row leased to a worker that has not recorded a sid yet, read through the partial
# index of exactly those rows (migration 0007): without INDEXED BY the planner picks
# the provider_sid index and walks every queued row too.
_LEASED = "status = 'sending' AND provider_sid IS NULL"
_LEASES = "sms_messages INDEXED BY sms_messages_lease"
# Rows per statement when many are written at once (well under SQLite's 32,766 variables).
_BATCH = 500
_INBOUND_COLUMNS = (
    "id, provider_sid, from_number, to_number, body, received_at, handled_by, offer_at, offers,"
    " offer_error"
)


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    purpose: str
    audience: str
    to: str
    sender: str
    template: str
    variables: dict[str, str]
    body: str
    encoding: str
    segments: int
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_at: datetime | None
    needs_lookup: bool
    provider_sid: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    final_at: datetime | None
    first_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class NewText:
    purpose: str
    audience: str
    to: str
    sender: str
    template: str
    variables: dict[str, str]
    body: str
    encoding: str
    segments: int
    idempotency_key: str
    next_attempt_at: datetime
    status: str = QUEUED
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A provider's answer to a send (or a look-up's find), to record as the row's."""

    message_id: int
    sid: str
    provider_status: str
    detail: str = ""


@dataclass(frozen=True)
class SmsEvent:
    id: int
    message_id: int | None
    provider_sid: str | None
    kind: str
    status: str | None
    detail: str
    at: datetime


@dataclass(frozen=True)
class InboundText:
    id: int
    provider_sid: str
    from_number: str
    to_number: str
    body: str
    received_at: datetime
    handled_by: str | None
    offer_at: datetime | None = None  # not settled yet: (re-)offer to the handlers from then
    offers: int = 0  # failed offers so far
    offer_error: str | None = None

    @property
    def settled(self) -> bool:
        return self.offer_at is None


@dataclass(frozen=True)
class StatusUpdate:
    """What a provider status report did: ``applied`` False when it changed nothing."""

    message_id: int | None
    applied: bool
    status: str | None


def _opt(text: str | None) -> datetime | None:
    return parse_utc(text) if text else None


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=int(row[0]),
        purpose=row[1],
        audience=row[2],
        to=row[3],
        sender=row[4],
        template=row[5],
        variables=json.loads(row[6]),
        body=row[7],
        encoding=row[8],
        segments=int(row[9]),
        idempotency_key=row[10],
        status=row[11],
        attempts=int(row[12]),
        next_attempt_at=parse_utc(row[13]),
        claimed_at=_opt(row[14]),
        needs_lookup=bool(row[15]),
        provider_sid=row[16],
        error_code=row[17],
        error_message=row[18],
        created_at=parse_utc(row[19]),
        updated_at=parse_utc(row[20]),
        sent_at=_opt(row[21]),
        final_at=_opt(row[22]),
        first_attempt_at=_opt(row[23]),
        lease_owner=row[24],
        lease_until=_opt(row[25]),
    )


EventRow = tuple[int | None, str | None, str, str | None, str, str]


async def _events(conn: aiosqlite.Connection, rows: Sequence[EventRow]) -> None:
    """Append history rows ``(message_id, sid, kind, status, detail, at)`` in one call."""
    if rows:
        await conn.executemany(
            "INSERT INTO sms_events (message_id, provider_sid, kind, status, detail, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


async def _event(
    conn: aiosqlite.Connection,
    message_id: int | None,
    sid: str | None,
    kind: str,
    status: str | None,
    detail: str,
    at: str,
) -> None:
    await conn.execute(
        "INSERT INTO sms_events (message_id, provider_sid, kind, status, detail, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (message_id, sid, kind, status, detail, at),
    )


def _insert_params(text: NewText, now: str) -> tuple[object, ...]:
    return (
        text.purpose,
        text.audience,
        text.to,
        text.sender,
        text.template,
        json.dumps(text.variables, ensure_ascii=False, sort_keys=True),
        text.body,
        text.encoding,
        text.segments,
        text.idempotency_key,
        text.status,
        utc_iso(text.next_attempt_at),
        text.error_code,
        text.error_message,
        now,
        now,
        now if text.status in FINAL else None,
    )


class SmsRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    @property
    def store_path(self) -> Path | None:
        """The store's file (its lock sits beside it); None on PostgreSQL."""
        return self._db.file

    # -- the outbox -------------------------------------------------------------

    async def insert_or_get(
        self, text: NewText, *, conn: aiosqlite.Connection | None = None
    ) -> tuple[OutboxMessage, bool]:
        """Insert ``text``; if its idempotency key exists, return that row. ``(row, created)``.

        With ``conn``, a write transaction the caller holds (an order change and its
        texts), the row is written in it and commits or rolls back with the rest."""
        return (await self.insert_many([text], conn=conn))[0]

    async def insert_many(
        self, texts: Sequence[NewText], *, conn: aiosqlite.Connection | None = None
    ) -> list[tuple[OutboxMessage, bool]]:
        """:meth:`insert_or_get` for many texts in one transaction (``conn``'s, if
        given); ``(row, created)`` for each, in order. A key given twice yields the
        first text's row, not created the second time."""
        now = utc_iso(self._clock.now())
        created: dict[str, OutboxMessage] = {}
        held = contextlib.nullcontext(conn) if conn is not None else None
        async with held or self._db.transaction() as conn:
            for start in range(0, len(texts), _BATCH):
                chunk = texts[start : start + _BATCH]
                values = ", ".join(
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)" for _ in chunk
                )
                cursor = await conn.execute(
                    f"INSERT INTO sms_messages (purpose, audience, to_number, sender, template,"
                    f" variables, body, encoding, segments, idempotency_key, status, attempts,"
                    f" next_attempt_at, error_code, error_message, created_at, updated_at,"
                    f" final_at) VALUES {values}"
                    f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                    tuple(x for text in chunk for x in _insert_params(text, now)),
                )
                for row in await cursor.fetchall():
                    message = _message(row)
                    created[message.idempotency_key] = message
            await _events(
                conn,
                [
                    (
                        m.id,
                        None,
                        "enqueued",
                        m.status,
                        m.error_message or f"{m.segments} part(s), {m.encoding}",
                        now,
                    )
                    for m in sorted(created.values(), key=lambda m: m.id)
                ],
            )
            missing = sorted({t.idempotency_key for t in texts} - created.keys())
            existing: dict[str, OutboxMessage] = {}
            for start in range(0, len(missing), _BATCH):
                keys = missing[start : start + _BATCH]
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM sms_messages WHERE idempotency_key IN"
                    f" ({', '.join('?' for _ in keys)})",
                    keys,
                )
                for row in await cursor.fetchall():
                    message = _message(row)
                    existing[message.idempotency_key] = message
        out: list[tuple[OutboxMessage, bool]] = []
        given: set[str] = set()
        for text in texts:
            key = text.idempotency_key
            first = key in created and key not in given
            given.add(key)
            out.append(
                (created[key], True) if first else (created.get(key) or existing[key], False)
            )
        return out

    async def _one_where(self, column: str, value: object) -> OutboxMessage | None:
        """The message whose ``column`` (one of our unique columns) equals ``value``."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM sms_messages WHERE {column} = ?", (value,)
        )
        return _message(row) if row else None

    async def by_key(self, key: str) -> OutboxMessage | None:
        return await self._one_where("idempotency_key", key)

    async def get(self, message_id: int) -> OutboxMessage | None:
        return await self._one_where("id", message_id)

    async def by_sid(self, sid: str) -> OutboxMessage | None:
        return await self._one_where("provider_sid", sid)

    async def recent(
        self, *, status: str | None = None, to: str | None = None, limit: int = 50
    ) -> list[OutboxMessage]:
        """Newest first."""
        sql = f"SELECT {_COLUMNS} FROM sms_messages WHERE 1=1"
        params: list[object] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if to is not None:
            sql += " AND to_number = ?"
            params.append(to)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_message(r) for r in await self._db.fetchall(sql, params)]

    async def counts(self) -> dict[str, int]:
        rows = await self._db.fetchall("SELECT status, COUNT(*) FROM sms_messages GROUP BY status")
        return {str(r[0]): int(r[1]) for r in rows}

    async def events(self, message_id: int) -> list[SmsEvent]:
        rows = await self._db.fetchall(
            "SELECT id, message_id, provider_sid, kind, status, detail, at FROM sms_events"
            " WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return [SmsEvent(r[0], r[1], r[2], r[3], r[4], r[5], parse_utc(r[6])) for r in rows]

    async def next_due(
        self, owner: str = "", others_after: timedelta = timedelta(0)
    ) -> datetime | None:
        """When the next queued row comes due or the next lease without a sid may be
        taken: ``owner``'s own when it expires, another's ``others_after`` later (see
        :meth:`claim_due`)."""
        row = await self._db.fetchone(
            f"SELECT MIN(at), MIN(other) FROM (SELECT MIN(next_attempt_at) AS at, NULL AS other"
            f" FROM sms_messages WHERE status = ? UNION ALL"
            f" SELECT MIN(CASE WHEN lease_owner = ? THEN lease_until END),"
            f" MIN(CASE WHEN lease_owner IS DISTINCT FROM ? THEN lease_until END)"
            f" FROM {_LEASES} WHERE {_LEASED}) AS due",
            (QUEUED, owner, owner),
        )
        if row is None:
            return None
        times = [parse_utc(row[0])] if row[0] else []
        if row[1]:
            times.append(parse_utc(row[1]) + others_after)
        return min(times, default=None)

    async def claim_due(
        self,
        limit: int,
        *,
        owner: str = "",
        lease: timedelta = timedelta(minutes=1),
        others_after: timedelta = timedelta(0),
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows to ``owner`` until now + ``lease`` and return
        them (oldest first). Rows whose lease has expired with no sid recorded (the
        holder died or stalled mid-send) go back to the queue first, marked for a
        look-up before any re-send, and are claimed like any due row; a lease of
        another owner only ``others_after`` past its end (the clocks of two gateways
        may differ by up to that much: :mod:`gateway.cluster.skew`).

        The rows are independent of each other, so on PostgreSQL this transaction skips
        the store's write lock: each statement takes the rows it changes with ``FOR
        UPDATE SKIP LOCKED``, so gateways claiming at once each take other rows, and a
        row another transaction changed meanwhile is read again (READ COMMITTED) and
        left out if it no longer qualifies. SQLite serialises every writer anyway."""
        now = self._clock.now()
        at = utc_iso(now)
        async with self._db.transaction(serialised=False) as conn:
            await self._requeue_sending(
                conn,
                "lease_until <= CASE WHEN lease_owner = ? THEN ? ELSE ? END",
                (owner, at, utc_iso(now - others_after)),
                at,
                at,
                "lease expired mid-send: look it up at the provider before re-sending",
            )
            cursor = await conn.execute(
                f"WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM sms_messages"
                f" WHERE status = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id"
                f" LIMIT ?{self._skip_locked})"
                f" UPDATE sms_messages SET status = ?, claimed_at = ?, updated_at = ?,"
                f" first_attempt_at = COALESCE(first_attempt_at, ?),"
                f" lease_owner = ?, lease_until = ?, attempts = attempts + 1"
                f" FROM picked WHERE sms_messages.id = picked.picked_id AND status = ?"
                f" RETURNING {_COLUMNS}",
                (QUEUED, at, limit, SENDING, at, at, at, owner, utc_iso(now + lease), QUEUED),
            )
            rows = await cursor.fetchall()
            claimed = sorted((_message(r) for r in rows), key=lambda m: (m.next_attempt_at, m.id))
            await _events(
                conn,
                [(m.id, None, "claimed", SENDING, f"attempt {m.attempts}", at) for m in claimed],
            )
        return claimed

    @property
    def _skip_locked(self) -> str:
        """Rows another claim holds are skipped, not waited for (PostgreSQL; SQLite has no
        row locks: its writers take turns)."""
        return " FOR UPDATE SKIP LOCKED" if self._db.dialect == "postgresql" else ""

    async def renew(self, message_id: int, owner: str, lease: timedelta) -> bool:
        """Extend ``owner``'s lease on a row it is sending; False if it no longer holds it.

        One conditional change of one row, which PostgreSQL locks and checks again once
        any other writer of it is done (READ COMMITTED): safe without the store's write
        lock, so the renewal before each send never queues behind other gateways' writes."""
        now = self._clock.now()
        async with self._db.transaction(serialised=False) as conn:
            cursor = await conn.execute(
                "UPDATE sms_messages SET lease_until = ? WHERE id = ? AND status = ?"
                " AND provider_sid IS NULL AND lease_owner = ? AND lease_until > ? RETURNING id",
                (utc_iso(now + lease), message_id, SENDING, owner, utc_iso(now)),
            )
            return await cursor.fetchone() is not None

    async def reclaim_interrupted(
        self, owner: str = "", look_up_after: timedelta = timedelta(0), *, only_own: bool = False
    ) -> int:
        """Rows left ``sending`` with no provider sid go back to the queue marked for a
        look-up before any re-send, leases or not, due after ``look_up_after`` (a request
        the dead worker left in flight may still land at the provider meanwhile).

        Only for a worker that knows their holder is dead: one that holds the store's
        lock (:mod:`gateway.store.lock`) at start takes every row; with ``only_own``,
        a gateway that holds its name on a shared database (:mod:`gateway.cluster`)
        takes the rows leased to ``owner`` in its previous life. Returns how many."""
        now = self._clock.now()
        async with self._db.transaction() as conn:
            ids = await self._requeue_sending(
                conn,
                "lease_owner = ?" if only_own else "1 = 1",
                (owner,) if only_own else (),
                utc_iso(now),
                utc_iso(now + look_up_after),
                "found sending at start: look it up at the provider before re-sending",
            )
        return len(ids)

    async def _requeue_sending(
        self,
        conn: aiosqlite.Connection,
        condition: str,
        params: tuple[object, ...],
        now: str,
        due: str,
        detail: str,
    ) -> list[int]:
        # The rows are picked once (MATERIALIZED): PostgreSQL may otherwise run a locking
        # subquery again for each row it updates, and take more rows than it picked.
        cursor = await conn.execute(
            f"WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM {_LEASES}"
            f" WHERE {_LEASED} AND {condition}{self._skip_locked})"
            f" UPDATE sms_messages SET status = ?, needs_lookup = 1, updated_at = ?,"
            f" next_attempt_at = ?, lease_owner = NULL, lease_until = NULL"
            f" FROM picked WHERE sms_messages.id = picked.picked_id AND {_LEASED} RETURNING id",
            (*params, QUEUED, now, due),
        )
        ids = [int(r[0]) for r in await cursor.fetchall()]
        await _events(conn, [(i, None, "interrupted", QUEUED, detail, now) for i in ids])
        return ids

    async def record_accepted(
        self, message_id: int, sid: str, provider_status: str, detail: str = ""
    ) -> OutboxMessage | None:
        """The provider holds the text under ``sid``; apply any callback that came first.

        None when ``sid`` already belongs to another row (a look-up of an identical
        text adopted it first) or this row already has another sid: nothing changes."""
        taken = await self.record_accepted_many([Accepted(message_id, sid, provider_status)])
        return await self.get(message_id) if taken else None

    async def record_accepted_many(self, accepted: Sequence[Accepted]) -> set[int]:
        """:meth:`record_accepted` for many texts in one transaction; the ids of the rows
        that took their sid (a row left out changed nothing, as above)."""
        now = utc_iso(self._clock.now())
        taken: set[int] = set()
        async with self._db.transaction() as conn:
            for start in range(0, len(accepted), _BATCH):
                taken |= await self._accept(conn, accepted[start : start + _BATCH], now)
        return taken

    async def adopt(self, message_id: int, found: Sequence[tuple[str, str]]) -> str | None:
        """Record as this row's the first ``(sid, provider status)`` of ``found`` (oldest
        first) that no row holds yet; the choice and the write are one transaction, so
        two identical texts in doubt never take the same provider message. The sid, or
        None if every candidate is taken."""
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            for sid, provider_status in found:
                detail = f"found at the provider as {sid} ({provider_status}): not re-sent"
                text = Accepted(message_id, sid, provider_status, detail)
                if await self._accept(conn, [text], now):
                    return sid
        return None

    async def _accept(
        self, conn: aiosqlite.Connection, accepted: Sequence[Accepted], now: str
    ) -> set[int]:
        """Give each row its sid in one statement, unless the row has a sid already or
        the sid is another row's; then apply the provider's status and any callback
        that came before the sid was stored. The ids of the rows that took their sid."""
        if not accepted:
            return set()
        values = ", ".join("(CAST(? AS INTEGER), ?)" for _ in accepted)
        cursor = await conn.execute(
            f"UPDATE sms_messages SET provider_sid = v.column2, needs_lookup = 0,"
            f" error_code = NULL, error_message = NULL, lease_owner = NULL, lease_until = NULL,"
            f" updated_at = ? FROM (VALUES {values}) AS v"
            f" WHERE sms_messages.id = v.column1 AND sms_messages.provider_sid IS NULL"
            f" AND NOT EXISTS (SELECT 1 FROM sms_messages AS held"
            f" WHERE held.provider_sid = v.column2) RETURNING id, status",
            (now, *(x for a in accepted for x in (a.message_id, a.sid))),
        )
        current = {int(r[0]): str(r[1]) for r in await cursor.fetchall()}
        done = [a for a in accepted if a.message_id in current]
        await _events(
            conn,
            [
                (
                    a.message_id,
                    a.sid,
                    "accepted",
                    SENDING,
                    a.detail or f"provider status {a.provider_status}",
                    now,
                )
                for a in done
            ],
        )
        for a in done:
            status = from_provider_status(a.provider_status)
            if status is not None and advances(current[a.message_id], status):
                await self._advance(conn, a.message_id, status, None, None, now)
        if not done:
            return set()
        # Callbacks that arrived before the sid was stored.
        owners = {a.sid: a.message_id for a in done}
        marks = ", ".join("?" for _ in owners)
        cursor = await conn.execute(
            f"SELECT id, provider_sid, status, detail FROM sms_events"
            f" WHERE provider_sid IN ({marks}) AND message_id IS NULL ORDER BY id",
            tuple(owners),
        )
        for event_id, sid, early_status, early_detail in await cursor.fetchall():
            message_id = owners[sid]
            await conn.execute(
                "UPDATE sms_events SET message_id = ? WHERE id = ?", (message_id, event_id)
            )
            if early_status:
                code = json.loads(early_detail).get("error_code") if early_detail else None
                await self._advance(conn, message_id, early_status, code, None, now)
        return set(current)

    async def record_retry(
        self,
        message_id: int,
        next_attempt_at: datetime,
        *,
        code: str | None,
        reason: str,
        needs_lookup: bool,
    ) -> None:
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_messages SET status = ?, next_attempt_at = ?, error_code = ?,"
                " error_message = ?, needs_lookup = MAX(needs_lookup, ?), updated_at = ?,"
                " lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND status = ? AND provider_sid IS NULL",
                (
                    QUEUED,
                    utc_iso(next_attempt_at),
                    code,
                    reason,
                    int(needs_lookup),
                    now,
                    message_id,
                    SENDING,
                ),
            )
            await _event(
                conn,
                message_id,
                None,
                "retry",
                QUEUED,
                f"{reason}; next attempt at {utc_iso(next_attempt_at)}",
                now,
            )

    async def record_failed(self, message_id: int, *, code: str | None, reason: str) -> None:
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_messages SET status = ?, error_code = ?, error_message = ?,"
                " updated_at = ?, final_at = ?, needs_lookup = 0, lease_owner = NULL,"
                " lease_until = NULL WHERE id = ?",
                (FAILED, code, reason, now, now, message_id),
            )
            await _event(conn, message_id, None, "failed", FAILED, reason, now)

    async def hold(self, message_id: int, until: datetime, reason: str) -> None:
        """Put a claimed row back without counting an attempt (quiet hours)."""
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_messages SET status = ?, next_attempt_at = ?, updated_at = ?,"
                " attempts = MAX(0, attempts - 1), lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND status = ? AND provider_sid IS NULL",
                (QUEUED, utc_iso(until), now, message_id, SENDING),
            )
            await _event(conn, message_id, None, "held", QUEUED, reason, now)

    async def stale_in_flight(self, older_than: datetime, limit: int) -> list[OutboxMessage]:
        """Texts the provider holds (sid known) with no news since ``older_than``."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM sms_messages WHERE status IN ('sending', 'sent')"
            f" AND provider_sid IS NOT NULL AND updated_at < ? ORDER BY updated_at LIMIT ?",
            (utc_iso(older_than), limit),
        )
        return [_message(r) for r in rows]

    async def touch(self, message_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_messages SET updated_at = ? WHERE id = ?",
                (utc_iso(self._clock.now()), message_id),
            )

    async def apply_status(
        self, sid: str, provider_status: str, error_code: str | None, detail: str = ""
    ) -> StatusUpdate:
        """A provider status report (callback or look-up); idempotent, never backwards."""
        status = from_provider_status(provider_status)
        now = utc_iso(self._clock.now())
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT id FROM sms_messages WHERE provider_sid = ?", (sid,)
            )
            row = await cursor.fetchone()
            message_id = int(row[0]) if row else None
            payload = json.dumps(
                {"provider_status": provider_status, "error_code": error_code, "note": detail},
                ensure_ascii=False,
            )
            await _event(conn, message_id, sid, "status", status, payload, now)
            if message_id is None or status is None:
                return StatusUpdate(message_id, False, status)
            applied = await self._advance(conn, message_id, status, error_code, None, now)
            return StatusUpdate(message_id, applied, status)

    async def _advance(
        self,
        conn: aiosqlite.Connection,
        message_id: int,
        status: str,
        error_code: str | None,
        reason: str | None,
        now: str,
    ) -> bool:
        cursor = await conn.execute("SELECT status FROM sms_messages WHERE id = ?", (message_id,))
        row = await cursor.fetchone()
        if row is None or not advances(str(row[0]), status):
            return False
        final = now if status in FINAL else None
        await conn.execute(
            "UPDATE sms_messages SET status = ?, updated_at = ?,"
            " sent_at = COALESCE(sent_at, CASE WHEN ? IN ('sent', 'delivered') THEN ? END),"
            " final_at = COALESCE(final_at, ?),"
            " error_code = COALESCE(?, error_code), error_message = COALESCE(?, error_message)"
            " WHERE id = ?",
            (status, now, status, now, final, error_code, reason, message_id),
        )
        return True

    # -- replies and opt-outs ----------------------------------------------------

    async def store_inbound(
        self, sid: str, from_number: str, to_number: str, body: str, offer_after: timedelta
    ) -> tuple[InboundText, bool]:
        """Store a reply once per provider sid; ``(reply, created)``. A new reply is
        unsettled, due for a re-offer after ``offer_after`` unless settled sooner (so a
        crash while its handler runs is not the end of it)."""
        now = self._clock.now()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO sms_inbound (provider_sid, from_number, to_number, body, received_at,"
                " offer_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider_sid) DO NOTHING RETURNING id",
                (sid, from_number, to_number, body, utc_iso(now), utc_iso(now + offer_after)),
            )
            row = await cursor.fetchone()
        created = row is not None
        found = await self._db.fetchone(
            f"SELECT {_INBOUND_COLUMNS} FROM sms_inbound WHERE provider_sid = ?", (sid,)
        )
        assert found is not None
        return _inbound(found), created

    async def mark_handled(self, inbound_id: int, handler: str | None) -> None:
        """Settle a reply: taken by ``handler``, or by none (None)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_inbound SET handled_by = ?, offer_at = NULL WHERE id = ?",
                (handler, inbound_id),
            )

    async def offer_failed(self, inbound_id: int, error: str, retry_at: datetime | None) -> None:
        """A handler failed on the reply: offer it again at ``retry_at`` (None: give up)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE sms_inbound SET offers = offers + 1, offer_error = ?, offer_at = ?"
                " WHERE id = ? AND handled_by IS NULL",
                (error, utc_iso(retry_at) if retry_at else None, inbound_id),
            )

    async def due_offers(self, limit: int) -> list[InboundText]:
        """Unsettled replies due for a re-offer, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_INBOUND_COLUMNS} FROM sms_inbound WHERE offer_at IS NOT NULL"
            f" AND offer_at <= ? ORDER BY offer_at, id LIMIT ?",
            (utc_iso(self._clock.now()), limit),
        )
        return [_inbound(r) for r in rows]

    async def inbound(self, from_number: str | None = None, limit: int = 50) -> list[InboundText]:
        sql = f"SELECT {_INBOUND_COLUMNS} FROM sms_inbound"
        params: list[object] = []
        if from_number is not None:
            sql += " WHERE from_number = ?"
            params.append(from_number)
        rows = await self._db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_inbound(r) for r in rows]

    async def opt_out(self, number: str, keyword: str) -> bool:
        """Put ``number`` on the opt-out list; False if it was already there."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO sms_optouts (number, keyword, at) VALUES (?, ?, ?)"
                " ON CONFLICT (number) DO NOTHING RETURNING number",
                (number, keyword, utc_iso(self._clock.now())),
            )
            return await cursor.fetchone() is not None

    async def opt_in(self, number: str) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM sms_optouts WHERE number = ? RETURNING number", (number,)
            )
            return await cursor.fetchone() is not None

    async def officers_among(self, numbers: set[str]) -> set[str]:
        """Those of ``numbers`` that are an officer's mobile in the officers table."""
        return await self._among("SELECT DISTINCT mobile FROM officers WHERE mobile", numbers)

    async def opted_out_among(self, numbers: set[str]) -> set[str]:
        """Those of ``numbers`` on the opt-out list."""
        return await self._among("SELECT number FROM sms_optouts WHERE number", numbers)

    async def _among(self, select: str, numbers: set[str]) -> set[str]:
        found: set[str] = set()
        listed = sorted(numbers)
        for start in range(0, len(listed), _BATCH):
            chunk = listed[start : start + _BATCH]
            rows = await self._db.fetchall(f"{select} IN ({', '.join('?' for _ in chunk)})", chunk)
            found.update(str(r[0]) for r in rows)
        return found

    async def is_opted_out(self, number: str) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM sms_optouts WHERE number = ?", (number,))
        return row is not None

    async def last_to(self, number: str, purpose: str | None = None) -> OutboxMessage | None:
        """The latest text to ``number`` (of ``purpose``), e.g. to match a reply to a request."""
        sql = f"SELECT {_COLUMNS} FROM sms_messages WHERE to_number = ?"
        params: list[object] = [number]
        if purpose is not None:
            sql += " AND purpose = ?"
            params.append(purpose)
        row = await self._db.fetchone(sql + " ORDER BY id DESC LIMIT 1", params)
        return _message(row) if row else None


def _inbound(r: Any) -> InboundText:
    return InboundText(
        int(r[0]), r[1], r[2], r[3], r[4], parse_utc(r[5]), r[6], _opt(r[7]), int(r[8]), r[9]
    )
