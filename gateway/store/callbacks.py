"""Served items, callback attempts, ratings and rectification orders.

The state machine of an item lives in ``gateway.callbacks``; this module only
reads and writes rows, each change in one transaction so a crash never leaves an
item half-moved. A call is written as an attempt row *before* it is placed
(:meth:`CallbackRepository.claim_due`), so a restart can tell which attempts were
already used and never calls a citizen twice for the same attempt.

Every state change is conditional on the state it was decided from (``UPDATE …
WHERE status = ?``): a change that lost a race touches no row, and the caller is
told (a False return or :class:`LostRace`) instead of overwriting newer state.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiosqlite

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.db import CONSTRAINT_ERRORS, Database, StoreError, unique_violation

# A callback attempt's call is the Originate named after it: the call log keeps that
# ActionID as the record's originate_id whenever it sees the OriginateResponse.
ORIGINATE_PREFIX = "callback/"


def originate_id(attempt_id: int) -> str:
    """The ActionID of the Originate that places callback attempt ``attempt_id``."""
    return f"{ORIGINATE_PREFIX}{attempt_id}"


# Call records (the call log) of the attempt's own call, or else of calls with the
# citizen of the attempt at hand that began with or after it by the PBX's clock
# (records carry whole seconds: the bound is 2 s earlier; the comparison is on the
# ISO text, so the index on started_at serves) and that this gateway last wrote after
# it, by its own clock: a PBX clock that runs ahead never makes an earlier call count.
# Only records of the PBX the attempt was placed on: a call with the citizen on another
# PBX says nothing of this one (which may be down, its call up and unseen), and each
# PBX has Linkedids of its own.
_CITIZEN_CALLS = (
    "SELECT 1 FROM call_records r JOIN served_items i ON i.id = callback_attempts.item_id"
    " WHERE r.pbx = callback_attempts.pbx"
    f" AND (r.originate_id = '{ORIGINATE_PREFIX}' || callback_attempts.id"
    " OR (r.started_at >= strftime('%Y-%m-%dT%H:%M:%S', callback_attempts.started_at,"
    " '-2 seconds') AND r.updated_at >= callback_attempts.started_at"
    " AND i.citizen_number IN (r.dialled_number, r.caller_number)))"
)


class LostRace(StoreError):
    """A conditional change found the row no longer in the state it was decided from."""


class DuplicateReference(StoreError):
    def __init__(self, reference: str) -> None:
        super().__init__(f"served item {reference!r} was already reported")
        self.reference = reference


class NewItem(Protocol):
    """A served item checked and ready to store (the callbacks service's CheckedItem)."""

    @property
    def reference(self) -> str: ...
    @property
    def kind_code(self) -> str: ...
    @property
    def unit_id(self) -> int: ...
    @property
    def officer_code(self) -> str | None: ...
    @property
    def citizen_number(self) -> str: ...
    @property
    def citizen_name(self) -> str | None: ...
    @property
    def served_at(self) -> datetime: ...
    @property
    def due_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ServedItem:
    id: int
    reference: str
    kind_code: str
    unit_id: int
    officer_code: str | None
    citizen_number: str
    citizen_name: str | None
    served_at: datetime
    status: str
    round: int
    attempts: int
    next_attempt_at: datetime | None
    sms_expires_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    id: int
    item_id: int
    round: int
    attempt: int
    channel: str
    outcome: str
    pbx: str | None = None  # the PBX a call was placed on (None for a text)


@dataclass(frozen=True)
class Rating:
    id: int
    item_id: int
    attempt_id: int | None
    round: int
    channel: str
    score: int
    reason: str | None
    recording: str | None
    rated_at: datetime


@dataclass(frozen=True)
class Order:
    id: int
    ref: str
    item_id: int
    rating_id: int
    level: int
    status: str
    deadline_at: datetime
    reported_at: datetime | None
    reported_by: str | None
    report_note: str | None
    closed_at: datetime | None
    created_at: datetime
    notified_level: int = 0  # the highest level whose heads were texted


@dataclass(frozen=True)
class OrderEvent:
    at: datetime
    level: int
    action: str
    actor: str | None
    note: str | None


_ITEM_COLUMNS = (
    "id, reference, kind_code, unit_id, officer_code, citizen_number, citizen_name, served_at,"
    " status, round, attempts, next_attempt_at, sms_expires_at"
)
_ORDER_COLUMNS = (
    "id, ref, item_id, rating_id, level, status, deadline_at, reported_at, reported_by,"
    " report_note, closed_at, created_at, notified_level"
)
# Attempts that may still have a call up: the citizen is not dialled meanwhile.
_CITIZEN_BUSY = (
    "EXISTS (SELECT 1 FROM served_items o JOIN callback_attempts a ON a.item_id = o.id"
    " WHERE o.citizen_number = s.citizen_number AND a.up_until > ?)"
)


def _dt(text: str | None) -> datetime | None:
    return parse_utc(text) if text else None


def _item(r: Any) -> ServedItem:
    return ServedItem(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        parse_utc(r[7]),
        r[8],
        r[9],
        r[10],
        _dt(r[11]),
        _dt(r[12]),
    )


def _order(r: Any) -> Order:
    return Order(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        parse_utc(r[6]),
        _dt(r[7]),
        r[8],
        r[9],
        _dt(r[10]),
        parse_utc(r[11]),
        r[12],
    )


async def _order_event(
    conn: aiosqlite.Connection,
    order_id: int,
    at: str,
    level: int,
    action: str,
    actor: str | None,
    note: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO order_events (order_id, at, level, action, actor, note)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (order_id, at, level, action, actor, note),
    )


class CallbackRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def _items(self, where: str, params: Sequence[Any] = ()) -> list[ServedItem]:
        rows = await self._db.fetchall(f"SELECT {_ITEM_COLUMNS} FROM served_items {where}", params)
        return [_item(r) for r in rows]

    async def _orders(self, where: str, params: Sequence[Any] = ()) -> list[Order]:
        rows = await self._db.fetchall(
            f"SELECT {_ORDER_COLUMNS} FROM rectification_orders {where}", params
        )
        return [_order(r) for r in rows]

    # -- served items -------------------------------------------------------

    async def add_item(
        self,
        *,
        reference: str,
        kind_code: str,
        unit_id: int,
        officer_code: str | None,
        citizen_number: str,
        citizen_name: str | None,
        served_at: datetime,
        due_at: datetime | None,
        source: str = "api",
    ) -> ServedItem:
        """Insert a served item; ``due_at`` None means its kind is not called back."""
        now = utc_iso(self._clock.now())
        status = "pending" if due_at is not None else "skipped"
        try:
            async with self._db.transaction() as conn:
                cursor = await conn.execute(
                    "INSERT INTO served_items (reference, kind_code, unit_id, officer_code,"
                    " citizen_number, citizen_name, served_at, source, status, next_attempt_at,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    f" RETURNING {_ITEM_COLUMNS}",
                    (
                        reference,
                        kind_code,
                        unit_id,
                        officer_code,
                        citizen_number,
                        citizen_name,
                        utc_iso(served_at),
                        source,
                        status,
                        utc_iso(due_at) if due_at else None,
                        now,
                        now,
                    ),
                )
                row = await cursor.fetchone()
        except CONSTRAINT_ERRORS as exc:
            if unique_violation(exc, "served_items", "reference"):
                raise DuplicateReference(reference) from None
            raise StoreError(f"served item {reference!r}: {exc}") from exc
        assert row is not None
        return _item(row)

    async def add_items(self, items: Sequence[NewItem], *, source: str) -> list[ServedItem | None]:
        """Insert a batch of served items in ONE transaction: all of them or none, so a
        store failure part-way never leaves a batch half-written. Each answer is the
        stored item, or None for a reference already reported (the others still go in)."""
        async with self._db.transaction() as conn:
            return await self.insert_items(conn, items, source=source)

    async def insert_items(
        self, conn: aiosqlite.Connection, items: Sequence[NewItem], *, source: str
    ) -> list[ServedItem | None]:
        """:meth:`add_items` inside the caller's write transaction ``conn``."""
        now = utc_iso(self._clock.now())
        stored: list[ServedItem | None] = []
        for item in items:
            cursor = await conn.execute(
                "INSERT INTO served_items (reference, kind_code, unit_id, officer_code,"
                " citizen_number, citizen_name, served_at, source, status, next_attempt_at,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" ON CONFLICT (reference) DO NOTHING RETURNING {_ITEM_COLUMNS}",
                (
                    item.reference,
                    item.kind_code,
                    item.unit_id,
                    item.officer_code,
                    item.citizen_number,
                    item.citizen_name,
                    utc_iso(item.served_at),
                    source,
                    "pending" if item.due_at is not None else "skipped",
                    utc_iso(item.due_at) if item.due_at else None,
                    now,
                    now,
                ),
            )
            row = await cursor.fetchone()
            stored.append(_item(row) if row is not None else None)
        return stored

    async def item(self, item_id: int) -> ServedItem | None:
        found = await self._items("WHERE id = ?", (item_id,))
        return found[0] if found else None

    async def item_by_reference(self, reference: str) -> ServedItem | None:
        found = await self._items("WHERE reference = ?", (reference,))
        return found[0] if found else None

    async def items(self, status: str | None = None, limit: int = 1000) -> list[ServedItem]:
        if status is None:
            return await self._items("ORDER BY id DESC LIMIT ?", (limit,))
        return await self._items("WHERE status = ? ORDER BY id DESC LIMIT ?", (status, limit))

    async def status_counts(self) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT status, COUNT(*) FROM served_items GROUP BY status ORDER BY status"
        )
        return {r[0]: r[1] for r in rows}

    async def next_due_at(self) -> datetime | None:
        row = await self._db.fetchone(
            "SELECT MIN(next_attempt_at) FROM served_items WHERE status = 'pending'"
        )
        return _dt(row[0]) if row else None

    async def claim_due(
        self,
        now: datetime,
        lines: Mapping[str, int],
        up_until: datetime,
        *,
        owner: str | None = None,
        others_after: timedelta = timedelta(0),
    ) -> list[tuple[ServedItem, Attempt]]:
        """Move due items to ``calling``, each with its attempt row on a PBX of ``lines``,
        placed by the gateway ``owner``.

        ``lines`` gives the trunk lines of each PBX that may take calls now (its link is
        up). A PBX's free lines are its lines minus its callback calls that may still be
        up (attempts not ended whose ``up_until`` is ahead), counted here, in the write
        transaction, so that every gateway on the store sees the same count. As many
        items are claimed as there are free lines in all, and each goes to the PBX with
        the most free lines then (the first of ``lines`` on a tie).

        One call per citizen at a time: of a citizen's due items only the earliest is
        taken, and none while another of their items is ``calling`` or one of their
        attempts may still be up (``up_until``, the latest moment this call may last,
        is written on the new attempt; another gateway's is trusted ``others_after``
        longer, as its clock may differ from this one's: :mod:`gateway.cluster.skew`).

        Unlike the outbox's claim, this one keeps the store's write lock on PostgreSQL
        too: its rules span rows (one call per citizen over all their items, the lines
        of a PBX counted over the attempts), which row locks (``SKIP LOCKED``) cannot
        keep when two gateways claim at once."""
        if not any(n > 0 for n in lines.values()):
            return []
        stamp = utc_iso(now)
        busy_after = utc_iso(now - others_after)
        claimed: list[tuple[ServedItem, Attempt]] = []
        async with self._db.transaction() as conn:
            free = await self._free_lines(conn, lines, stamp)
            limit = sum(free.values())
            if limit <= 0:
                return []
            cursor = await conn.execute(
                "UPDATE served_items SET status = 'calling', attempts = attempts + 1,"
                " next_attempt_at = NULL, updated_at = ?"
                " WHERE id IN (SELECT s.id FROM served_items s"
                " WHERE s.status = 'pending' AND s.next_attempt_at <= ?"
                # the citizen's earliest due item only ("+" keeps the probe on the
                # citizen index instead of scanning every earlier due item)
                " AND NOT EXISTS (SELECT 1 FROM served_items e"
                " WHERE e.citizen_number = s.citizen_number AND e.status = 'pending'"
                " AND (+e.next_attempt_at, e.id) < (s.next_attempt_at, s.id))"
                " AND NOT EXISTS (SELECT 1 FROM served_items c"
                " WHERE c.citizen_number = s.citizen_number AND c.status = 'calling')"
                f" AND NOT {_CITIZEN_BUSY}"
                " ORDER BY s.next_attempt_at, s.id LIMIT ?)"
                f" RETURNING {_ITEM_COLUMNS}",
                (stamp, stamp, busy_after, limit),
            )
            items = sorted((_item(row) for row in await cursor.fetchall()), key=lambda i: i.id)
            for item in items:
                pbx = max(free, key=lambda name: free[name])  # the first of the most free
                free[pbx] -= 1
                attempt_cursor = await conn.execute(
                    "INSERT INTO callback_attempts (item_id, round, attempt, channel, outcome, pbx,"
                    " started_at, up_until, owner) VALUES (?, ?, ?, 'call', 'placed', ?, ?, ?, ?)"
                    " RETURNING id",
                    (item.id, item.round, item.attempts, pbx, stamp, utc_iso(up_until), owner),
                )
                attempt_row = await attempt_cursor.fetchone()
                assert attempt_row is not None
                attempt = Attempt(
                    attempt_row[0], item.id, item.round, item.attempts, "call", "placed", pbx
                )
                claimed.append((item, attempt))
        return claimed

    @staticmethod
    async def _free_lines(
        conn: aiosqlite.Connection, lines: Mapping[str, int], stamp: str
    ) -> dict[str, int]:
        """Each PBX's lines minus its callback calls that may still be up at ``stamp``
        (in the caller's write transaction: no other gateway claims meanwhile)."""
        names = [name for name, n in lines.items() if n > 0]
        marks = ",".join("?" for _ in names)
        cursor = await conn.execute(
            "SELECT pbx, COUNT(*) FROM callback_attempts"
            " WHERE ended_at IS NULL AND channel = 'call'"
            f" AND (up_until IS NULL OR up_until > ?) AND pbx IN ({marks}) GROUP BY pbx",
            (stamp, *names),
        )
        busy = {row[0]: int(row[1]) for row in await cursor.fetchall()}
        return {name: max(0, lines[name] - busy.get(name, 0)) for name in names}

    async def release_claim(self, item_id: int, attempt_id: int, now: datetime) -> bool:
        """Undo a claim whose call was never placed (no link to the PBX): the attempt
        row goes and the item is due again, its attempt not counted."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM callback_attempts WHERE id = ? AND item_id = ? AND outcome = 'placed'",
                (attempt_id, item_id),
            )
            if cursor.rowcount == 0:
                return False
            await conn.execute(
                "UPDATE served_items SET status = 'pending', attempts = attempts - 1,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = 'calling'",
                (utc_iso(now), utc_iso(now), item_id),
            )
        return True

    async def _attempt_change(self, sql: str, params: Sequence[Any]) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount > 0

    async def attempt_answered(
        self, attempt_id: int, *, action_id: str | None, uniqueid: str | None, up_until: datetime
    ) -> bool:
        """The Originate was answered. True while its survey is still to come or under
        way; False if the attempt already ended (its survey ended first, or it was
        settled meanwhile): nothing is changed then."""
        now = utc_iso(self._clock.now())
        return await self._attempt_change(
            "UPDATE callback_attempts SET outcome = 'answered',"
            " answered_at = COALESCE(answered_at, ?), action_id = COALESCE(?, action_id),"
            " uniqueid = COALESCE(?, uniqueid),"
            " up_until = CASE WHEN survey_started_at IS NULL THEN ? ELSE up_until END"
            " WHERE id = ? AND outcome IN ('placed', 'answered') AND ended_at IS NULL",
            (now, action_id, uniqueid, utc_iso(up_until), attempt_id),
        )

    async def attempt_not_reached(
        self, attempt_id: int, outcome: str, *, action_id: str | None, uniqueid: str | None
    ) -> bool:
        """The Originate was not answered (busy, no answer, …): the call is over."""
        now = utc_iso(self._clock.now())
        return await self._attempt_change(
            "UPDATE callback_attempts SET outcome = ?, action_id = COALESCE(?, action_id),"
            " uniqueid = COALESCE(?, uniqueid), ended_at = ?, up_until = NULL"
            " WHERE id = ? AND outcome = 'placed'",
            (outcome, action_id, uniqueid, now, attempt_id),
        )

    async def attempt_unknown(
        self, attempt_id: int, unanswered_until: datetime, *, action_id: str | None = None
    ) -> bool:
        """The Originate's outcome was lost: the call may still ring or be up until
        its ``up_until``; nothing else changes until the call or that time settles it.

        A call nobody has seen answered can be up no later than ``unanswered_until``
        (it rings at most the Originate's timeout, and an answered call reaches the
        survey within seconds, which marks it): the bound is lowered to that."""
        return await self._attempt_change(
            "UPDATE callback_attempts SET outcome = 'unknown', up_until = CASE"
            " WHEN answered_at IS NULL AND survey_started_at IS NULL"
            " THEN MIN(COALESCE(up_until, ?1), ?1) ELSE up_until END,"
            " action_id = COALESCE(action_id, ?3)"
            " WHERE id = ?2 AND outcome = 'placed'",
            (utc_iso(unanswered_until), attempt_id, action_id),
        )

    async def survey_started(self, attempt_id: int, up_until: datetime) -> bool:
        """The survey flow began on this attempt's call (it was answered, whatever the
        Originate's outcome said or whether it was saved yet)."""
        now = utc_iso(self._clock.now())
        return await self._attempt_change(
            "UPDATE callback_attempts SET survey_started_at = COALESCE(survey_started_at, ?),"
            " answered_at = COALESCE(answered_at, ?), up_until = ?,"
            " outcome = CASE WHEN outcome IN ('placed', 'unknown') THEN 'answered' ELSE outcome END"
            " WHERE id = ? AND ended_at IS NULL",
            (now, now, utc_iso(up_until), attempt_id),
        )

    async def attempt_ended(self, attempt_id: int, rated: bool) -> bool:
        """The answered call is over: ``rated`` or ``no_rating``. False if it had ended already."""
        now = utc_iso(self._clock.now())
        return await self._attempt_change(
            "UPDATE callback_attempts SET outcome = ?, ended_at = ?, up_until = NULL"
            " WHERE id = ? AND ended_at IS NULL",
            ("rated" if rated else "no_rating", now, attempt_id),
        )

    async def expire_unstarted_surveys(
        self,
        answered_before: datetime,
        *,
        owner: str | None = None,
        others_after: timedelta = timedelta(0),
    ) -> list[Attempt]:
        """Answered calls whose survey never started, answered before the given time,
        or that outlived their ``up_until`` (a survey that never ended): closed as
        ``no_rating`` (answered, no rating); returns them. Another gateway's than
        ``owner``'s are judged ``others_after`` later (their times are by its clock)."""
        now = self._clock.now()
        stamp = utc_iso(now)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE callback_attempts SET outcome = 'no_rating', ended_at = ?1,"
                " up_until = NULL WHERE outcome = 'answered' AND ended_at IS NULL AND CASE"
                " WHEN owner IS NOT DISTINCT FROM CAST(?5 AS TEXT) THEN"
                " (survey_started_at IS NULL AND answered_at <= ?2) OR up_until <= ?1"
                " ELSE (survey_started_at IS NULL AND answered_at <= ?3) OR up_until <= ?4 END"
                " RETURNING id, item_id, round, attempt, channel, outcome",
                (
                    stamp,
                    utc_iso(answered_before),
                    utc_iso(answered_before - others_after),
                    utc_iso(now - others_after),
                    owner,
                ),
            )
            rows = await cursor.fetchall()
        return [Attempt(*r) for r in rows]

    async def settle_lapsed(
        self, now: datetime, *, owner: str | None = None, others_after: timedelta = timedelta(0)
    ) -> list[Attempt]:
        """Attempts whose outcome was lost, closed as ``unknown`` (the attempt counts)
        once their call is known to be over: the call log holds a finished record of a
        call with the citizen that began after the attempt and none still open, or
        the call can no longer be up (its ``up_until`` has passed).

        With ``owner`` (this gateway, among several on one database), the same for
        another gateway's call still ``placed`` once its ``up_until`` has passed: that
        gateway died before the Originate's answer and may never come back to settle it
        (this gateway's own are its calls in flight, or its restart's business). An
        attempt of a gateway other than ``owner`` is judged ``others_after`` later (its
        ``up_until`` is by its own clock)."""
        stamp = utc_iso(now)
        others = utc_iso(now - others_after)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE callback_attempts SET ended_at = ?1, up_until = NULL, outcome = 'unknown'"
                " WHERE ended_at IS NULL AND (outcome = 'unknown' OR (outcome = 'placed'"
                " AND CAST(?3 AS TEXT) IS NOT NULL AND owner IS DISTINCT FROM CAST(?3 AS TEXT)))"
                " AND (up_until <="
                " CASE WHEN owner IS NOT DISTINCT FROM CAST(?3 AS TEXT) THEN ?1 ELSE ?2 END"
                f" OR (outcome = 'unknown' AND EXISTS ({_CITIZEN_CALLS} AND r.complete = 1)"
                f" AND NOT EXISTS ({_CITIZEN_CALLS} AND r.complete = 0)))"
                " RETURNING id, item_id, round, attempt, channel, outcome",
                (stamp, others, owner),
            )
            rows = await cursor.fetchall()
        return [Attempt(*r) for r in rows]

    async def attempt(self, attempt_id: int) -> Attempt | None:
        row = await self._db.fetchone(
            "SELECT id, item_id, round, attempt, channel, outcome, pbx FROM callback_attempts"
            " WHERE id = ?",
            (attempt_id,),
        )
        return Attempt(*row) if row else None

    async def attempt_outcomes(self) -> dict[str, int]:
        """How many callback attempts ended each way (calls and texts)."""
        rows = await self._db.fetchall(
            "SELECT channel || ':' || outcome, COUNT(*) FROM callback_attempts"
            " GROUP BY channel, outcome ORDER BY channel, outcome"
        )
        return {r[0]: r[1] for r in rows}

    async def attempts(self, item_id: int) -> list[Attempt]:
        rows = await self._db.fetchall(
            "SELECT id, item_id, round, attempt, channel, outcome, pbx FROM callback_attempts"
            " WHERE item_id = ? ORDER BY id",
            (item_id,),
        )
        return [Attempt(*r) for r in rows]

    async def add_sms_attempt(self, item_id: int, round_: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                # over once sent: the citizen's answer is a rating, not the attempt's end
                "INSERT INTO callback_attempts (item_id, round, attempt, channel,"
                " outcome, started_at, ended_at) VALUES (?1, ?2, 1, 'sms', 'sent', ?3, ?3)"
                " ON CONFLICT DO NOTHING",
                (item_id, round_, utc_iso(self._clock.now())),
            )

    async def move_item(
        self,
        item_id: int,
        status: str,
        *,
        expect: tuple[str, ...] | None = None,
        attempts: int | None = None,
        next_attempt_at: datetime | None = None,
        sms_expires_at: datetime | None = None,
        new_round: bool = False,
        conn: aiosqlite.Connection | None = None,
    ) -> bool:
        """Set an item's status (and, for a new round after rectification, reset its
        attempts). With ``expect``, only from one of those statuses, and with
        ``attempts``, only while the item has made that many (the step of one call,
        never applied to a later claim); False if not (a race lost: nothing changed).
        In ``conn``'s transaction if given."""
        where = "id = ?"
        params: list[Any] = [item_id]
        if expect is not None:
            where += f" AND status IN ({','.join('?' for _ in expect)})"
            params.extend(expect)
        if attempts is not None:
            where += " AND attempts = ?"
            params.append(attempts)
        async with self._within(conn) as tx:
            cursor = await tx.execute(
                "UPDATE served_items SET status = ?, next_attempt_at = ?, sms_expires_at = ?,"
                " round = round + ?, attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
                f" updated_at = ? WHERE {where}",
                (
                    status,
                    utc_iso(next_attempt_at) if next_attempt_at else None,
                    utc_iso(sms_expires_at) if sms_expires_at else None,
                    1 if new_round else 0,
                    new_round,
                    utc_iso(self._clock.now()),
                    *params,
                ),
            )
            return cursor.rowcount > 0

    async def recover_interrupted(
        self,
        hold: datetime,
        unanswered_until: datetime | None = None,
        *,
        owner: str | None = None,
    ) -> list[ServedItem]:
        """After a restart: calls that were out when the gateway stopped become
        ``unknown``; the attempt counts as used and the item stays ``calling`` until
        the call is settled (its survey ends, or its ``up_until`` passes; ``hold`` for a
        call that had none). Returns the items of those calls.

        With ``owner`` (several gateways on one database), only the calls that gateway
        placed: another's are its own business while it lives, and settled by
        :meth:`settle_lapsed` once they can no longer be up if it does not come back.
        An item left ``calling`` with no call open is :meth:`stranded_items`' business."""
        held = utc_iso(hold)
        mine = "" if owner is None else " AND owner IS NOT DISTINCT FROM CAST(?3 AS TEXT)"
        # A call nobody saw answered rings no longer than the Originate's timeout after
        # the restart (it was sent before it): ``unanswered_until`` bounds it.
        unanswered = utc_iso(unanswered_until) if unanswered_until is not None else None
        async with self._db.transaction() as conn:
            # An answered call whose survey never began stays "answered": its bounded
            # wait (answered_at) goes on after the restart.
            await conn.execute(
                "UPDATE callback_attempts SET outcome = 'unknown',"
                " up_until = CASE WHEN CAST(?2 AS TEXT) IS NOT NULL AND answered_at IS NULL"
                " AND survey_started_at IS NULL THEN MIN(COALESCE(up_until, ?1), ?2)"
                " ELSE COALESCE(up_until, ?1) END"
                " WHERE ended_at IS NULL AND (outcome IN ('placed', 'unknown')"
                f" OR (outcome = 'answered' AND survey_started_at IS NOT NULL)){mine}",
                (held, unanswered, *(() if owner is None else (owner,))),
            )
            open_rows = await (
                await conn.execute(
                    f"SELECT {_ITEM_COLUMNS} FROM served_items WHERE status = 'calling'"
                    " AND EXISTS (SELECT 1 FROM callback_attempts a WHERE a.item_id"
                    " = served_items.id AND a.channel = 'call' AND a.ended_at IS NULL"
                    + ("" if owner is None else " AND a.owner = ?")
                    + ")",
                    () if owner is None else (owner,),
                )
            ).fetchall()
        # sorted here, as in stranded_items: an ORDER BY id walks every item
        return sorted((_item(r) for r in open_rows), key=lambda item: item.id)

    async def stranded_items(self, before: datetime) -> list[tuple[ServedItem, str | None]]:
        """Items left ``calling`` with no call open: each of their call attempts ended,
        the last at or before ``before``. Ending an attempt and moving its item on are
        two writes; a stop (``kill -9``) or a failed write between them leaves the item
        here, and no call of its will ever end again to move it. With each item, the
        outcome of its last call attempt (None: it has none)."""
        rows = await self._db.fetchall(
            f"SELECT {_ITEM_COLUMNS}, (SELECT a.outcome FROM callback_attempts a"
            " WHERE a.item_id = served_items.id AND a.channel = 'call'"
            " ORDER BY a.id DESC LIMIT 1) FROM served_items WHERE status = 'calling'"
            " AND NOT EXISTS (SELECT 1 FROM callback_attempts a WHERE a.item_id ="
            " served_items.id AND a.channel = 'call' AND (a.ended_at IS NULL OR a.ended_at > ?))",
            (utc_iso(before),),
        )
        # sorted here: an ORDER BY id would have SQLite walk every item in id order
        return sorted(((_item(r), r[-1]) for r in rows), key=lambda found: found[0].id)

    async def sms_item_for(self, citizen_number: str) -> ServedItem | None:
        """The newest item of this citizen waiting for an SMS rating (expired or not)."""
        found = await self._items(
            "WHERE citizen_number = ? AND status = 'sms' ORDER BY updated_at DESC, id DESC LIMIT 1",
            (citizen_number,),
        )
        return found[0] if found else None

    async def expired_sms_items(self, now: datetime) -> list[ServedItem]:
        return await self._items(
            # likelihood(): few items wait for a text; see gateway.store.figures.FEW.
            "WHERE likelihood(status = 'sms', 0.001) AND sms_expires_at <= ? ORDER BY id",
            (utc_iso(now),),
        )

    # -- ratings ------------------------------------------------------------

    async def add_rating(
        self,
        *,
        item_id: int,
        round_: int,
        attempt_id: int | None,
        channel: str,
        score: int,
        reason: str | None = None,
        recording: str | None = None,
    ) -> tuple[Rating, bool]:
        """Record the round's rating; (the rating, True) or (the earlier one, False)."""
        now = self._clock.now()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO ratings (item_id, attempt_id, round, channel, score, reason,"
                " recording, rated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (item_id, round) DO NOTHING RETURNING id",
                (item_id, attempt_id, round_, channel, score, reason, recording, utc_iso(now)),
            )
            row = await cursor.fetchone()
        if row is not None:
            rating = Rating(
                row[0], item_id, attempt_id, round_, channel, score, reason, recording, now
            )
            return rating, True
        existing = await self.rating(item_id, round_)
        assert existing is not None
        return existing, False

    async def rating(self, item_id: int, round_: int) -> Rating | None:
        row = await self._db.fetchone(
            "SELECT id, item_id, attempt_id, round, channel, score, reason, recording, rated_at"
            " FROM ratings WHERE item_id = ? AND round = ?",
            (item_id, round_),
        )
        if row is None:
            return None
        return Rating(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], parse_utc(row[8])
        )

    async def unacted_ratings(self, since: datetime, before: datetime) -> list[tuple[int, int]]:
        """Ratings given after ``since`` whose call (or text) was over by ``before`` and
        that asked for something never done: a dissatisfied first answer with no order,
        or a recall's answer while its order still waits for it (``reported``). A stop
        between storing a rating and acting on it (at the end of the call, after the
        reason and the voice message) leaves one. (item id, round) of each, oldest first."""
        # From the ratings of the period (their time index), never from the items:
        # nearly every item of two years is "rated".
        rows = await self._db.fetchall(
            "SELECT r.item_id, r.round FROM ratings r"
            # a satisfied first answer asks for nothing: most ratings stop here
            " WHERE r.rated_at > ?1 AND r.rated_at <= ?2 AND (r.score = 3 OR r.round > 1)"
            " AND EXISTS (SELECT 1 FROM served_items s WHERE s.id = r.item_id"
            " AND s.status = 'rated' AND s.round = r.round)"
            " AND NOT EXISTS (SELECT 1 FROM callback_attempts a"
            " WHERE a.id = r.attempt_id AND (a.ended_at IS NULL OR a.ended_at > ?2))"
            " AND CASE WHEN EXISTS (SELECT 1 FROM rectification_orders o"
            " WHERE o.item_id = r.item_id) THEN EXISTS (SELECT 1 FROM rectification_orders o"
            " WHERE o.item_id = r.item_id AND o.status = 'reported'"
            " AND o.reported_at <= r.rated_at)"
            " ELSE r.score = 3 END ORDER BY r.rated_at, r.id",
            (utc_iso(since), utc_iso(before)),
        )
        return [(r[0], r[1]) for r in rows]

    async def set_rating_reason(
        self, item_id: int, round_: int, reason: str | None, recording: str | None
    ) -> None:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE ratings SET reason = COALESCE(?, reason),"
                " recording = COALESCE(?, recording) WHERE item_id = ? AND round = ?",
                (reason, recording, item_id, round_),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"item {item_id} has no rating in round {round_} to give a reason")

    async def first_round_ratings(self) -> list[dict[str, Any]]:
        """Every first-callback rating with its unit, kind and local day (for the tables)."""
        rows = await self._db.fetchall(
            "SELECT r.score, r.channel, r.rated_at, i.unit_id, u.code, u.name, i.kind_code"
            " FROM ratings r JOIN served_items i ON i.id = r.item_id"
            " JOIN units u ON u.id = i.unit_id WHERE r.round = 1 ORDER BY r.id"
        )
        return [
            {
                "score": r[0],
                "channel": r[1],
                "rated_at": parse_utc(r[2]),
                "unit_id": r[3],
                "unit_code": r[4],
                "unit_name": r[5],
                "kind_code": r[6],
            }
            for r in rows
        ]

    # -- rectification orders ----------------------------------------------

    async def create_order(
        self,
        *,
        item_id: int,
        rating_id: int,
        level: int,
        deadline_at: datetime,
        conn: aiosqlite.Connection | None = None,
    ) -> tuple[Order, bool]:
        """Open the order for a dissatisfied rating; (order, created). One per rating.
        In ``conn``'s transaction if given."""
        now = self._clock.now()
        day = self._clock.local(now).strftime("%Y%m%d")
        async with self._within(conn) as tx:
            existing = await (
                await tx.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM rectification_orders WHERE rating_id = ?",
                    (rating_id,),
                )
            ).fetchone()
            if existing is not None:
                return _order(existing), False
            count_row = await (
                await tx.execute(
                    "SELECT COUNT(*) FROM rectification_orders WHERE ref LIKE ?", (f"ZG{day}-%",)
                )
            ).fetchone()
            ref = f"ZG{day}-{(count_row[0] if count_row else 0) + 1:04d}"
            cursor = await tx.execute(
                "INSERT INTO rectification_orders (ref, item_id, rating_id, level, status,"
                " deadline_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)"
                f" RETURNING {_ORDER_COLUMNS}",
                (ref, item_id, rating_id, level, utc_iso(deadline_at), utc_iso(now), utc_iso(now)),
            )
            row = await cursor.fetchone()
            assert row is not None
            order = _order(row)
            await _order_event(tx, order.id, utc_iso(now), level, "created", "system", None)
            return order, True

    async def order(self, order_id: int) -> Order | None:
        found = await self._orders("WHERE id = ?", (order_id,))
        return found[0] if found else None

    async def order_by_ref(self, ref: str) -> Order | None:
        found = await self._orders("WHERE ref = ?", (ref,))
        return found[0] if found else None

    async def order_for_item(self, item_id: int) -> Order | None:
        """The item's order that is not closed yet, if any."""
        found = await self._orders(
            "WHERE item_id = ? AND status != 'closed' ORDER BY id DESC LIMIT 1", (item_id,)
        )
        return found[0] if found else None

    async def orders(self, statuses: Sequence[str] = ("open", "reported", "closed")) -> list[Order]:
        marks = ",".join("?" for _ in statuses)
        return await self._orders(
            f"WHERE status IN ({marks}) ORDER BY level DESC, created_at", tuple(statuses)
        )

    async def overdue_orders(self, now: datetime) -> list[Order]:
        return await self._orders(
            "WHERE status = 'open' AND deadline_at <= ? ORDER BY deadline_at", (utc_iso(now),)
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction for several changes (an order and its texts)."""
        async with self._db.transaction() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _within(
        self, conn: aiosqlite.Connection | None
    ) -> AsyncIterator[aiosqlite.Connection]:
        """The caller's open transaction, or a new one."""
        if conn is not None:
            yield conn
            return
        async with self._db.transaction() as own:
            yield own

    async def update_order(
        self,
        order_id: int,
        *,
        action: str,
        expect: tuple[str, int],
        actor: str | None = None,
        note: str | None = None,
        status: str | None = None,
        level: int | None = None,
        deadline_at: datetime | None = None,
        reported: bool = False,
        closed: bool = False,
        conn: aiosqlite.Connection | None = None,
    ) -> Order:
        """Change an order that is still in the ``expect``-ed (status, level), and write
        the event that explains the change, together (in ``conn``'s transaction if
        given). Raises :class:`LostRace` if the order moved on meanwhile."""
        stamp = utc_iso(self._clock.now())
        async with self._within(conn) as tx:
            cursor = await tx.execute(
                "UPDATE rectification_orders SET status = COALESCE(?, status),"
                " level = COALESCE(?, level), deadline_at = COALESCE(?, deadline_at),"
                " reported_at = CASE WHEN ? THEN ? ELSE reported_at END,"
                " reported_by = CASE WHEN ? THEN ? ELSE reported_by END,"
                " report_note = CASE WHEN ? THEN ? ELSE report_note END,"
                " closed_at = CASE WHEN ? THEN ? ELSE closed_at END, updated_at = ?"
                f" WHERE id = ? AND status = ? AND level = ? RETURNING {_ORDER_COLUMNS}",
                (
                    status,
                    level,
                    utc_iso(deadline_at) if deadline_at else None,
                    reported,
                    stamp,
                    reported,
                    actor,
                    reported,
                    note,
                    closed,
                    stamp,
                    stamp,
                    order_id,
                    *expect,
                ),
            )
            row = await cursor.fetchone()
            if row is None:
                raise LostRace(
                    f"rectification order {order_id} is no longer {expect[0]} at level {expect[1]};"
                    f" {action} not applied"
                )
            order = _order(row)
            await _order_event(tx, order_id, stamp, order.level, action, actor, note)
            return order

    async def mark_notified(self, conn: aiosqlite.Connection, order_id: int, level: int) -> None:
        """Record (in the caller's transaction) that the heads of ``level`` were texted."""
        await conn.execute(
            "UPDATE rectification_orders SET notified_level = MAX(notified_level, ?) WHERE id = ?",
            (level, order_id),
        )

    async def unnotified_orders(self) -> list[Order]:
        """Orders not closed whose current level's heads were never texted."""
        return await self._orders(
            "WHERE status IN ('open', 'reported') AND notified_level < level ORDER BY id"
        )

    async def add_order_event(
        self,
        order_id: int,
        level: int,
        action: str,
        actor: str | None,
        note: str | None,
        *,
        conn: aiosqlite.Connection | None = None,
    ) -> None:
        stamp = utc_iso(self._clock.now())
        async with self._within(conn) as tx:
            await _order_event(tx, order_id, stamp, level, action, actor, note)

    async def order_events(self, order_id: int) -> list[OrderEvent]:
        rows = await self._db.fetchall(
            "SELECT at, level, action, actor, note FROM order_events WHERE order_id = ?"
            " ORDER BY id",
            (order_id,),
        )
        return [OrderEvent(parse_utc(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
