"""What the dashboard's charts and case pages read, filtered by the viewer's units.

Every query here takes ``unit_ids`` (None: every unit) and filters in SQL, so a
station chief's page never holds another station's rows. Read on the store's
read-only connection (:mod:`gateway.store.reader`).

A case's callbacks are the served items whose reference is the case's number, or the
item its answer opened (:func:`gateway.store.cases.answer_item_reference`: an answered
case is called back as an item of the appeals kind); its texts are those
of its items (``rating:<item>:``) and orders (``order:<order>:``), and the texts to
the citizen's number since the case opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.calllog.builder import ABANDONED, INBOUND
from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.cases import answer_item_reference
from gateway.store.db import StoreError, param_marks
from gateway.store.figures import Reads


@dataclass(frozen=True)
class DayScores:
    day: date
    satisfied: int
    basically: int
    dissatisfied: int

    @property
    def rate(self) -> float | None:
        rated = self.satisfied + self.basically + self.dissatisfied
        return None if not rated else (self.satisfied + self.basically) / rated


@dataclass(frozen=True)
class HourCalls:
    hour: int  # local hour of the day, 0..23
    total: int
    abandoned: int


@dataclass(frozen=True)
class UnitCategory:
    unit_id: int | None  # None: no owner yet
    unit_code: str
    unit_name: str
    category: str
    count: int


@dataclass(frozen=True)
class UnitCase:
    number: str
    category: str
    status: str
    subject: str
    deadline: datetime | None
    created_at: datetime
    unit_name: str


@dataclass(frozen=True)
class Recording:
    """A stored recording's path and the unit it belongs to (None: no owner yet)."""

    path: str
    unit_id: int | None
    pbx: str | None = None  # a call's PBX, whose monitor folder holds its recording


@dataclass(frozen=True)
class TimelineRow:
    """One thing that happened to a case, as the store holds it."""

    at: datetime
    kind: str  # submission, history, call, item, attempt, rating, order, order_event, text
    ref_id: int  # the row's id in its table
    fields: dict[str, Any]


# A case's timeline lists at most this many calls of the citizen.
CALLS_LISTED = 50


def _units_clause(column: str, unit_ids: frozenset[int] | None) -> tuple[str, list[Any]]:
    """`` AND <column> IN (...)`` for a limited viewer (an empty set sees nothing)."""
    if unit_ids is None:
        return "", []
    if not unit_ids:
        return " AND 1 = 0", []
    ordered = sorted(unit_ids)
    return f" AND {column} IN ({param_marks(ordered)})", list(ordered)


def _at(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)


class DashboardReads:
    def __init__(self, reads: Reads, clock: Clock) -> None:
        self._reads = reads
        self._clock = clock

    def _local_day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self._clock.tz).astimezone(UTC)

    # -- charts ---------------------------------------------------------------

    async def satisfaction_by_day(
        self, first: date, last: date, unit_ids: frozenset[int] | None
    ) -> list[DayScores]:
        """First-callback scores per local day from ``first`` to ``last`` (each day listed,
        zeros where nothing was rated), from the hourly counts (migration 0010)."""
        if last < first:
            raise StoreError(f"the period ends ({last}) before it starts ({first})")
        since = self._local_day_start(first)
        until = self._local_day_start(last + timedelta(days=1))
        where, params = _units_clause("unit_id", unit_ids)
        rows = await self._reads.fetchall(
            "SELECT hour, score, SUM(n) FROM rating_unit_hours WHERE hour >= ? AND hour < ?"
            f"{where} GROUP BY hour, score",
            (f"{since:%Y-%m-%dT%H}", f"{until:%Y-%m-%dT%H}", *params),
        )
        counts: dict[date, list[int]] = {}
        for hour, score, n in rows:
            day = self._clock.local(parse_utc(f"{hour}:00:00+00:00")).date()
            counts.setdefault(day, [0, 0, 0])[int(score) - 1] += int(n)
        days = []
        day = first
        while day <= last:
            days.append(DayScores(day, *counts.get(day, [0, 0, 0])))
            day += timedelta(days=1)
        return days

    async def calls_by_hour(self, day: date) -> list[HourCalls]:
        """The hotline's inbound calls (not the gateway's callbacks) that started on the
        local ``day``, per local hour, with those abandoned in the queue."""
        since = self._local_day_start(day)
        until = self._local_day_start(day + timedelta(days=1))
        rows = await self._reads.fetchall(
            "SELECT substr(started_at, 1, 13), COUNT(*),"
            " COALESCE(SUM(CASE WHEN disposition = ? THEN 1 ELSE 0 END), 0)"
            " FROM call_records WHERE started_at >= ? AND started_at < ?"
            " AND direction = ? AND originate_id IS NULL GROUP BY 1",
            (ABANDONED, utc_iso(since), utc_iso(until), INBOUND),
        )
        hours = {h: [0, 0] for h in range(24)}
        for hour, total, abandoned in rows:
            local = self._clock.local(parse_utc(f"{hour}:00:00+00:00")).hour
            hours[local][0] += int(total)
            hours[local][1] += int(abandoned)
        return [HourCalls(h, *hours[h]) for h in range(24)]

    async def categories_by_unit(
        self, since: datetime, until: datetime, unit_ids: frozenset[int] | None
    ) -> list[UnitCategory]:
        """Cases opened in ``[since, until)`` (merged repeats left out: one matter, one
        case) by owner unit and category; cases with no owner only for those who see all."""
        if until <= since:
            raise StoreError("the period ends before it starts")
        where, params = _units_clause("c.owner_unit_id", unit_ids)
        rows = await self._reads.fetchall(
            "SELECT c.owner_unit_id, u.code, u.name, c.category, COUNT(*) FROM cases c"
            " LEFT JOIN units u ON u.id = c.owner_unit_id"
            " WHERE c.created_at >= ? AND c.created_at < ? AND c.merged_into IS NULL"
            f"{where} GROUP BY c.owner_unit_id, u.code, u.name, c.category"
            " ORDER BY u.code, c.category",
            (utc_iso(since), utc_iso(until), *params),
        )
        return [
            UnitCategory(r[0], r[1] or "", r[2] or "未分派", str(r[3]), int(r[4])) for r in rows
        ]

    async def latest_day(self, unit_ids: frozenset[int] | None, until: datetime) -> date | None:
        """The local day of the latest call, case or rating before ``until`` that the
        viewer may see; None if there is none. Each is the first row of an index read
        backwards (calls: ``started_at``; cases: ``created_at``; ratings: the hourly
        counts, whose hour gives the local day in any whole-hour zone)."""
        case_where, case_params = _units_clause("owner_unit_id", unit_ids)
        rating_where, rating_params = _units_clause("unit_id", unit_ids)
        end = utc_iso(until)
        found: list[datetime] = []
        row = await self._reads.fetchone(
            f"SELECT created_at FROM cases WHERE created_at < ?{case_where}"
            " ORDER BY created_at DESC LIMIT 1",
            (end, *case_params),
        )
        if row is not None:
            found.append(parse_utc(row[0]))
        row = await self._reads.fetchone(
            f"SELECT hour FROM rating_unit_hours WHERE hour < ?{rating_where}"
            " ORDER BY hour DESC LIMIT 1",
            (f"{until.astimezone(UTC):%Y-%m-%dT%H}", *rating_params),
        )
        if row is not None:
            found.append(parse_utc(f"{row[0]}:00:00+00:00"))
        if unit_ids is None:
            row = await self._reads.fetchone(
                "SELECT started_at FROM call_records WHERE started_at < ?"
                " ORDER BY started_at DESC LIMIT 1",
                (end,),
            )
            if row is not None:
                found.append(parse_utc(row[0]))
        return self._clock.local(max(found)).date() if found else None

    async def unit_cases(self, unit_ids: frozenset[int], limit: int = 100) -> list[UnitCase]:
        """Cases owned by ``unit_ids`` (merged repeats left out): those still to handle
        first, soonest deadline first, then the others newest first; at most ``limit``."""
        if not unit_ids:
            return []
        ordered = sorted(unit_ids)
        rows = await self._reads.fetchall(
            "SELECT c.number, c.category, c.status, c.subject, c.deadline, c.created_at, u.name"
            " FROM cases c JOIN units u ON u.id = c.owner_unit_id"
            f" WHERE c.owner_unit_id IN ({param_marks(ordered)}) AND c.merged_into IS NULL"
            " ORDER BY c.status IN ('open', 'assigned', 'in_progress') DESC,"
            " CASE WHEN c.status IN ('open', 'assigned', 'in_progress') THEN c.deadline END,"
            " c.created_at DESC LIMIT ?",
            (*ordered, limit),
        )
        return [UnitCase(r[0], r[1], r[2], r[3], _at(r[4]), parse_utc(r[5]), r[6]) for r in rows]

    # -- recordings -------------------------------------------------------------

    async def recording(self, kind: str, row_id: int) -> Recording | None:
        """The recording of a case (its voice message), a call or a rating, with the unit
        it belongs to; None if the row or its recording is missing."""
        if kind == "case":
            sql = "SELECT recording, owner_unit_id FROM cases WHERE id = ?"
        elif kind == "call":
            sql = (
                "SELECT r.recording, c.owner_unit_id, r.pbx FROM call_records r"
                " LEFT JOIN cases c ON c.id = r.case_id WHERE r.id = ?"
            )
        elif kind == "rating":
            sql = (
                "SELECT r.recording, i.unit_id FROM ratings r"
                " JOIN served_items i ON i.id = r.item_id WHERE r.id = ?"
            )
        else:
            raise StoreError(f"no recordings of {kind!r} (case, call, rating)")
        row = await self._reads.fetchone(sql, (row_id,))
        if row is None or not row[0]:
            return None
        pbx = str(row[2]) if kind == "call" else None
        return Recording(str(row[0]), None if row[1] is None else int(row[1]), pbx)

    # -- a case's timeline --------------------------------------------------------

    async def case_timeline(
        self, case_id: int, number: str, citizen: str | None, opened: datetime
    ) -> list[TimelineRow]:
        """Everything that happened to a case, oldest first: submissions from every
        channel, its history, its calls, its callbacks (items, attempts, ratings),
        its rectification orders and their events, and its texts."""
        rows: list[TimelineRow] = []

        def add(at: str | None, kind: str, ref_id: int, **fields: Any) -> None:
            when = _at(at)
            if when is not None:
                rows.append(TimelineRow(when, kind, ref_id, fields))

        for r in await self._reads.fetchall(
            "SELECT id, channel, reference, text, place, repeat, received_at"
            " FROM appeal_submissions WHERE case_id = ? ORDER BY id",
            (case_id,),
        ):
            add(
                r[6],
                "submission",
                r[0],
                channel=r[1],
                reference=r[2],
                text=r[3],
                place=r[4],
                repeat=bool(r[5]),
            )
        for r in await self._reads.fetchall(
            "SELECT id, at, actor, action, note FROM case_history WHERE case_id = ? ORDER BY id",
            (case_id,),
        ):
            add(r[1], "history", r[0], actor=r[2], action=r[3], note=r[4])
        calls = (
            "id, started_at, direction, disposition, queue_wait_s, agent, talk_s, recording, pbx"
        )
        for r in await self._reads.fetchall(
            # The call that opened the case (its unique key), and the citizen's later calls.
            f"SELECT {calls} FROM call_records WHERE (pbx, linkedid) ="
            " (SELECT call_pbx, call_linkedid FROM cases WHERE id = ?)"
            f" UNION SELECT {calls} FROM call_records WHERE caller_number = ? AND started_at >= ?"
            " ORDER BY started_at LIMIT ?",
            (case_id, citizen or "", utc_iso(opened), CALLS_LISTED),
        ):
            add(
                r[1],
                "call",
                r[0],
                direction=r[2],
                disposition=r[3],
                queue_wait_s=r[4],
                agent=r[5],
                talk_s=r[6],
                recording=r[7],
                pbx=r[8],
            )
        items = await self._reads.fetchall(
            "SELECT id, kind_code, status, round, created_at FROM served_items"
            " WHERE reference IN (?, ?) ORDER BY id",
            (number, answer_item_reference(number)),
        )
        item_ids = [int(r[0]) for r in items]
        for r in items:
            add(r[4], "item", r[0], kind_code=r[1], status=r[2], round=r[3])
        order_ids: list[int] = []
        if item_ids:
            marks = param_marks(item_ids)
            for r in await self._reads.fetchall(
                "SELECT id, round, attempt, channel, outcome, started_at, pbx"
                f" FROM callback_attempts WHERE item_id IN ({marks}) ORDER BY id",
                item_ids,
            ):
                add(
                    r[5],
                    "attempt",
                    r[0],
                    round=r[1],
                    attempt=r[2],
                    channel=r[3],
                    outcome=r[4],
                    pbx=r[6],
                )
            for r in await self._reads.fetchall(
                "SELECT id, round, channel, score, reason, recording, rated_at FROM ratings"
                f" WHERE item_id IN ({marks}) ORDER BY id",
                item_ids,
            ):
                add(
                    r[6],
                    "rating",
                    r[0],
                    round=r[1],
                    channel=r[2],
                    score=r[3],
                    reason=r[4],
                    recording=r[5],
                )
            for r in await self._reads.fetchall(
                "SELECT id, ref, level, status, deadline_at, created_at FROM rectification_orders"
                f" WHERE item_id IN ({marks}) ORDER BY id",
                item_ids,
            ):
                order_ids.append(int(r[0]))
                add(r[5], "order", r[0], ref=r[1], level=r[2], status=r[3], deadline_at=r[4])
        if order_ids:
            for r in await self._reads.fetchall(
                "SELECT e.id, e.at, e.level, e.action, e.actor, e.note, o.ref FROM order_events e"
                f" JOIN rectification_orders o ON o.id = e.order_id"
                f" WHERE e.order_id IN ({param_marks(order_ids)}) ORDER BY e.id",
                order_ids,
            ):
                add(
                    r[1],
                    "order_event",
                    r[0],
                    level=r[2],
                    action=r[3],
                    actor=r[4],
                    note=r[5],
                    ref=r[6],
                )
        await self._texts(add, item_ids, order_ids, citizen, opened)
        rows.sort(key=lambda row: (row.at, row.kind, row.ref_id))
        return rows

    async def _texts(
        self,
        add: Any,
        item_ids: Sequence[int],
        order_ids: Sequence[int],
        citizen: str | None,
        opened: datetime,
    ) -> None:
        """The case's texts, each once: by the keys its items' and orders' texts carry
        (ranges of the unique key index), and those to the citizen since it opened."""
        columns = "id, created_at, audience, to_number, purpose, body, status"
        queries: list[tuple[str, tuple[Any, ...]]] = []
        prefixes = [f"rating:{i}:" for i in item_ids] + [f"order:{o}:" for o in order_ids]
        for prefix in prefixes:
            end = prefix[:-1] + chr(ord(":") + 1)
            queries.append(
                (
                    f"SELECT {columns} FROM sms_messages"
                    " WHERE idempotency_key >= ? AND idempotency_key < ?",
                    (prefix, end),
                )
            )
        if citizen:
            queries.append(
                (
                    f"SELECT {columns} FROM sms_messages WHERE to_number = ? AND created_at >= ?",
                    (citizen, utc_iso(opened)),
                )
            )
        seen: set[int] = set()
        for sql, params in queries:
            for r in await self._reads.fetchall(sql, params):
                if r[0] in seen:
                    continue
                seen.add(r[0])
                add(
                    r[1], "text", r[0], audience=r[2], to=r[3], purpose=r[4], body=r[5], status=r[6]
                )
