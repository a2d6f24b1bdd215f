"""The store on PostgreSQL (``store.url = "postgresql://…"``), behind Database's interface.

The repositories write SQL once, in SQLite's dialect with ``?`` placeholders, and call
``execute`` / ``fetchone`` / ``fetchall`` / ``rowcount`` on the connection that
:meth:`PostgresDatabase.transaction` yields. Here that connection is a
:class:`PgConnection` over an ``asyncpg`` pool: ``?`` becomes ``$1, $2…`` and rows are
``asyncpg.Record`` (by name and by position, like ``sqlite3.Row``). New ids are read with
``RETURNING id`` in the SQL, which both engines understand; there is no ``lastrowid``.

Writers take turns as they do on SQLite (``BEGIN IMMEDIATE``): each transaction first
takes one advisory lock, so the repositories' read-then-write steps keep the meaning they
have on SQLite, across every gateway on the database. The schema comes from the same
numbered series as SQLite's, in PostgreSQL's dialect (``migrations/postgresql``); its
version is kept in ``store_schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gateway.store.db import (
    PG_FAILURES,
    Database,
    Migration,
    StoreUnavailable,
    bundled_migrations,
    check_sequence,
    is_store_failure,
    lost_connection,
)

log = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")
POOL_SIZE = 10
READ_POOL_SIZE = 4
CONNECT_TIMEOUT = 10.0
LOCK_TIMEOUT = 10.0  # store.lock_timeout's default
# The server probes each of our connections after 10 s of silence, every 5 s, 3 times:
# a gateway whose host died without closing its sockets (power, network) is then known
# gone within half a minute, and its locks (the write lock of a transaction in flight,
# its name, the leadership, a PBX's AsyncAGI calls) are freed for the others. Without
# them the operating system's default waits two hours.
KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
# The advisory lock every write transaction (and every migration) takes first: one writer
# at a time, as on SQLite. The number is the store's own ("gateway" in ASCII).
WRITE_LOCK = 0x67617465776179

# Tokens the translation must not look inside: string literals, quoted names, comments;
# anything else is copied, each ``?`` outside them is numbered, and SQLite's planner hint
# ``INDEXED BY <index>`` is dropped (PostgreSQL's planner takes no hints).
_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?\d*|\s+INDEXED\s+BY\s+\w+",
    re.DOTALL | re.IGNORECASE,
)
_COUNT = re.compile(r"(\d+)$")


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def location_label(location: str | Path) -> str:
    """A store's location for messages: the SQLite file, or the URL without password."""
    return url_label(str(location)) if is_postgres_url(location) else str(location)


def url_label(url: str) -> str:
    """The URL for messages and logs: scheme, user, host, port, database; no password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "postgresql://(malformed URL)"
    return f"postgresql://{user}{host}{port}{parts.path}"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite's ``?`` and ``?NNN`` placeholders as PostgreSQL's ``$1, $2…`` (not inside
    literals), without SQLite's ``INDEXED BY`` hints."""
    largest = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal largest
        token = match.group(0)
        if token.startswith("?"):
            # "?NNN" is parameter NNN; a bare "?" the one after the largest so far (SQLite).
            number = int(token[1:]) if len(token) > 1 else largest + 1
            largest = max(largest, number)
            return f"${number}"
        return "" if token[0].isspace() else token

    return _TOKENS.sub(replace, sql)


def pg_problem(exc: BaseException) -> str:
    """One line, for people, on why the database could not be reached or used."""
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "the password was refused (check the user and password in store.url)"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"the user was refused: {exc}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist: {exc}"
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return "the database is locked by another process"  # store.lock_timeout passed
    if isinstance(exc, asyncpg.DiskFullError):
        return "the disk is full (no room to write)"
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return "the database is read-only (a standby, or set read-only)"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "the database server has no connection left (max_connections)"
    if isinstance(exc, asyncpg.QueryCanceledError):
        return f"a statement was cancelled ({_first_line(exc)})"
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return "the database server is starting up or shutting down"
    if isinstance(exc, asyncpg.OperatorInterventionError):
        return "the database server shut down or restarted"
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.InternalClientError,
    ):
        return "the connection to the database server was lost"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running, on this host and port?)"
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:.0f}s"
    if isinstance(exc, ConnectionError):
        return "the connection to the database server was lost"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, (ValueError, asyncpg.ClientConfigurationError)):
        return f"the URL is malformed: {exc}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PostgresUnavailable(StoreUnavailable):
    """The database cannot be used; the message names it (without the password)."""


# What reaching or using the server may raise besides PostgreSQL's own errors.
_CLIENT_FAILURES = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)


@contextlib.contextmanager
def failures_of(label: str) -> Iterator[None]:
    """Raise the server's or the connection's failures (not the statement's) as
    :class:`PostgresUnavailable` naming the database: one line, as a SQLite store's."""
    try:
        yield
    except (*_CLIENT_FAILURES, *PG_FAILURES) as exc:
        if isinstance(exc, asyncpg.InterfaceError) and not is_store_failure(exc):
            raise  # a misuse of the client, not a lost connection
        raise PostgresUnavailable(label, pg_problem(exc)) from exc


async def _read(label: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
    """``fetch()`` on the pool; once more on a fresh connection if the pooled one was found
    dead (the server restarted since it was last used: the pool replaces it)."""
    with failures_of(label):
        try:
            return await fetch()
        except Exception as exc:
            if not lost_connection(exc):
                raise
            log.debug("store %s: a pooled connection was dead (%s); reconnecting", label, exc)
            return await fetch()


async def _release(pool: asyncpg.Pool[asyncpg.Record], conn: Any) -> None:
    """Give ``conn`` back; one that cannot be reset is closed by the pool, which makes a
    new one at the next acquire: nothing for the caller to know."""
    with contextlib.suppress(Exception):
        await pool.release(conn)


class PgCursor:
    """What a statement gave: its rows, and how many rows it changed."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    async def fetchone(self) -> asyncpg.Record | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[asyncpg.Record]:
        rest = self._rows[self._next :]
        self._next = len(self._rows)
        return rest


class PgConnection:
    """One pooled connection inside a transaction, with the surface the repositories use."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record], label: str) -> None:
        self.raw = conn
        self.label = label

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        # The rows and the command's status ("UPDATE 3") together, through asyncpg's
        # statement cache: one round trip once the connection knows the statement, where
        # the public prepare() (uncached) costs a second one each time (3-4x slower on
        # loopback, bench/store_engines.py). No public call returns both; asyncpg is pinned
        # and the engines' tests check rows and counts.
        with failures_of(self.label):
            rows, status, _ = await self.raw._execute(
                translate(sql), tuple(params), 0, None, return_status=True
            )
        match = _COUNT.search(status.decode() if status else "")
        return PgCursor(rows, int(match.group(1)) if match else -1)

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        with failures_of(self.label):
            await self.raw.executemany(translate(sql), [tuple(p) for p in params])

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with failures_of(self.label):
            return list(await self.raw.fetch(translate(sql), *params))


class PostgresDatabase(Database):
    """A PostgreSQL store. Use ``async with PostgresDatabase.open(url) as db``."""

    dialect = "postgresql"

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        url: str,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.pool = pool
        self.url = url
        self.label = url_label(url)
        self.lock_timeout = lock_timeout
        self._write_lock = asyncio.Lock()
        self._closed = False

    @property
    def file(self) -> Path | None:
        return None

    def problem(self, exc: BaseException) -> str:
        return pg_problem(exc)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(  # type: ignore[override]
        cls,
        url: str,
        *,
        migrate: bool = True,
        pool_size: int = POOL_SIZE,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> AsyncIterator[PostgresDatabase]:
        """Connect (and by default migrate); a database that cannot serve is a
        :class:`PostgresUnavailable` naming it and the problem, in one line."""
        pool = await _pool(url, pool_size)
        db = cls(pool, url, lock_timeout)
        try:
            await db.check_version()
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.pool.close()

    async def schema_version(self) -> int:
        with failures_of(self.label):
            async with self.pool.acquire() as conn:
                return await _version(conn)

    def migrations(self) -> list[Migration]:
        return postgres_migrations()

    def unavailable(self, problem: str) -> StoreUnavailable:
        return PostgresUnavailable(self.label, problem)

    async def probe_write(self) -> None:
        """Write a page-sized row and delete it: a full disk or a read-only server shows here."""
        async with self.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO store_probe (payload, at) VALUES"
                " (decode(repeat('00', 8192), 'hex'), to_char(now() AT TIME ZONE 'UTC',"
                " 'YYYY-MM-DD HH24:MI:SS')) RETURNING id"
            )
            row = await cursor.fetchone()
            assert row is not None
            await conn.execute("DELETE FROM store_probe WHERE id = ?", (row["id"],))

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[str]:
        """Apply the migrations newer than ``store_schema``'s version; return their names.
        Two gateways migrating at once take turns on the write lock: the second finds the
        work done."""
        known = migrations if migrations is not None else self.migrations()
        check_sequence(known)
        await self.check_version(known)
        applied = []
        for migration in known:
            with failures_of(self.label):
                if not await self._apply(migration):
                    continue
            log.info("store %s: applied migration %s", self.label, migration.name)
            applied.append(migration.name)
        return applied

    async def _apply(self, migration: Migration) -> bool:
        """Apply ``migration`` unless the database has it already; whether it was applied."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS store_schema (version INTEGER NOT NULL)")
            if migration.version <= await _version(conn):
                return False
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                if is_store_failure(exc):
                    raise  # the server, not the migration
                problem = f"migration {migration.name} failed: {exc}"
                raise self.unavailable(problem) from exc
            await conn.execute("DELETE FROM store_schema")
            await conn.execute("INSERT INTO store_schema VALUES ($1)", migration.version)
        return True

    @contextlib.asynccontextmanager
    async def transaction(self, *, serialised: bool = True) -> AsyncIterator[Any]:
        """One write transaction, after the store's write lock; rolled back on any exception.

        ``serialised=False`` skips the write lock (this process's and every gateway's):
        only for a transaction whose SQL is safe by itself under READ COMMITTED, each
        statement locking the rows it changes (``FOR UPDATE SKIP LOCKED``) and no
        decision spanning rows that another writer could change meanwhile.

        The lock is waited for at most ``lock_timeout`` seconds (then the database is
        "locked by another process", as SQLite's busy timeout says). A server or connection
        that fails, here or in the caller's statements, is a :class:`PostgresUnavailable`;
        the pool replaces the broken connection at the next acquire, and the caller retries
        as it does a locked SQLite store."""
        async with self._write_lock if serialised else contextlib.nullcontext():
            conn = await self._begin(serialised)
            try:
                try:
                    yield PgConnection(conn, self.label)
                except BaseException:
                    # A connection lost meanwhile is the pool's already (asking it anything
                    # raises); a failed rollback leaves one the pool resets or replaces.
                    with contextlib.suppress(Exception):
                        if not conn.is_closed():
                            await conn.execute("ROLLBACK")
                    raise
                with failures_of(self.label):
                    await conn.execute("COMMIT")
            finally:
                await _release(self.pool, conn)

    async def _begin(self, serialised: bool = True) -> Any:
        """A pooled connection in a new transaction that holds the write lock (unless not
        ``serialised``). One the server closed since it was last used (a restart) is
        replaced once: nothing was done on it."""
        begin = f"BEGIN; SET LOCAL lock_timeout = {max(1, round(self.lock_timeout * 1000))};"
        if serialised:
            begin += f" SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        for attempt in range(2):
            with failures_of(self.label):
                conn = await self.pool.acquire()
            try:
                await conn.execute(begin)  # one round trip
                return conn
            except Exception as exc:
                await _release(self.pool, conn)
                if attempt == 0 and lost_connection(exc):
                    log.debug("store %s: a pooled connection was dead (%s)", self.label, exc)
                    continue
                with failures_of(self.label):
                    raise
            except BaseException:
                await _release(self.pool, conn)
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await _read(self.label, lambda: self.pool.fetch(translate(sql), *params)))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await _read(self.label, lambda: self.pool.fetchrow(translate(sql), *params))


class PostgresReads:
    """Reports' reads beside the writers, on their own small pool whose transactions are
    read-only: as SQLite's read connection (``gateway.store.reader``), a report neither
    waits for the writers nor can write by mistake."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], label: str) -> None:
        self.pool = pool
        self.label = label

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, url: str, *, pool_size: int = READ_POOL_SIZE
    ) -> AsyncIterator[PostgresReads]:
        pool = await _pool(url, pool_size, {"default_transaction_read_only": "on"})
        try:
            yield cls(pool, url_label(url))
        finally:
            await pool.close()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await _read(self.label, lambda: self.pool.fetch(translate(sql), *params)))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await _read(self.label, lambda: self.pool.fetchrow(translate(sql), *params))


async def _pool(
    url: str, size: int, settings: dict[str, str] | None = None
) -> asyncpg.Pool[asyncpg.Record]:
    """A pool of ``size`` connections; one that cannot be had is one line naming the database."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            server_settings={**KEEPALIVES, **(settings or {})},
        )
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise PostgresUnavailable(url_label(url), pg_problem(exc)) from exc


async def _version(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    if await conn.fetchval("SELECT to_regclass('store_schema')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM store_schema"))


def postgres_migrations() -> list[Migration]:
    """The numbered series in PostgreSQL's dialect (``migrations/postgresql``), in order."""
    return bundled_migrations("gateway.store.migrations.postgresql")
