"""The store's connection: one aiosqlite connection, WAL, numbered migrations.

All writes go through :meth:`Database.transaction`, which serialises them with an
asyncio lock, so that two tasks never interleave statements of their own
transactions on the shared connection. Reads use :meth:`Database.fetchall` and
:meth:`Database.fetchone` directly.

A store that cannot be used is refused at open with one line naming the file and
the problem (:func:`store_problem`): a read-only folder, a file that is not a
database or is truncated, a full disk, a schema newer than this gateway's. The
bundled migrations are numbered without gaps, except the documented historical
gaps in :data:`HISTORICAL_GAPS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import sqlite3
import warnings
from collections.abc import AsyncIterator, Collection, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from gateway.errors import GatewayError

log = logging.getLogger(__name__)


def param_marks(values: Collection[Any]) -> str:
    """``?,?,?``: one parameter mark per value, for ``IN (…)`` (either engine's dialect)."""
    return ",".join("?" for _ in values)


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# Migration numbers that were never released. 0003 was dropped before any store
# was made with it: stores at version 2 went straight to 4, so the gap is history,
# not a lost file. Any other gap is refused.
HISTORICAL_GAPS = frozenset({3})

_SQLITE_HEADER = b"SQLite format 3\x00"


class StoreError(GatewayError):
    """The store refused an operation; the message says which and why."""


class StoreUnavailable(StoreError):
    """The store cannot be used (full disk, locked, damaged, read-only, the database server
    gone…). ``where`` names it: the SQLite file, or the database's URL without password."""

    def __init__(self, where: Path | str, problem: str) -> None:
        super().__init__(f"store {where}: {problem}")
        self.where = str(where)
        self.problem = problem


def store_problem(path: Path, exc: BaseException) -> str:
    """One line, for people, on why the store file at ``path`` failed with ``exc``."""
    text = str(exc)
    lowered = text.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in lowered:
        return "the disk is full (no room to write)"
    if "database is locked" in lowered or "database is busy" in lowered:
        return "the database is locked by another process"
    if "disk i/o error" in lowered:
        return "the disk failed a read or a write (disk I/O error)"
    if "not a database" in lowered:
        return "the file is not a SQLite database"
    if "malformed" in lowered:
        return "the database file is damaged (malformed or truncated)"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        folder = path.parent
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return f"the folder {folder} is read-only (the store writes its journal beside it)"
        if path.exists() and not os.access(path, os.W_OK):
            return "the file is read-only"
        return f"cannot open the file ({text})"
    if isinstance(exc, OSError):
        return exc.strerror or text
    return text


#: PostgreSQL's errors of the server or the connection, not of the statement: the
#: connection lost or refused (class 08), the server shutting down or a statement cancelled
#: or timed out (57), out of disk, memory or connections (53), a lock not had in time
#: (55P03), a read-only server (25006, a standby).
PG_FAILURES: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.LockNotAvailableError,
    asyncpg.ReadOnlySQLTransactionError,
)


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says a PostgreSQL connection is gone or unusable: the server closed it
    (a restart, an administrator), the network dropped it, or the client found it closed or
    left mid-operation by a server that went away."""
    if isinstance(exc, asyncpg.InterfaceError):
        # The client's side, not a misuse: "connection is closed", a pool closing, or a
        # connection the pool took back when it closed ("released back to the pool").
        text = str(exc)
        return "closed" in text or "closing" in text or "released back to the pool" in text
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.InternalClientError
        | ConnectionResetError
        | BrokenPipeError,
    )


def is_store_failure(exc: BaseException) -> bool:
    """True for errors of the store's file, disk, server or connection (full, locked,
    damaged, I/O, the server gone or restarting), on either engine; not for errors of the
    statement (a constraint, a misuse), which are bugs or conflicts."""
    if isinstance(exc, (StoreUnavailable, *PG_FAILURES)) or lost_connection(exc):
        return True
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


#: A broken constraint (UNIQUE, CHECK, FOREIGN KEY, NOT NULL), on either engine.
CONSTRAINT_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
)


def unique_violation(exc: BaseException, table: str, column: str) -> bool:
    """Whether ``exc`` is the UNIQUE constraint of ``table.column`` failing, on either engine
    (PostgreSQL names a column's UNIQUE constraint ``<table>_<column>_key``)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return bool(exc.constraint_name == f"{table}_{column}_key")
    return isinstance(exc, sqlite3.IntegrityError) and f"{table}.{column}" in str(exc)


def in_units(column: str, units: Collection[int] | None) -> tuple[str, tuple[int, ...]]:
    """`` AND <column> IN (...)`` and its parameters, limiting a query to the units a
    person may see (:class:`gateway.web.scope.Scope`); None: every unit, no condition."""
    if units is None:
        return "", ()
    if not units:
        return " AND 1 = 0", ()
    ids = tuple(sorted(units))
    return f" AND {column} IN ({','.join('?' for _ in ids)})", ids


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Refuse migrations that skip a number (besides :data:`HISTORICAL_GAPS`)."""
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {[m.name for m in migrations]}")
    if not versions:
        return
    missing = sorted(set(range(1, max(versions) + 1)) - set(versions) - HISTORICAL_GAPS)
    if missing:
        names = ", ".join(f"{v:04d}" for v in missing)
        raise StoreError(f"the migrations skip {names}: a migration file is missing")


def _check_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database or is shorter than its header says."""
    try:
        with path.open("rb") as file:
            header = file.read(100)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreUnavailable(path, store_problem(path, exc)) from exc
    if not header:
        return  # an empty file: SQLite makes a new database in it
    if not header.startswith(_SQLITE_HEADER) or len(header) < 100:
        raise StoreUnavailable(path, "the file is not a SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is only valid when these two counters agree. And
    # while a write-ahead log holds frames, the file may rightly be shorter than its
    # header says: a process killed during a checkpoint has written page 1 (with the
    # new size) but not yet the pages after it, which SQLite replays from the log.
    counters_agree = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    wal_holds_frames = wal.exists() and wal.stat().st_size > 32  # more than its header
    if counters_agree and pages and size < pages * page_size and not wal_holds_frames:
        raise StoreUnavailable(
            path,
            f"the database file is truncated ({size} bytes, its header says {pages * page_size})",
        )


class Migration:
    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def bundled_migrations(package: str = "gateway.store.migrations") -> list[Migration]:
    """The numbered ``.sql`` files in ``gateway/store/migrations`` (SQLite's dialect; the
    same series in PostgreSQL's is in ``migrations/postgresql``), in order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    check_sequence(found)
    return found


class Database:
    """An open store file. Use ``async with Database.open(path) as db``."""

    #: The SQL dialect, where a repository's statement needs a clause of one engine only.
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.label = str(path)  # the store in messages and logs
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path, *, migrate: bool = True) -> AsyncIterator[Database]:
        """Open (and by default migrate) the store; a file that cannot serve is a
        :class:`StoreUnavailable` naming it and the problem, in one line."""
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot create the folder {path.parent}: {exc.strerror}"
            raise StoreUnavailable(path, problem) from exc
        await asyncio.to_thread(_check_file, path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(path, store_problem(path, exc)) from exc
        db = cls(conn, path)
        try:
            try:
                conn.row_factory = aiosqlite.Row
                await conn.execute("PRAGMA journal_mode=WAL")
                await conn.execute("PRAGMA foreign_keys=ON")
                await conn.execute("PRAGMA busy_timeout=5000")
                await conn.execute("PRAGMA synchronous=NORMAL")
                await db.check_version()
                if migrate:
                    await db.migrate()
            except sqlite3.Error as exc:
                raise StoreUnavailable(path, store_problem(path, exc)) from exc
            yield db
        finally:
            await db.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.conn.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"store {self.label} was never closed", ResourceWarning, stacklevel=1)

    @property
    def file(self) -> Path | None:
        """The SQLite file (None on PostgreSQL, which has no file of ours)."""
        return self.path

    def problem(self, exc: BaseException) -> str:
        """One line, for people, on why the store failed with ``exc``."""
        return store_problem(self.path, exc)

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    def migrations(self) -> list[Migration]:
        """The bundled migrations in this engine's dialect."""
        return bundled_migrations()

    def unavailable(self, problem: str) -> StoreUnavailable:
        return StoreUnavailable(self.label, problem)

    async def check_version(self, migrations: Sequence[Migration] | None = None) -> None:
        """Refuse a store whose schema is newer than the newest migration we know."""
        known = migrations if migrations is not None else self.migrations()
        newest = max((m.version for m in known), default=0)
        current = await self.schema_version()
        if current > newest:
            raise self.unavailable(
                f"its schema version {current} is newer than this gateway's ({newest});"
                " run the newer gateway that made it",
            )

    async def probe_write(self) -> None:
        """Write a page-sized row and delete it: a full disk or a locked file shows here."""
        async with self.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO store_probe (payload, at) VALUES (zeroblob(8192), datetime('now'))"
            )
            await conn.execute("DELETE FROM store_probe WHERE id = ?", (cursor.lastrowid,))

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[str]:
        """Apply the migrations newer than the file's ``user_version``; return their names."""
        known = migrations if migrations is not None else self.migrations()
        check_sequence(known)
        await self.check_version(known)
        applied = []
        current = await self.schema_version()
        for migration in known:
            if migration.version <= current:
                continue
            async with self.transaction() as conn:
                try:
                    # executescript would COMMIT our transaction; run statement by statement.
                    for statement in _statements(migration.sql):
                        await conn.execute(statement)
                    if "writable_schema" in migration.sql:
                        await _bump_schema_cookie(conn)
                    await conn.execute(f"PRAGMA user_version={migration.version}")
                except aiosqlite.Error as exc:
                    problem = f"migration {migration.name} failed: {store_problem(self.path, exc)}"
                    raise StoreUnavailable(self.path, problem) from exc
            log.info("store %s: applied migration %s", self.path, migration.name)
            applied.append(migration.name)
            current = migration.version
        return applied

    @contextlib.asynccontextmanager
    async def transaction(self, *, serialised: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); rolled back on any exception.

        On SQLite every write transaction is serialised (``serialised`` has a meaning on
        PostgreSQL only, see :meth:`PostgresDatabase.transaction`)."""
        async with self._write_lock:
            begin = asyncio.ensure_future(self.conn.execute("BEGIN IMMEDIATE"))
            try:
                await asyncio.shield(begin)
            except asyncio.CancelledError:
                # Cancelled while the BEGIN waits for another writer's lock: the BEGIN goes
                # on in the connection's thread. End what it opens before the next writer
                # comes, or that one (and every later one) finds a transaction left open.
                with contextlib.suppress(Exception):
                    await begin
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise
            try:
                yield self.conn
            except BaseException:
                # SQLite itself ends the transaction on some errors (a full disk): then
                # there is nothing to roll back, and the first error is the one to tell.
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()


async def _bump_schema_cookie(conn: aiosqlite.Connection) -> None:
    """After a migration edited a table's definition in place (``writable_schema``): a
    new schema cookie makes every connection, this one included, read the schema again,
    as SQLite's procedure for such edits requires."""
    async with conn.execute("PRAGMA schema_version") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    await conn.execute(f"PRAGMA schema_version={int(row[0]) + 1}")


def _statements(script: str) -> list[str]:
    """Split a migration into statements: each ends with ``;`` at the end of a line."""
    out, buffer = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(buffer).strip())
            buffer = []
    tail = "\n".join(buffer).strip()
    if tail:
        out.append(tail)
    return out
