"""Units (the police organisation) and officers."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import Clock, utc_iso
from gateway.store.db import Database, StoreError

UNIT_KINDS = ("city", "sub_bureau", "county_bureau", "station", "department", "office")
# The longest unit name a text carries (``vars.unit`` in gateway/sms/templates.toml):
# a longer name is texted by its abbreviation.
TEXT_NAME_MAX = 16
# Who may speak for a unit: report its rectification orders done.
HEAD_ROLES = ("chief", "deputy", "leader")


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str
    kind: str
    parent_id: int | None
    abbreviation: str | None = None

    @property
    def text_name(self) -> str:
        """The name as texts carry it: the full name if it fits, else the abbreviation."""
        if len(self.name) <= TEXT_NAME_MAX:
            return self.name
        if self.abbreviation and len(self.abbreviation) <= TEXT_NAME_MAX:
            return self.abbreviation
        return self.name[: TEXT_NAME_MAX - 1] + "…"


@dataclass(frozen=True)
class Officer:
    id: int
    code: str
    name: str
    mobile: str | None
    unit_id: int
    role: str


class UnitRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add_unit(
        self,
        code: str,
        name: str,
        kind: str,
        parent_code: str | None = None,
        abbreviation: str | None = None,
    ) -> Unit:
        if kind not in UNIT_KINDS:
            raise StoreError(f"unit {code}: unknown kind {kind!r} (known: {', '.join(UNIT_KINDS)})")
        parent_id = None
        if parent_code is not None:
            parent = await self.unit_by_code(parent_code)
            if parent is None:
                raise StoreError(f"unit {code}: parent {parent_code!r} does not exist")
            parent_id = parent.id
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO units (code, name, kind, parent_id, abbreviation, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
                " kind = excluded.kind, parent_id = excluded.parent_id,"
                " abbreviation = excluded.abbreviation RETURNING id",
                (code, name, kind, parent_id, abbreviation, utc_iso(self._clock.now())),
            )
            row = await cursor.fetchone()
        assert row is not None
        return Unit(int(row[0]), code, name, kind, parent_id, abbreviation)

    async def add_officer(
        self, code: str, name: str, unit_code: str, role: str, mobile: str | None
    ) -> Officer:
        unit = await self.unit_by_code(unit_code)
        if unit is None:
            raise StoreError(f"officer {code}: unit {unit_code!r} does not exist")
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO officers (code, name, mobile, unit_id, role, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
                " mobile = excluded.mobile, unit_id = excluded.unit_id, role = excluded.role"
                " RETURNING id",
                (code, name, mobile, unit.id, role, utc_iso(self._clock.now())),
            )
            row = await cursor.fetchone()
        assert row is not None
        return Officer(int(row[0]), code, name, mobile, unit.id, role)

    async def unit_by_code(self, code: str) -> Unit | None:
        row = await self._db.fetchone(
            "SELECT id, code, name, kind, parent_id, abbreviation FROM units WHERE code = ?",
            (code,),
        )
        return _unit(row) if row else None

    async def unit(self, unit_id: int) -> Unit | None:
        row = await self._db.fetchone(
            "SELECT id, code, name, kind, parent_id, abbreviation FROM units WHERE id = ?",
            (unit_id,),
        )
        return _unit(row) if row else None

    async def units(self, kind: str | None = None) -> list[Unit]:
        if kind is None:
            rows = await self._db.fetchall(
                "SELECT id, code, name, kind, parent_id, abbreviation FROM units ORDER BY id"
            )
        else:
            rows = await self._db.fetchall(
                "SELECT id, code, name, kind, parent_id, abbreviation FROM units"
                " WHERE kind = ? ORDER BY id",
                (kind,),
            )
        return [_unit(r) for r in rows]

    async def ancestors(self, unit_id: int) -> list[Unit]:
        """The unit's parents, nearest first (excluding the unit itself)."""
        chain: list[Unit] = []
        current = await self.unit(unit_id)
        while current is not None and current.parent_id is not None:
            current = await self.unit(current.parent_id)
            if current is not None:
                chain.append(current)
        return chain

    async def subtree(self, unit_id: int) -> frozenset[int]:
        """The unit and every unit under it, at any depth."""
        rows = await self._db.fetchall(
            "WITH RECURSIVE tree(id) AS (SELECT id FROM units WHERE id = ?"
            " UNION SELECT u.id FROM units u JOIN tree t ON u.parent_id = t.id)"
            " SELECT id FROM tree",
            (unit_id,),
        )
        return frozenset(int(r[0]) for r in rows)

    async def officers(self, unit_id: int | None = None, role: str | None = None) -> list[Officer]:
        sql = "SELECT id, code, name, mobile, unit_id, role FROM officers WHERE 1=1"
        params: list[object] = []
        if unit_id is not None:
            sql += " AND unit_id = ?"
            params.append(unit_id)
        if role is not None:
            sql += " AND role = ?"
            params.append(role)
        rows = await self._db.fetchall(sql + " ORDER BY id", params)
        return [Officer(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def chief(self, unit_id: int) -> Officer | None:
        chiefs = await self.officers(unit_id, "chief")
        return chiefs[0] if chiefs else None


def _unit(row: object) -> Unit:
    r = row  # aiosqlite.Row
    return Unit(r[0], r[1], r[2], r[3], r[4], r[5])  # type: ignore[index]
