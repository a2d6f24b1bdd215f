"""Guessing is slowed: wrong bearer tokens per client address (in memory), wrong passwords
per account and per address (in the store, across restarts), 429 with Retry-After; sessions
live and end on the server; the session cookie can be forced Secure behind a TLS proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.accounts.service import AccountService
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.postgres import PostgresDatabase
from gateway.store.seed import demo_city, load_seed
from gateway.web.app import create_web_app
from gateway.web.auth import SESSION_COOKIE, FailureLimiter
from gateway.web.dashboard import add_dashboard
from tests.accounts_support import PASSWORD, add_people, log_in

TOKEN = "auth-token-8c1d7e2b"
LIMIT = 5
PER_ADDRESS = 8
WINDOW = 300

Client = TestClient[web.Request, web.Application]


async def client_for(
    store: Store, clock: ManualClock, overrides: Sequence[str] = ()
) -> TestClient[web.Request, web.Application]:
    config = config_module.load(
        env={"GATEWAY_WEB_API_TOKEN": TOKEN},
        overrides=[
            f"web.auth_max_failures={LIMIT}",
            "web.auth_failure_window=300",
            f"web.login_max_failures={LIMIT}",
            f"web.login_max_failures_per_address={PER_ADDRESS}",
            f"web.login_failure_window={WINDOW}",
            *overrides,
        ],
    )
    app = create_web_app(config, clock=clock, store=store, features=[add_dashboard])
    return TestClient(TestServer(app))


@pytest.fixture
async def client(store: Store, clock: ManualClock) -> AsyncIterator[Client]:
    """The dashboard and the API's guard, at most 5 failures per address or account (8 per
    address for logins) in 5 minutes; the demo city with a leader and a station chief."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    await add_people(store, config_module.load(), "leader", "dongguan")
    async with await client_for(store, clock) as http:
        yield http


async def test_wrong_bearer_tokens_get_429_after_the_limit(client: Client) -> None:
    """300 wrong tokens in a burst: the first 5 get 401, the rest 429 with Retry-After; the
    right token from that address waits too."""
    statuses = []
    retry_after = []
    for _ in range(300):
        response = await client.get("/api/sms/messages", headers={"Authorization": "Bearer guess"})
        statuses.append(response.status)
        if response.status == 429:
            retry_after.append(int(response.headers["Retry-After"]))
            assert (await response.json())["error"] == "too_many_failures"
    assert statuses[:LIMIT] == [401] * LIMIT and set(statuses[LIMIT:]) == {429}
    assert all(0 < wait <= 300 for wait in retry_after)
    right = await client.get("/api/sms/messages", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status == 429


async def test_missing_token_does_not_count_as_a_guess(client: Client) -> None:
    """Requests without any token are 401 but never lock the address out."""
    for _ in range(LIMIT * 3):
        assert (await client.get("/api/sms/messages")).status == 401


def test_failures_leave_the_window() -> None:
    """An address may try again once its oldest failure is older than the window."""
    now = [1000.0]
    limiter = FailureLimiter(3, 60.0, monotonic=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.7") == 0
        limiter.failed("10.0.0.7")
        now[0] += 10
    # failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060
    assert limiter.retry_after("10.0.0.7") == 30
    assert limiter.retry_after("10.0.0.8") == 0
    now[0] += 29.5
    assert limiter.retry_after("10.0.0.7") == 1
    now[0] += 1
    assert limiter.retry_after("10.0.0.7") == 0


async def _try(http: Client, name: str, password: str) -> int:
    response = await http.post(
        "/login", data={"username": name, "password": password}, allow_redirects=False
    )
    if response.status == 429:
        assert int(response.headers["Retry-After"]) > 0
        assert "登录失败次数过多" in await response.text()
    return response.status


async def test_wrong_passwords_beyond_the_account_limit_wait_even_after_a_restart(
    client: Client, store: Store, clock: ManualClock
) -> None:
    """After 5 wrong passwords for one account its logins get 429 (the right password too),
    a restarted gateway still refuses, and once the window passes the right password works."""
    for _ in range(LIMIT):
        assert await _try(client, "dongguan", "wrong-password-1") == 401
    assert await _try(client, "dongguan", PASSWORD) == 429
    async with await client_for(store, clock) as restarted:
        assert await _try(restarted, "dongguan", PASSWORD) == 429
        assert await _try(restarted, "leader", PASSWORD) == 302  # another account is not held
        clock.advance(WINDOW + 1)
        assert await _try(restarted, "dongguan", PASSWORD) == 302
    entries = await store.accounts.audit_entries(actor="dongguan")
    actions = [e.action for e in reversed(entries)]
    assert actions == ["login_failed"] * LIMIT + ["login_refused"] * 2 + ["login"]


async def test_a_burst_of_parallel_guesses_gets_no_more_than_the_limit(client: Client) -> None:
    """20 wrong passwords for one account sent at once: at most 5 are checked (401), the rest
    wait (429), and then the right password waits too."""
    statuses = await asyncio.gather(
        *(_try(client, "dongguan", f"wrong-password-{n}") for n in range(20))
    )
    assert statuses.count(401) <= LIMIT and statuses.count(429) >= 20 - LIMIT
    assert set(statuses) <= {401, 429}
    assert await _try(client, "dongguan", PASSWORD) == 429


async def test_wrong_passwords_from_one_address_beyond_its_limit_wait(
    client: Client, store: Store, clock: ManualClock
) -> None:
    """Guesses spread over many names from one address: beyond the address's limit every
    login from it waits, even a right one for a name never tried."""
    for n in range(PER_ADDRESS):
        assert await _try(client, f"guess{n}", "wrong-password-1") == 401
    assert await _try(client, "leader", PASSWORD) == 429
    clock.advance(WINDOW + 1)
    assert await _try(client, "leader", PASSWORD) == 302


async def test_a_right_login_clears_the_account_count(client: Client) -> None:
    """Failures below the limit are forgotten by a right login: the owner is not locked out
    by their own earlier typing mistakes."""
    for _ in range(LIMIT - 1):
        assert await _try(client, "dongguan", "wrong-password-1") == 401
    assert await _try(client, "dongguan", PASSWORD) == 302
    for _ in range(LIMIT - 1):
        assert await _try(client, "dongguan", "wrong-password-1") == 401
    assert await _try(client, "dongguan", PASSWORD) == 302


async def test_logout_ends_the_session_on_the_server(
    client: Client, store: Store, clock: ManualClock
) -> None:
    """A cookie kept after logout no longer opens the dashboard, and not after a restart
    either (the end is in the store); a new login opens a new session."""
    headers = await log_in(client, "leader")
    assert (await client.get("/dashboard/data.json", headers=headers)).status == 200
    out = await client.post("/logout", headers=headers, allow_redirects=False)
    assert out.status == 302
    client.session.cookie_jar.clear()
    assert (await client.get("/dashboard/data.json", headers=headers)).status == 401
    async with await client_for(store, clock) as restarted:
        assert (await restarted.get("/dashboard/data.json", headers=headers)).status == 401
        fresh = await log_in(restarted, "leader")
        assert (await restarted.get("/dashboard/data.json", headers=fresh)).status == 200


async def test_a_session_survives_a_restart(
    client: Client, store: Store, clock: ManualClock
) -> None:
    """Sessions live in the store: a restarted gateway still knows a logged-in person."""
    headers = await log_in(client, "dongguan")
    async with await client_for(store, clock) as restarted:
        response = await restarted.get("/dashboard/data.json", headers=headers)
        assert response.status == 200
        assert (await response.json())["viewer"]["username"] == "dongguan"


async def test_disabling_or_a_new_password_ends_open_sessions(client: Client, store: Store) -> None:
    """A disabled account's session closes at once and it cannot log in; a new password ends
    the sessions opened with the old one."""
    accounts = AccountService(store, config_module.load().web)
    chief = await log_in(client, "dongguan")
    leader = await log_in(client, "leader")
    client.session.cookie_jar.clear()
    await accounts.disable("dongguan", actor="test")
    assert (await client.get("/dashboard/data.json", headers=chief)).status == 401
    assert await _try(client, "dongguan", PASSWORD) == 401
    await accounts.passwd("leader", "Another-password-9", actor="test")
    assert (await client.get("/dashboard/data.json", headers=leader)).status == 401
    assert await _try(client, "leader", PASSWORD) == 401
    assert await _try(client, "leader", "Another-password-9") == 302


@pytest.mark.parametrize(("forced", "secure"), [(False, False), (True, True)])
async def test_secure_cookie_can_be_forced(
    store: Store, clock: ManualClock, forced: bool, secure: bool
) -> None:
    """Over plain HTTP the cookie is Secure only when web.secure_cookies says so (TLS proxy)."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    await add_people(store, config_module.load(), "leader")
    overrides = [f"web.secure_cookies={'true' if forced else 'false'}"]
    async with await client_for(store, clock, overrides) as http:
        login = await http.post(
            "/login", data={"username": "leader", "password": PASSWORD}, allow_redirects=False
        )
        assert login.status == 302
        assert bool(login.cookies[SESSION_COOKIE]["secure"]) is secure


async def test_the_store_keeps_no_session_value_nor_password(
    client: Client, store: Store, tmp_path: Path
) -> None:
    """The store holds only a hash of the session's cookie and of the password: a copy of the
    store's file opens no session and shows no password."""
    headers = await log_in(client, "leader")
    cookie = headers["Cookie"].split("=", 1)[1]
    row = await store.db.fetchone("SELECT token_hash FROM user_sessions")
    assert row is not None and row[0] != cookie and len(row[0]) == 64
    if isinstance(store.db, PostgresDatabase):  # no file: every text the tables hold
        rows = [
            *await store.db.fetchall("SELECT * FROM user_sessions"),
            *await store.db.fetchall("SELECT * FROM users"),
        ]
        raw = "".join(str(v) for r in rows for v in r).encode()
        assert raw
    else:
        await store.db.conn.execute("PRAGMA wal_checkpoint(FULL)")
        raw = await asyncio.to_thread(
            lambda: b"".join(p.read_bytes() for p in tmp_path.glob("gateway.sqlite3*"))
        )
    assert cookie.encode() not in raw and PASSWORD.encode() not in raw


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
