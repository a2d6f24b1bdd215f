"""``gateway db copy``: a city's SQLite store moved into PostgreSQL, verified by counts.

    counts = await copy_store(sqlite_db, postgres_db)

Both stores are at the newest schema (the caller migrates them), so they have the same
tables and columns. The copy is one PostgreSQL transaction under the store's write lock:
tables in foreign-key order, each in one ``COPY`` fed in batches from SQLite (a row may
name a later row of its own table, as a case merged into a newer one: the keys are checked
at the end of the statement). The counting triggers stay off meanwhile, as their counts
are copied with the rest. Then every identity sequence is set past the copied ids, and the
rows of every table are counted on both sides; a difference rolls everything back.

Values take PostgreSQL's column types: SQLite keeps any value in any column, so text in a
number column (or the reverse) is converted where it means the same, and refused naming
the table, the column and the row otherwise. Timestamps are text and booleans 0/1 integers
on both engines.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.store.db import Database, StoreError
from gateway.store.postgres import PgConnection, PostgresDatabase

# Rows read from SQLite at a time and fed to the table's COPY.
BATCH = 5000
# PostgreSQL's own table of the schema version (the SQLite file keeps it in a pragma).
_NOT_COPIED = frozenset({"store_schema"})


class CopyError(StoreError):
    """The copy cannot be made or did not verify; nothing was copied. The message says why."""


@dataclass(frozen=True)
class TableCount:
    table: str
    sqlite: int
    postgres: int

    @property
    def matches(self) -> bool:
        return self.sqlite == self.postgres


def sqlite_schema_version(path: Path) -> int:
    """The schema version of the SQLite file at ``path``, read without changing it; a file
    that is not a gateway store (no version, no tables of ours) is refused in one line."""
    if not path.is_file():
        raise CopyError(f"no SQLite store at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            units = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'units'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CopyError(f"{path} is not a SQLite database ({exc})") from None
    if version == 0 or units is None:
        raise CopyError(f"{path} is not a gateway store (no schema version or no units table)")
    return version


async def copy_store(source: Database, target: PostgresDatabase) -> list[TableCount]:
    """Copy every table of ``source`` into the empty ``target`` (see the module docstring);
    the rows counted on both sides, table by table, in the order copied."""
    source_version, target_version = await source.schema_version(), await target.schema_version()
    if source_version != target_version:
        raise CopyError(
            f"the SQLite store is at schema version {source_version}, the database at"
            f" {target_version}: migrate both with this gateway first"
        )
    async with target.transaction() as conn:
        columns = await _columns(conn)
        tables = _in_key_order(columns, await _references(conn))
        await _check_same_tables(source, tables, columns)
        await _refuse_rows(conn, target.label, tables)
        counts = []
        for table in tables:
            await conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            await _copy_table(source, conn, table, columns[table])
            await conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
        await _sync_sequences(conn)
        for table in tables:
            row = await source.fetchone(f'SELECT COUNT(*) FROM "{table}"')
            counts.append(TableCount(table, int(row[0]) if row else 0, await _count(conn, table)))
        wrong = [c.table for c in counts if not c.matches]
        if wrong:
            # Raising rolls the copy back: the database stays empty.
            raise CopyMismatch(counts, wrong)
    return counts


async def check_empty(target: PostgresDatabase) -> None:
    """Refuse, in one line naming them, a database whose tables hold rows already."""
    async with target.transaction() as conn:
        await _refuse_rows(conn, target.label, list(await _columns(conn)))


async def _refuse_rows(conn: PgConnection, label: str, tables: list[str]) -> None:
    full = [t for t in tables if await _count(conn, t)]
    if full:
        raise CopyError(
            f"the database {label} already holds rows ({', '.join(full)}): copy into a new,"
            " empty database (create it again and run `gateway db migrate`)"
        )


class CopyMismatch(CopyError):
    """The counts differ after the copy (rolled back); ``counts`` has both sides."""

    def __init__(self, counts: list[TableCount], tables: list[str]) -> None:
        super().__init__(f"the row counts differ in {', '.join(tables)}: nothing was copied")
        self.counts = counts


async def _columns(conn: PgConnection) -> dict[str, list[tuple[str, str]]]:
    """Each table's columns and their PostgreSQL types, in the table's order."""
    cursor = await conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in await cursor.fetchall():
        if table not in _NOT_COPIED:
            columns.setdefault(table, []).append((column, kind))
    return columns


async def _references(conn: PgConnection) -> dict[str, set[str]]:
    """Each table's foreign keys: the other tables it names."""
    cursor = await conn.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND n.nspname = current_schema()"
    )
    named: dict[str, set[str]] = {}
    for table, other in await cursor.fetchall():
        if table != other:  # a table naming itself is checked at the end of its COPY
            named.setdefault(table.strip('"'), set()).add(other.strip('"'))
    return named


def _in_key_order(columns: dict[str, Any], references: dict[str, set[str]]) -> list[str]:
    """The tables, each after the tables its foreign keys name (by name among equals)."""
    done: list[str] = []
    waiting = sorted(columns)
    while waiting:
        ready = [t for t in waiting if references.get(t, set()) <= set(done)]
        if not ready:
            raise CopyError(f"the foreign keys of {', '.join(waiting)} form a cycle")
        done += ready
        waiting = [t for t in waiting if t not in ready]
    return done


async def _check_same_tables(
    source: Database, tables: list[str], columns: dict[str, list[tuple[str, str]]]
) -> None:
    rows = await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    theirs = {r[0] for r in rows}
    if theirs != set(tables):
        odd = sorted(theirs.symmetric_difference(tables))
        raise CopyError(f"the two stores' tables differ ({', '.join(odd)}): migrate both first")
    for table in tables:
        have = {r[1] for r in await source.fetchall(f'PRAGMA table_info("{table}")')}
        missing = [c for c, _ in columns[table] if c not in have]
        if missing:
            raise CopyError(f"the SQLite table {table} has no column {', '.join(missing)}")


async def _count(conn: PgConnection, table: str) -> int:
    cursor = await conn.execute(f'SELECT COUNT(*) FROM "{table}"')
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _copy_table(
    source: Database, conn: PgConnection, table: str, columns: list[tuple[str, str]]
) -> None:
    names = [c for c, _ in columns]
    converters = [_CONVERTERS.get(kind, _same) for _, kind in columns]
    quoted = ", ".join(f'"{name}"' for name in names)
    select = f'SELECT {quoted} FROM "{table}"'
    problems: list[str] = []

    async def records() -> AsyncIterator[tuple[Any, ...]]:
        async with source.conn.execute(select) as cursor:
            while batch := await cursor.fetchmany(BATCH):
                for row in batch:
                    yield _converted(table, names, converters, row, problems)

    try:
        await conn.raw.copy_records_to_table(table, records=records(), columns=names)
    except _BadValue:
        raise CopyError(problems[0]) from None


class _BadValue(Exception):
    """A value that does not fit its PostgreSQL column (the message is kept aside)."""


def _converted(
    table: str,
    names: Sequence[str],
    converters: Sequence[Callable[[Any], Any]],
    row: aiosqlite.Row,
    problems: list[str],
) -> tuple[Any, ...]:
    out: list[Any] = []
    for name, convert, value in zip(names, converters, row, strict=True):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(convert(value))
        except (TypeError, ValueError):
            key = f" (row {dict(zip(names, row, strict=True)).get('id')})" if "id" in names else ""
            problems.append(f"{table}.{name}{key}: {value!r} does not fit the PostgreSQL column")
            raise _BadValue from None
    return tuple(out)


def _to_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else str(value)


def _to_integer(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if isinstance(value, bytes):
        raise TypeError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bytes):
        raise TypeError(value)
    return float(value)


def _to_bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _same(value: Any) -> Any:
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _to_text,
    "integer": _to_integer,
    "bigint": _to_integer,
    "smallint": _to_integer,
    "double precision": _to_float,
    "real": _to_float,
    "bytea": _to_bytes,
}


async def _sync_sequences(conn: PgConnection) -> None:
    """Set each identity or serial column's sequence past the largest copied id."""
    cursor = await conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
        " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')"
    )
    for table, column in await cursor.fetchall():
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?),"
            f' COALESCE(MAX("{column}"), 0) + 1, false) FROM "{table}"',
            (f'"{table}"', column),
        )
