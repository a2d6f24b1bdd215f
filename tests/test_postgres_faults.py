"""PostgreSQL failing under the gateway: a server that goes away or restarts, a write lock
held too long. Each is a store failure named by the database's label (never its
password), answered 503 by the web side and retried by the caller; once the server is back
the pool reconnects by itself and nothing is lost or done twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from postgres_cluster import Cluster, restart_server, stop_server
from sms_support import API_TOKEN, ORDER_VARS, running_gateway, until
from test_calllog_service import ReplaySession, frames_of

from gateway.calllog.service import CallLogService
from gateway.clock import Clock, ManualClock
from gateway.sim.twilio import SimulatedTwilio
from gateway.store import Store
from gateway.store.db import StoreUnavailable, is_store_failure
from gateway.store.postgres import WRITE_LOCK, url_label
from gateway.supervise import ComponentDegraded
from tests.test_cluster import member

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("restore_logging")]

PASSWORD = "gateway-test"


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
        asyncpg.DiskFullError("could not extend file"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
        ConnectionResetError(104, "Connection reset by peer"),
        asyncpg.InterfaceError(
            "cannot call Connection.execute(): connection has been released back to the pool"
        ),
    ],
)
def test_server_and_connection_errors_are_store_failures(exc: BaseException) -> None:
    """PostgreSQL's errors of the server or the connection count as store failures, as
    SQLite's locked or full file does."""
    assert is_store_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.UndefinedColumnError('column "x" does not exist'),
        asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
        OSError("a file of the reports folder"),
    ],
)
def test_errors_of_the_statement_are_not_store_failures(exc: BaseException) -> None:
    """A broken constraint, a wrong statement or a misuse of the client is a bug or a
    conflict, not a store failure (and an OSError outside the store is not one either)."""
    assert not is_store_failure(exc)


@pytest.mark.postgres
async def test_every_connection_asks_the_server_to_probe_it(postgres_url: str) -> None:
    """The store's connections (writes and reads) and the gateway's connection among the
    others ask the server for TCP keepalives: a gateway whose host died silently is known
    gone, and its locks freed, within half a minute instead of the system's two hours."""
    query = "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_count')"
    async with Store.open(postgres_url, Clock()) as store:
        for db in (store.db, store.reads):
            assert db is not None
            row = await db.fetchone(query)
            assert row is not None and tuple(row) == ("10", "3")
    async with member(postgres_url, "gw-a", Clock()) as leadership:
        async with leadership._conn_lock:  # its own connection, between two rounds
            conn = await leadership._connection()
            assert tuple(await conn.fetchrow(query)) == ("10", "3")


async def test_a_write_waiting_past_the_lock_timeout_fails_as_locked(
    postgres_url: str, clock: ManualClock
) -> None:
    """A write that waits for another process's write lock longer than store.lock_timeout
    fails as "locked by another process", naming the database without its password, as
    SQLite's busy timeout does; once the lock is free the same write goes through."""
    async with Store.open(postgres_url, clock, lock_timeout=0.3) as store:
        holder = await asyncpg.connect(postgres_url)
        try:
            await holder.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            started = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable) as caught:
                await store.ping_write()
            waited = asyncio.get_running_loop().time() - started
            await holder.execute("ROLLBACK")
        finally:
            await holder.close()
        message = str(caught.value)
        assert (
            message == f"store {url_label(postgres_url)}: the database is locked by another process"
        )
        assert PASSWORD not in message and is_store_failure(caught.value)
        assert waited >= 0.3
        await store.ping_write()


async def _get(url: str, path: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + path, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_a_server_that_goes_away_is_503_and_the_pool_reconnects(
    own_postgres_cluster: Cluster, tw: SimulatedTwilio
) -> None:
    """While PostgreSQL is down, /health and a request that reads the store answer 503
    naming the database (not its password) and saying why; when it is back, they answer
    200 again without a restart of the gateway."""
    url = own_postgres_cluster.url()
    label = url_label(url)
    async with Store.open(url, Clock()) as store, running_gateway(store, tw) as gw:
        assert (await _get(gw.url, "/api/sms/messages"))[0] == 200
        await asyncio.to_thread(stop_server, own_postgres_cluster)
        try:
            status, health = await _get(gw.url, "/health")
            assert status == 503
            reason = health["checks"]["store"]["reason"]
            assert reason.startswith(f"store {label}: ") and PASSWORD not in reason
            status, body = await _get(gw.url, "/api/sms/messages")
            assert (status, body["error"]) == (503, "store_unavailable")
            assert body["details"]["store"] == label and PASSWORD not in body["message"]
        finally:
            await asyncio.to_thread(restart_server, own_postgres_cluster)

        async def healthy() -> bool:
            return (await _get(gw.url, "/health"))[0] == 200

        assert await until_async(healthy, 30)
        assert (await _get(gw.url, "/api/sms/messages"))[0] == 200


async def until_async(check: Any, seconds: float) -> bool:
    """Whether the coroutine function ``check`` answers True within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


TEXTS = 60


async def test_texts_sent_through_postgresql_restarts_arrive_exactly_once(
    own_postgres_cluster: Cluster, tw: SimulatedTwilio
) -> None:
    """Texts queued through the API and sent by the outbox while PostgreSQL is restarted
    twice (fast shutdown, as `pg_ctl restart -m fast`): a request that got a 503 is sent
    again with its idempotency key, and in the end every text is stored once and reached
    the simulated Twilio exactly once."""
    url = own_postgres_cluster.url()
    async with Store.open(url, Clock()) as store, running_gateway(store, tw) as gw:

        async def queue(n: int) -> None:
            body = {
                "to": f"139{n:08d}",
                "template": "rectification_order",
                "variables": {**ORDER_VARS, "case_ref": f"PG-{n:04d}"},
                "idempotency_key": f"restart-{n}",
            }
            headers = {"Authorization": f"Bearer {API_TOKEN}"}
            async with aiohttp.ClientSession() as http:
                while True:  # a client retries a 503 with the same key
                    try:
                        async with http.post(
                            gw.url + "/api/sms/messages", json=body, headers=headers
                        ) as response:
                            if response.status == 201:
                                return
                            assert response.status == 503, await response.text()
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)

        async def produce() -> None:
            for n in range(TEXTS):
                await queue(n)
                await asyncio.sleep(0.02)

        producer = asyncio.create_task(produce())
        await until(lambda: len(tw.messages) >= TEXTS // 4, 60)
        await asyncio.to_thread(restart_server, own_postgres_cluster)
        await until(lambda: len(tw.messages) >= TEXTS // 2, 60)
        await asyncio.to_thread(restart_server, own_postgres_cluster)
        await asyncio.wait_for(producer, 120)

        async def all_sent() -> bool:
            try:
                rows = await store.db.fetchall(
                    "SELECT COUNT(*) FROM sms_messages WHERE provider_sid IS NOT NULL"
                )
            except StoreUnavailable:
                return False
            return int(rows[0][0]) == TEXTS

        # The sids of sends are written when the store is back; a text in doubt otherwise
        # (its claim or its write lost for longer) waits for its lease, then a look-up.
        assert await until_async(all_sent, 150)
        rows = await store.db.fetchall(
            "SELECT idempotency_key, status, provider_sid, to_number FROM sms_messages"
        )
    assert sorted(r[0] for r in rows) == sorted(f"restart-{n}" for n in range(TEXTS))
    # Handed over to Twilio: its status callbacks lost in a restart are fetched later.
    assert {r[1] for r in rows} <= {"sending", "sent", "delivered"}
    at_twilio = Counter(m.to for m in tw.messages)
    assert len(at_twilio) == TEXTS and set(at_twilio.values()) == {1}, at_twilio
    assert {(r[2], r[3]) for r in rows} == {(m.sid, m.to) for m in tw.messages}


async def test_call_records_written_through_a_postgresql_restart_are_all_there_once(
    own_postgres_cluster: Cluster, transcripts: Path
) -> None:
    """200 calls replayed from a real Asterisk stream while PostgreSQL is restarted: the
    call log keeps what it could not store and stores it when the server is back, so every
    call ends as one complete row."""
    frames = frames_of(transcripts / "sip-load-200-calls.rx.txt")
    session = ReplaySession()
    clock = Clock()
    async with Store.open(own_postgres_cluster.url(), clock) as store:
        async with CallLogService(
            store.calls, clock, flush_interval=0.02, batch_size=16
        ) as calllog:
            calllog.connect(session)
            third = len(frames) // 3
            await session.play(frames[:third])
            await asyncio.sleep(0.1)
            restart = asyncio.create_task(asyncio.to_thread(restart_server, own_postgres_cluster))
            while not restart.done():  # calls go on while the server is away
                await session.play(frames[third : third + 200])
                third += 200
                await asyncio.sleep(0.05)
            await restart
            await session.play(frames[third:])

            async def stored() -> bool:
                await calllog.flush()
                try:
                    calllog.check()  # degraded while records wait for the store
                except ComponentDegraded:
                    return False
                return True

            assert await until_async(stored, 30)
        assert calllog.failed_flushes > 0  # the restart was felt
        rows = await store.db.fetchall(
            "SELECT linkedid, COUNT(*) FROM call_records GROUP BY linkedid"
        )
        records = await store.calls.find(limit=500)
    assert len(rows) == 200 and {r[1] for r in rows} == {1}
    assert all(r.record.complete for r in records)
