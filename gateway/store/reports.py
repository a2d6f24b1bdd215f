"""What the leaders' reports read: the board's figures per unit, the daily log's and the
agenda's lists, the period reports' rates; and which reports the daily loop has made.

Every read runs on the store's read-only connection (:mod:`gateway.store.reader`) and
covers a period ``[since, until)`` over an index (migrations 0010 and 0015), so a day's
log costs a day's rows whatever the store's age. Lists that could grow with a neglected
backlog (slow cases) come with their total and at most ``limit`` rows.

:class:`ReportRuns` is the one writer here: the marker a report was made (migration
0015's ``report_runs``), written in the caller's transaction beside the leaders' texts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.clock import parse_utc, utc_iso
from gateway.store.cases import OPEN_STATUSES
from gateway.store.db import Database, StoreError, param_marks
from gateway.store.figures import FEW, Reads, _counted, _period, _spans

RUN_KINDS = ("daily", "weekly", "agenda")
# Statuses of a case not yet accepted by its owner (lifecycle: see gateway.store.cases).
NOT_ACCEPTED = ("open", "assigned")
_CHUNK = 500


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True)
class UnitRow:
    id: int
    code: str
    name: str
    kind: str
    parent_id: int | None


@dataclass(frozen=True)
class Hotline:
    """Inbound hotline calls of a period (the gateway's own callback calls left out)."""

    total: int
    queued: int  # asked for a seat: entered the queue
    answered: int  # a seat took it
    answered_15s: int  # a seat took it after at most 15 s in the queue
    abandoned: int  # left the queue before a seat took it


@dataclass(frozen=True)
class Dissatisfied:
    """A "dissatisfied" rating, with its item and its rectification order."""

    rated_at: datetime
    round: int
    reason: str | None
    item_reference: str
    kind_code: str
    unit_id: int
    officer_code: str | None
    order_ref: str | None
    order_status: str | None
    order_level: int | None


@dataclass(frozen=True)
class OpenCase:
    """A case not answered yet, with its owner and its terms."""

    id: int
    number: str
    channel: str
    category: str
    subject: str
    status: str
    owner_unit_id: int | None
    created_at: datetime
    deadline: datetime | None
    accept_by: datetime | None


@dataclass(frozen=True)
class OpenOrder:
    """A rectification order not closed yet, with its item and the rating behind it."""

    id: int
    ref: str
    level: int
    status: str
    deadline_at: datetime
    created_at: datetime
    item_reference: str
    kind_code: str
    unit_id: int
    reason: str | None


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    actor: str
    action: str
    note: str


@dataclass(frozen=True)
class Counted:
    """Period figures of one group (a unit or a kind) for the rates."""

    rated_items: int = 0  # items served in the period whose citizen rated
    unreachable_items: int = 0  # items served in the period nobody reached
    orders: int = 0  # orders opened in the period, due or reported
    orders_on_time: int = 0  # of those, reported before their first deadline


class ReportQueries:
    """The reads of the reports (see the module docstring)."""

    def __init__(self, reads: Reads) -> None:
        self._reads = reads

    async def units(self) -> list[UnitRow]:
        rows = await self._reads.fetchall(
            "SELECT id, code, name, kind, parent_id FROM units ORDER BY code"
        )
        return [UnitRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def chiefs(self) -> dict[int, tuple[str, str]]:
        """Each unit's chief: unit id → (officer code, name)."""
        rows = await self._reads.fetchall(
            "SELECT unit_id, code, name FROM officers WHERE role = 'chief' ORDER BY id"
        )
        found: dict[int, tuple[str, str]] = {}
        for unit_id, code, name in rows:
            found.setdefault(int(unit_id), (str(code), str(name)))
        return found

    async def officers_by_code(self, codes: Collection[str]) -> dict[str, tuple[str, str | None]]:
        """Officer code → (name, mobile) of those of ``codes`` on file."""
        if not codes:
            return {}
        rows = await self._reads.fetchall(
            f"SELECT code, name, mobile FROM officers WHERE code IN ({param_marks(codes)})",
            tuple(codes),
        )
        return {str(r[0]): (str(r[1]), r[2]) for r in rows}

    async def leaders(self) -> list[tuple[str, str, str | None]]:
        """(code, name, mobile) of every officer whose role is ``leader``."""
        rows = await self._reads.fetchall(
            "SELECT code, name, mobile FROM officers WHERE role = 'leader' ORDER BY code"
        )
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]

    # -- the board --------------------------------------------------------------

    async def scores_by_unit(self, since: datetime, until: datetime) -> dict[int, list[int]]:
        """First-callback scores given in the period: unit id → [satisfied, basically,
        dissatisfied] (the counts triggers keep, migration 0010)."""
        return await self._scores("unit_id", "rating_unit", since, until)

    async def scores_by_kind(self, since: datetime, until: datetime) -> dict[str, list[int]]:
        """As :meth:`scores_by_unit`, by kind of business."""
        return await self._scores("kind_code", "rating_kind", since, until)

    async def _scores(
        self, column: str, table: str, since: datetime, until: datetime
    ) -> dict[Any, list[int]]:
        _period(since, until)
        rows = await self._reads.fetchall(
            f"SELECT c.{column}, c.score, SUM(c.n) FROM ({_counted(column, table)}) c"
            f" GROUP BY c.{column}, c.score HAVING SUM(c.n) > 0",
            _spans(since, until),
        )
        return _score_table(rows)

    async def scores_by_kind_of_units(
        self, since: datetime, until: datetime, unit_ids: Collection[int]
    ) -> dict[str, list[int]]:
        """As :meth:`scores_by_kind`, of the items of ``unit_ids`` only: the ratings of
        the period themselves (index ``ratings_rated_at``), as the counts have no unit."""
        start, end = _period(since, until)
        found: dict[str, list[int]] = {}
        for chunk in _chunks(sorted(unit_ids)):
            rows = await self._reads.fetchall(
                "SELECT i.kind_code, r.score, COUNT(*) FROM ratings r"
                " JOIN served_items i ON i.id = r.item_id"
                " WHERE r.rated_at >= ? AND r.rated_at < ? AND r.round = 1"
                f" AND i.unit_id IN ({param_marks(chunk)}) GROUP BY i.kind_code, r.score",
                (start, end, *chunk),
            )
            for key, counts in _score_table(rows).items():
                total = found.setdefault(key, [0, 0, 0])
                for index in range(3):
                    total[index] += counts[index]
        return found

    async def overdue_orders_by_unit(self, at: datetime) -> dict[int, int]:
        """Orders still open (no report from the unit) whose deadline passed before ``at``."""
        rows = await self._reads.fetchall(
            "SELECT i.unit_id, COUNT(*) FROM rectification_orders o"
            " JOIN served_items i ON i.id = o.item_id"
            f" WHERE likelihood(o.status = 'open', {FEW}) AND o.deadline_at < ?"
            " GROUP BY i.unit_id",
            (utc_iso(at),),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def overdue_cases_by_unit(self, at: datetime) -> dict[int, int]:
        """Cases not answered (open, assigned, in progress; not merged away) whose
        deadline passed before ``at``, by owner unit."""
        rows = await self._reads.fetchall(
            "SELECT owner_unit_id, COUNT(*) FROM cases"
            f" WHERE likelihood(status IN ({param_marks(OPEN_STATUSES)}), {FEW})"
            " AND deadline < ? AND merged_into IS NULL AND owner_unit_id IS NOT NULL"
            " GROUP BY owner_unit_id",
            (*OPEN_STATUSES, utc_iso(at)),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    # -- the daily log -----------------------------------------------------------

    async def hotline(self, since: datetime, until: datetime) -> Hotline:
        """Inbound hotline calls that started in the period (index 0015 alone)."""
        start, end = _period(since, until)
        row = await self._reads.fetchone(
            "SELECT COUNT(*),"
            " COALESCE(SUM(queue IS NOT NULL), 0),"
            " COALESCE(SUM(queue IS NOT NULL AND agent IS NOT NULL), 0),"
            " COALESCE(SUM(queue IS NOT NULL AND agent IS NOT NULL AND queue_wait_s <= 15), 0),"
            " COALESCE(SUM(queue IS NOT NULL AND agent IS NULL), 0)"
            " FROM call_records INDEXED BY call_records_started_queue"
            " WHERE started_at >= ? AND started_at < ? AND direction = 'inbound'"
            " AND originate_id IS NULL",
            (start, end),
        )
        if row is None:
            return Hotline(0, 0, 0, 0, 0)
        return Hotline(*(int(v) for v in row))

    async def cases_opened(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, int | None, int]]:
        """Cases opened in the period and still their own (not merged into another):
        (channel, category, owner unit id, count)."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT channel, category, owner_unit_id, COUNT(*) FROM cases"
            " WHERE created_at >= ? AND created_at < ? AND merged_into IS NULL"
            " GROUP BY channel, category, owner_unit_id",
            (start, end),
        )
        return [(str(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]

    async def cases_merged(self, since: datetime, until: datetime) -> int:
        """Cases opened in the period and since merged into another (one matter, one case)."""
        start, end = _period(since, until)
        row = await self._reads.fetchone(
            "SELECT COUNT(*) FROM cases WHERE created_at >= ? AND created_at < ?"
            " AND merged_into IS NOT NULL",
            (start, end),
        )
        return int(row[0]) if row else 0

    async def submissions(self, since: datetime, until: datetime) -> dict[str, tuple[int, int]]:
        """Appeals received on the intake channels in the period: channel → (received,
        of which repeats that joined an open case)."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT channel, COUNT(*), SUM(repeat) FROM appeal_submissions"
            " WHERE received_at >= ? AND received_at < ? GROUP BY channel",
            (start, end),
        )
        return {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}

    async def dissatisfied(self, since: datetime, until: datetime) -> list[Dissatisfied]:
        """Every "dissatisfied" rating given in the period (any round), oldest first."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT r.rated_at, r.round, r.reason, i.reference, i.kind_code, i.unit_id,"
            " i.officer_code, o.ref, o.status, o.level"
            " FROM ratings r JOIN served_items i ON i.id = r.item_id"
            " LEFT JOIN rectification_orders o ON o.rating_id = r.id"
            " WHERE r.rated_at >= ? AND r.rated_at < ? AND r.score = 3"
            " ORDER BY r.rated_at, r.id",
            (start, end),
        )
        return [
            Dissatisfied(parse_utc(r[0]), int(r[1]), r[2], r[3], r[4], int(r[5]), *r[6:10])
            for r in rows
        ]

    async def open_order_counts(self, at: datetime) -> tuple[int, int, int]:
        """Orders not closed: (waiting for the unit's report, of which past their
        deadline at ``at``, reported and waiting for the callback)."""
        row = await self._reads.fetchone(
            "SELECT COALESCE(SUM(status = 'open'), 0),"
            " COALESCE(SUM(status = 'open' AND deadline_at < ?), 0),"
            " COALESCE(SUM(status = 'reported'), 0) FROM rectification_orders"
            f" WHERE likelihood(status IN ('open', 'reported'), {FEW})",
            (utc_iso(at),),
        )
        return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    async def slow_cases(self, at: datetime, limit: int) -> tuple[int, list[OpenCase]]:
        """Cases not answered past their deadline, or not accepted past their time to
        accept (``appeal_terms.accept_by``), at ``at``: (how many, the ``limit`` latest
        against their deadline first)."""
        when = utc_iso(at)
        where = (
            f" WHERE likelihood(c.status IN ({param_marks(OPEN_STATUSES)}), {FEW})"
            " AND c.merged_into IS NULL"
            " AND (c.deadline < ? OR (t.accept_by < ?"
            f" AND c.status IN ({param_marks(NOT_ACCEPTED)})))"
        )
        params = (*OPEN_STATUSES, when, when, *NOT_ACCEPTED)
        join = " FROM cases c LEFT JOIN appeal_terms t ON t.case_id = c.id"
        row = await self._reads.fetchone("SELECT COUNT(*)" + join + where, params)
        rows = await self._reads.fetchall(
            f"SELECT {_OPEN_CASE}" + join + where + " ORDER BY c.deadline, c.id LIMIT ?",
            (*params, limit),
        )
        return (int(row[0]) if row else 0), [_open_case(r) for r in rows]

    async def category_by_unit(
        self, since: datetime, until: datetime
    ) -> dict[int | None, dict[str, int]]:
        """Cases opened in the period (merged ones included: every appeal counts for the
        analysis), owner unit → category → count."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT owner_unit_id, category, COUNT(*) FROM cases"
            " WHERE created_at >= ? AND created_at < ? GROUP BY owner_unit_id, category",
            (start, end),
        )
        found: dict[int | None, dict[str, int]] = {}
        for unit_id, category, n in rows:
            found.setdefault(unit_id, {})[str(category)] = int(n)
        return found

    # -- the agenda ----------------------------------------------------------------

    async def unresolved_cases(self, unit_ids: Collection[int]) -> list[OpenCase]:
        """Cases not answered yet (not merged away) owned by ``unit_ids``, oldest first."""
        found: list[OpenCase] = []
        for chunk in _chunks(sorted(unit_ids)):
            rows = await self._reads.fetchall(
                f"SELECT {_OPEN_CASE} FROM cases c LEFT JOIN appeal_terms t ON t.case_id = c.id"
                f" WHERE c.owner_unit_id IN ({param_marks(chunk)})"
                f" AND c.status IN ({param_marks(OPEN_STATUSES)}) AND c.merged_into IS NULL",
                (*chunk, *OPEN_STATUSES),
            )
            found.extend(_open_case(r) for r in rows)
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def open_orders(self, unit_ids: Collection[int]) -> list[OpenOrder]:
        """Orders not closed of items served by ``unit_ids``, highest level first, then oldest."""
        if not unit_ids:
            return []
        rows = await self._reads.fetchall(
            "SELECT o.id, o.ref, o.level, o.status, o.deadline_at, o.created_at, i.reference,"
            " i.kind_code, i.unit_id, r.reason FROM rectification_orders o"
            " JOIN served_items i ON i.id = o.item_id JOIN ratings r ON r.id = o.rating_id"
            f" WHERE likelihood(o.status IN ('open', 'reported'), {FEW})"
            " ORDER BY o.level DESC, o.created_at, o.id"
        )
        wanted = set(unit_ids)
        return [
            OpenOrder(
                int(r[0]),
                r[1],
                int(r[2]),
                r[3],
                parse_utc(r[4]),
                parse_utc(r[5]),
                r[6],
                r[7],
                int(r[8]),
                r[9],
            )
            for r in rows
            if int(r[8]) in wanted
        ]

    async def case_histories(self, case_ids: Sequence[int]) -> dict[int, list[HistoryLine]]:
        """Each case's history, oldest first."""
        found: dict[int, list[HistoryLine]] = {case_id: [] for case_id in case_ids}
        for chunk in _chunks(list(case_ids)):
            rows = await self._reads.fetchall(
                "SELECT case_id, at, actor, action, note FROM case_history"
                f" WHERE case_id IN ({param_marks(chunk)}) ORDER BY case_id, id",
                tuple(chunk),
            )
            for r in rows:
                found[int(r[0])].append(HistoryLine(parse_utc(r[1]), r[2], r[3], r[4]))
        return found

    async def order_histories(self, order_ids: Sequence[int]) -> dict[int, list[HistoryLine]]:
        """Each order's events, oldest first."""
        found: dict[int, list[HistoryLine]] = {order_id: [] for order_id in order_ids}
        for chunk in _chunks(list(order_ids)):
            rows = await self._reads.fetchall(
                "SELECT order_id, at, COALESCE(actor, ''), action,"
                " COALESCE(note, '') || CASE WHEN level > 1 THEN ' (' || level || '级)' ELSE ''"
                " END FROM order_events"
                f" WHERE order_id IN ({param_marks(chunk)}) ORDER BY order_id, id",
                tuple(chunk),
            )
            for r in rows:
                found[int(r[0])].append(HistoryLine(parse_utc(r[1]), r[2], r[3], r[4]))
        return found

    # -- period reports ---------------------------------------------------------------

    async def items_settled(
        self, since: datetime, until: datetime
    ) -> list[tuple[int, str, int, int]]:
        """Items served in the period whose callback ended rated or unreachable:
        (unit id, kind, rated, unreachable) (index 0015 alone)."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT unit_id, kind_code, COALESCE(SUM(status = 'rated'), 0),"
            " COALESCE(SUM(status = 'unreachable'), 0)"
            " FROM served_items INDEXED BY served_items_status_served_unit"
            " WHERE status IN ('rated', 'unreachable') AND served_at >= ? AND served_at < ?"
            " GROUP BY unit_id, kind_code",
            (start, end),
        )
        return [(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def orders_due(
        self, since: datetime, until: datetime, at: datetime
    ) -> list[tuple[int, str, int, int]]:
        """Orders opened in the period that are due by ``at`` or reported: (unit id, kind,
        how many, of which reported before their first deadline, i.e. at level 1 and no
        later than its deadline)."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT i.unit_id, i.kind_code, COUNT(*),"
            " COALESCE(SUM(o.level = 1 AND o.reported_at IS NOT NULL"
            " AND o.reported_at <= o.deadline_at), 0)"
            " FROM rectification_orders o JOIN served_items i ON i.id = o.item_id"
            " WHERE o.created_at >= ? AND o.created_at < ?"
            " AND (o.reported_at IS NOT NULL OR o.deadline_at <= ? OR o.level > 1)"
            " GROUP BY i.unit_id, i.kind_code",
            (start, end, utc_iso(at)),
        )
        return [(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


_OPEN_CASE = (
    "c.id, c.number, c.channel, c.category, c.subject, c.status, c.owner_unit_id,"
    " c.created_at, c.deadline, t.accept_by"
)


def _open_case(r: Any) -> OpenCase:
    return OpenCase(
        int(r[0]),
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        parse_utc(r[7]),
        parse_utc(r[8]) if r[8] else None,
        parse_utc(r[9]) if r[9] else None,
    )


def _score_table(rows: Iterable[Any]) -> dict[Any, list[int]]:
    found: dict[Any, list[int]] = {}
    for key, score, n in rows:
        found.setdefault(key, [0, 0, 0])[int(score) - 1] += int(n)
    return found


class ReportRuns:
    """Which reports were made (table ``report_runs``), on the writing connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def made(self, kind: str, key: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM report_runs WHERE kind = ? AND key = ?", (kind, key)
        )
        return row is not None

    async def last(self, kind: str) -> str | None:
        """The greatest key made of ``kind`` (keys sort by date), else None."""
        row = await self._db.fetchone("SELECT MAX(key) FROM report_runs WHERE kind = ?", (kind,))
        return None if row is None or row[0] is None else str(row[0])

    @staticmethod
    async def record(
        conn: Any, kind: str, key: str, *, at: datetime, made_by: str, texts: int
    ) -> bool:
        """Mark ``kind``/``key`` made inside the caller's transaction ``conn``; False when
        it already was (someone else made it first: the caller rolls back)."""
        if kind not in RUN_KINDS:
            raise StoreError(f"unknown report kind {kind!r} ({', '.join(RUN_KINDS)})")
        cursor = await conn.execute(
            "INSERT INTO report_runs (kind, key, made_at, made_by, texts) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO NOTHING",
            (kind, key, utc_iso(at), made_by, texts),
        )
        return bool(cursor.rowcount == 1)
