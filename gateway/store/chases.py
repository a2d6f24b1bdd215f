"""Chases of appeals near or past their deadlines (see :mod:`gateway.appeals.chasing`).

A chase is one deadline of one case: ``accept`` (``appeal_terms.accept_by``, met once
the case is accepted) or ``answer`` (``appeal_terms.answer_by``, met once answered).
Every change is conditional on the state it was decided from and on the case still
needing it, inside the caller's write transaction, so a case answered meanwhile is
never climbed (:class:`~gateway.store.callbacks.LostRace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.callbacks import LostRace
from gateway.store.db import Database

STAGES = ("accept", "answer")
# The case statuses in which each deadline is still to be met (the shared lifecycle:
# accepted iff in_progress/resolved/closed, answered iff resolved/closed).
PENDING_STATUSES: dict[str, tuple[str, ...]] = {
    "accept": ("open", "assigned"),
    "answer": ("open", "assigned", "in_progress"),
}


def _pending_sql(stage_column: str) -> str:
    """SQL true when the case ``c`` still owes the deadline named by ``stage_column``."""
    accept = ", ".join(f"'{s}'" for s in PENDING_STATUSES["accept"])
    answer = ", ".join(f"'{s}'" for s in PENDING_STATUSES["answer"])
    return (
        f"(c.merged_into IS NULL AND ((({stage_column}) = 'accept' AND c.status IN ({accept}))"
        f" OR (({stage_column}) = 'answer' AND c.status IN ({answer}))))"
    )


@dataclass(frozen=True)
class Chase:
    """A case's deadline as the chaser sees it; ``id`` is None before anything happened."""

    id: int | None
    case_id: int
    case_number: str
    case_subject: str
    owner_unit_id: int | None
    stage: str
    due_at: datetime
    reminded_at: datetime | None
    level: int
    notified_level: int
    level_due_at: datetime | None
    status: str
    pending: bool  # the case still owes this deadline


_COLUMNS = (
    "h.id, c.id AS case_id, c.number, c.subject, c.owner_unit_id, {stage} AS stage,"
    " {due} AS due_at, h.reminded_at, COALESCE(h.level, 0) AS level,"
    " COALESCE(h.notified_level, 0) AS notified_level, h.level_due_at,"
    " COALESCE(h.status, 'open') AS status, {pending} AS pending"
)


def _chase(row: Any) -> Chase:
    return Chase(
        id=row["id"],
        case_id=row["case_id"],
        case_number=row["number"],
        case_subject=row["subject"],
        owner_unit_id=row["owner_unit_id"],
        stage=row["stage"],
        due_at=parse_utc(row["due_at"]),
        reminded_at=parse_utc(row["reminded_at"]) if row["reminded_at"] else None,
        level=int(row["level"]),
        notified_level=int(row["notified_level"]),
        level_due_at=parse_utc(row["level_due_at"]) if row["level_due_at"] else None,
        status=row["status"],
        pending=bool(row["pending"]),
    )


class ChaseRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def due_by(self, horizon: datetime) -> list[Chase]:
        """Deadlines still owed by open cases, falling at or before ``horizon``, that
        nothing has climbed yet (level 0): to remind, or to start at level 1."""
        parts = []
        params: list[Any] = []
        for stage in STAGES:
            column = "t.accept_by" if stage == "accept" else "t.answer_by"
            statuses = ", ".join("?" for _ in PENDING_STATUSES[stage])
            columns = _COLUMNS.format(stage=f"'{stage}'", due=column, pending="1")
            parts.append(
                f"SELECT {columns} FROM cases c JOIN appeal_terms t ON t.case_id = c.id"
                " LEFT JOIN case_chases h ON h.case_id = c.id AND h.stage = ?"
                f" WHERE c.merged_into IS NULL AND c.status IN ({statuses}) AND {column} <= ?"
                " AND COALESCE(h.level, 0) = 0 AND COALESCE(h.status, 'open') = 'open'"
            )
            params += [stage, *PENDING_STATUSES[stage], utc_iso(horizon)]
        rows = await self._db.fetchall(
            " UNION ALL ".join(parts) + " ORDER BY due_at, case_id", params
        )
        return [_chase(r) for r in rows]

    async def _chases(self, where: str, params: tuple[Any, ...] = ()) -> list[Chase]:
        columns = _COLUMNS.format(stage="h.stage", due="h.due_at", pending=_pending_sql("h.stage"))
        rows = await self._db.fetchall(
            f"SELECT {columns} FROM case_chases h JOIN cases c ON c.id = h.case_id"
            f" WHERE {where} ORDER BY h.id",
            params,
        )
        return [_chase(r) for r in rows]

    async def climbing_due(self, now: datetime) -> list[Chase]:
        """Open chases whose current level's time is up (the case may have been met)."""
        return await self._chases(
            "h.status = 'open' AND h.level >= 1 AND h.level_due_at <= ?", (utc_iso(now),)
        )

    async def met(self) -> list[Chase]:
        """Open chases whose case no longer owes the deadline: to end."""
        return await self._chases(f"h.status = 'open' AND NOT {_pending_sql('h.stage')}")

    async def unnotified(self) -> list[Chase]:
        """Open chases whose current level was never texted."""
        return await self._chases("h.status = 'open' AND h.notified_level < h.level")

    async def of_case(self, case_id: int) -> list[Chase]:
        return await self._chases("h.case_id = ?", (case_id,))

    async def get(self, conn: aiosqlite.Connection, case_id: int, stage: str) -> Chase | None:
        """The chase as it stands now, read in the caller's transaction."""
        columns = _COLUMNS.format(stage="h.stage", due="h.due_at", pending=_pending_sql("h.stage"))
        cursor = await conn.execute(
            f"SELECT {columns} FROM case_chases h JOIN cases c ON c.id = h.case_id"
            " WHERE h.case_id = ? AND h.stage = ?",
            (case_id, stage),
        )
        row = await cursor.fetchone()
        return _chase(row) if row is not None else None

    async def _still_pending(self, conn: aiosqlite.Connection, case_id: int, stage: str) -> bool:
        cursor = await conn.execute(
            f"SELECT 1 FROM cases c WHERE c.id = ? AND {_pending_sql('?')}",
            (case_id, stage, stage),
        )
        return await cursor.fetchone() is not None

    async def remind(self, conn: aiosqlite.Connection, chase: Chase) -> None:
        """Mark ``chase`` reminded (creating its row), if nothing happened to it meanwhile."""
        now = utc_iso(self._clock.now())
        if not await self._still_pending(conn, chase.case_id, chase.stage):
            raise LostRace(f"case {chase.case_number} met its {chase.stage} deadline meanwhile")
        cursor = await conn.execute(
            "INSERT INTO case_chases (case_id, stage, due_at, reminded_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, stage) DO UPDATE SET"
            " reminded_at = excluded.reminded_at, updated_at = excluded.updated_at"
            " WHERE case_chases.reminded_at IS NULL AND case_chases.level = 0"
            " AND case_chases.status = 'open'",
            (chase.case_id, chase.stage, utc_iso(chase.due_at), now, now, now),
        )
        if cursor.rowcount != 1:
            raise LostRace(f"case {chase.case_number}: its {chase.stage} chase moved on meanwhile")

    async def set_level(
        self,
        conn: aiosqlite.Connection,
        chase: Chase,
        level: int,
        level_due_at: datetime | None,
    ) -> None:
        """Move ``chase`` from the level it was read at to ``level`` (creating its row at
        the first), if the case still owes the deadline; else :class:`LostRace`."""
        now = utc_iso(self._clock.now())
        if not await self._still_pending(conn, chase.case_id, chase.stage):
            raise LostRace(f"case {chase.case_number} met its {chase.stage} deadline meanwhile")
        due = utc_iso(level_due_at) if level_due_at else None
        cursor = await conn.execute(
            "INSERT INTO case_chases (case_id, stage, due_at, level, level_due_at, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, stage) DO UPDATE SET"
            " level = excluded.level, level_due_at = excluded.level_due_at,"
            " updated_at = excluded.updated_at"
            " WHERE case_chases.level = ? AND case_chases.status = 'open'",
            (chase.case_id, chase.stage, utc_iso(chase.due_at), level, due, now, now, chase.level),
        )
        if cursor.rowcount != 1:
            raise LostRace(
                f"case {chase.case_number}: its {chase.stage} chase left level {chase.level}"
            )

    async def hold_at_top(self, conn: aiosqlite.Connection, chase: Chase) -> None:
        """The top level's time is up: nothing is left to climb (each level is texted once)."""
        await conn.execute(
            "UPDATE case_chases SET level_due_at = NULL, updated_at = ? WHERE id = ? AND level = ?",
            (utc_iso(self._clock.now()), chase.id, chase.level),
        )

    async def mark_notified(self, conn: aiosqlite.Connection, chase_id: int, level: int) -> None:
        await conn.execute(
            "UPDATE case_chases SET notified_level = MAX(notified_level, ?) WHERE id = ?",
            (level, chase_id),
        )

    async def end(self, conn: aiosqlite.Connection, chase: Chase) -> bool:
        """End ``chase`` if its case no longer owes the deadline; True if it was ended now."""
        cursor = await conn.execute(
            "UPDATE case_chases SET status = 'ended', level_due_at = NULL, updated_at = ?"
            f" WHERE id = ? AND status = 'open' AND NOT EXISTS (SELECT 1 FROM cases c"
            f" WHERE c.id = case_chases.case_id AND {_pending_sql('case_chases.stage')})",
            (utc_iso(self._clock.now()), chase.id),
        )
        return cursor.rowcount == 1
