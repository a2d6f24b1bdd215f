"""Leadership: the periodic and once-a-day jobs run on one gateway at a time.

    leadership = Leadership(name, clock, url=url, max_skew=skew)
    await leadership.start()                      # this gateway's name, clock, first try
    supervisor.loop("orders", leadership.led(order_round), every=5)
    ...
    await leadership.aclose()

On PostgreSQL, each gateway keeps one connection of its own (not the pool's) and holds
two session-level advisory locks on it: its *name* (two gateways with one name would
take each other's leases for their own; a gateway refuses to start while another holds
its name) and, on one gateway at a time, the *leadership* (``pg_try_advisory_lock``,
tried every ``poll`` seconds). Whoever holds the leadership runs the gated jobs. When
the holder dies its connection closes, the server frees the lock, and another gateway
takes it at its next try. A gateway whose connection fails stops leading at once (the
connection's end is noticed when the socket closes, or at the next round, whose query
is bounded by a timeout) and a gated round still running is cancelled; its writes are
transactions, rolled back. The same round measures the clock's offset to the server's
(:mod:`gateway.cluster.skew`); a gateway whose clock is off does not lead. Who leads
is read from the server's lock table, by the ``application_name`` of the holder's
connection (``gateway/<name>``). The same connection holds, per PBX, the lock that
says which gateway runs that PBX's AsyncAGI calls (:meth:`Leadership.claim_asyncagi`).

On SQLite there is one gateway (the store's file lock, :mod:`gateway.store.lock`): it
always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

import asyncpg

from gateway.clock import Clock
from gateway.cluster.skew import ClockSkew
from gateway.errors import GatewayError
from gateway.store.db import Database
from gateway.store.postgres import (
    CONNECT_TIMEOUT,
    KEEPALIVES,
    PostgresUnavailable,
    pg_problem,
    url_label,
)
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)

# Advisory locks of two keys (PostgreSQL lists them with objsubid 2, apart from the
# one-key write lock of gateway.store.postgres): the first names the kind.
LEADER_KEYS = (0x67617465, 1)  # "gate", 1: the leadership
NAMES = 0x6E616D65  # "name": the second key is the name's hash (name_key)
ASYNCAGI = 0x61676921  # "agi!": the second key is the PBX name's hash (name_key)
POLL_SECONDS = 2.0
# A round's queries on a live server take milliseconds; past this the link is deemed lost.
ROUND_TIMEOUT = 5.0
# How long a starting gateway waits for its name, held by a connection that is ending.
NAME_WAIT = 15.0
APPLICATION_PREFIX = "gateway/"

Body = Callable[[], Awaitable[Any]]


class NameInUse(GatewayError):
    """Another gateway with this name is connected to the database."""


class LeadershipLost(GatewayError):
    """The leadership connection failed; the message says how."""


@contextlib.asynccontextmanager
async def visiting(
    url: str | None, clock: Clock, max_skew: timedelta
) -> AsyncIterator[Leadership | None]:
    """A command's short stay among the gateways on the database ``url`` (None on
    SQLite: there the store's lock keeps it alone): a name of its own (``cli-`` and 8
    hex digits), so its leases are its own; its clock compared with the server's, so it
    takes no lease early; never the leadership."""
    if url is None:
        yield None
        return
    member = Leadership(
        f"cli-{secrets.token_hex(4)}", clock, url=url, max_skew=max_skew, candidate=False
    )
    await member.start()
    try:
        yield member
    finally:
        await member.aclose()


def name_key(name: str) -> int:
    """The name's advisory lock key: a stable signed 32-bit hash of it."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), signed=True)


class Leadership:
    """This gateway among the gateways on one database (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        url: str | None,
        max_skew: timedelta,
        poll: float = POLL_SECONDS,
        name_wait: float = NAME_WAIT,
        candidate: bool = True,
    ) -> None:
        """``url``: the PostgreSQL database; None on SQLite (always leads).
        ``candidate``: whether it may lead on PostgreSQL; a process that runs only the
        outbox (``sms run``, ``sms send --wait``) holds a name and checks its clock, but
        leaves the leadership to the gateways, whose jobs it does not run."""
        self.name = name
        self.candidate = candidate
        self.url = url
        self.clock = clock
        self.poll = poll
        self.name_wait = name_wait
        self.skew = ClockSkew(max_skew, applies=url is not None and clock.real_time)
        self.supervisor = Supervisor("cluster", backoff_min=min(0.5, poll), backoff_max=poll)
        self.terms = 0  # how many times this gateway took the leadership
        self._label = url_label(url) if url else ""
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._leading = url is None  # on SQLite it is the only process on the store
        self._holds_name = url is None
        self._name_refused = False  # the last try found the name held by another
        self._ended = asyncio.Event()  # set when the current term of leadership ends
        self._closing = False
        # The round and the AsyncAGI claims take turns on the one connection.
        self._conn_lock = asyncio.Lock()
        self._asyncagi: dict[str, bool] = {}  # PBX → whether this gateway serves its AsyncAGI
        self._asyncagi_gained: Callable[[str], None] = lambda pbx: None

    @property
    def shared(self) -> bool:
        """Whether other gateways may work on the same database (PostgreSQL)."""
        return self.url is not None

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def holds_name(self) -> bool:
        """Whether no other live gateway has this name (its rows are this gateway's)."""
        return self._holds_name

    async def start(self) -> None:
        """Take this gateway's name (waiting up to ``name_wait`` for a connection that is
        ending to free it), measure the clock, try for the leadership, then keep at it."""
        if self.url is None:
            log.info("cluster: %s is the only gateway on the store: it leads", self.name)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.name_wait
        while True:
            await self.round()
            if self._holds_name:
                break
            if loop.time() >= deadline:
                await self._close_connection()
                raise NameInUse(self._name_problem())
            await asyncio.sleep(min(1.0, self.poll))
        self.supervisor.loop("leadership", self.round, every=self.poll)

    def _name_problem(self) -> str:
        return (
            f"another gateway named {self.name!r} is connected to {self._label}: each gateway"
            f" on one database needs its own [gateway] name (a gateway that died frees its"
            f" name when the database sees its connection end)"
        )

    async def round(self) -> None:
        """Reconnect if needed, hold the name, measure the clock, try for the leadership
        and for the AsyncAGI calls of the PBXs no gateway serves."""
        gained: list[str] = []
        try:
            async with self._conn_lock, asyncio.timeout(ROUND_TIMEOUT):
                conn = await self._connection()
                if not self._holds_name:
                    self._holds_name = bool(
                        await conn.fetchval(
                            "SELECT pg_try_advisory_lock($1, $2)", NAMES, name_key(self.name)
                        )
                    )
                    self._name_refused = not self._holds_name
                before = self.clock.now()
                server = await conn.fetchval("SELECT clock_timestamp()")
                after = self.clock.now()
                self.skew.record(before + (after - before) / 2 - server)
                if self._leading and not self.skew.ok:
                    # Its jobs judge deadlines by this clock: another gateway leads instead.
                    await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", *LEADER_KEYS)
                    self._end("its clock is off the database's")
                elif self.candidate and self._holds_name and not self._leading and self.skew.ok:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *LEADER_KEYS):
                        self._take()
                if self._holds_name:
                    gained = await self._try_asyncagi(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = pg_problem(exc)
            self._lose(reason)
            raise LeadershipLost(f"cluster connection to {self._label}: {reason}") from exc
        for pbx in gained:
            self._asyncagi_gained(pbx)

    # -- AsyncAGI: one gateway per PBX --------------------------------------------------

    async def claim_asyncagi(
        self, pbxes: Iterable[str], gained: Callable[[str], None] = lambda pbx: None
    ) -> None:
        """Serve the AsyncAGI calls of ``pbxes`` where no other gateway does.

        Every gateway logged in to a PBX gets each ``AsyncAGIStart``; on PostgreSQL one
        of them at a time runs the flows (an advisory lock per PBX on this gateway's
        connection), the others stand by and hand back nothing at a resync. When the
        serving gateway dies, another takes the PBX at its next round and ``gained(pbx)``
        is called: the calls the dead one left in AsyncAGI are to be handed back. On
        SQLite this gateway is alone: it serves them all."""
        for pbx in pbxes:
            self._asyncagi.setdefault(pbx, self.url is None)
        self._asyncagi_gained = gained
        if self.url is None or not self._holds_name:
            return
        try:
            async with self._conn_lock, asyncio.timeout(ROUND_TIMEOUT):
                await self._try_asyncagi(await self._connection())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._lose(pg_problem(exc))  # the next round reconnects and tries again

    def serves_asyncagi(self, pbx: str) -> bool:
        """Whether this gateway runs the flows of ``pbx``'s AsyncAGI calls now."""
        return self._asyncagi.get(pbx, self.url is None)

    async def _try_asyncagi(self, conn: asyncpg.Connection[asyncpg.Record]) -> list[str]:
        gained = []
        for pbx, held in self._asyncagi.items():
            if held:
                continue
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", ASYNCAGI, name_key(pbx)):
                self._asyncagi[pbx] = True
                gained.append(pbx)
                log.warning("cluster: %s serves the AsyncAGI calls of PBX %s now", self.name, pbx)
        return gained

    async def _connection(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        assert self.url is not None
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                self.url,
                timeout=CONNECT_TIMEOUT,
                server_settings={
                    **KEEPALIVES,
                    "application_name": APPLICATION_PREFIX + self.name,
                },
            )
        except ValueError as exc:
            raise PostgresUnavailable(self._label, pg_problem(exc)) from exc
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        return conn

    def _terminated(self, conn: Any) -> None:
        """The leadership connection ended (the server went, or a kill): not leading now."""
        if conn is self._conn and not self._closing:
            self._lose("its connection ended")

    def _take(self) -> None:
        self._leading = True
        self._ended = asyncio.Event()
        self.terms += 1
        log.warning("cluster: %s leads the periodic jobs now", self.name)

    def _lose(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # the server frees every lock of the connection
        self._holds_name = False
        self._drop_asyncagi(reason)
        self._end(reason)

    def _drop_asyncagi(self, reason: str) -> None:
        served = [pbx for pbx, held in self._asyncagi.items() if held]
        for pbx in served:
            self._asyncagi[pbx] = False
        if served:
            log.warning(
                "cluster: %s no longer serves the AsyncAGI calls of %s: %s",
                self.name,
                ", ".join(served),
                reason,
            )

    def _end(self, reason: str) -> None:
        if self._leading:
            self._leading = False
            self._ended.set()
            log.warning("cluster: %s no longer leads: %s", self.name, reason)

    def led(self, body: Body) -> Body:
        """``body`` as a loop body that runs only while this gateway leads, and is
        cancelled the moment the leadership is lost."""

        async def gated() -> Any:
            if not self._leading:
                return None
            ended = self._ended
            work = asyncio.ensure_future(body())
            lost = asyncio.ensure_future(ended.wait())
            try:
                await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
                if not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
            return work.result() if not work.cancelled() else None

        return gated

    async def leader(self, db: Database) -> str | None:
        """The name of the gateway that leads now (by the server's lock table), None if
        none does; on SQLite this one."""
        if self.url is None:
            return self.name
        row = await db.fetchone(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.classid::bigint = ? AND l.objid::bigint = ? AND l.objsubid = 2",
            LEADER_KEYS,
        )
        if row is None:
            return None
        name = str(row[0])
        return name.removeprefix(APPLICATION_PREFIX)

    def check(self) -> None:
        """Raise (for ``/health``) while the connection fails, another gateway holds this
        name, or the clock is off the server's beyond the bound."""
        self.supervisor.check()
        if self._name_refused:
            raise NameInUse(self._name_problem())
        if not self._holds_name:
            raise LeadershipLost(f"cluster connection to {self._label} ended; reconnecting")
        self.skew.check()

    async def aclose(self) -> None:
        """Stop trying and close the connection: the server frees the locks at once."""
        self._closing = True
        await self.supervisor.aclose()
        await self._close_connection()
        if self.shared:
            self._asyncagi = dict.fromkeys(self._asyncagi, False)
        if self._leading and self.shared:
            self._leading = False
            self._ended.set()
            log.info("cluster: %s stops leading (stopping)", self.name)

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(ROUND_TIMEOUT):
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()
