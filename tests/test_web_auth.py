"""Guessing is slowed per client address (429 with Retry-After), logout ends a session on
the server, and the session cookie can be forced Secure behind a TLS proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.web.app import create_web_app
from gateway.web.auth import FailureLimiter
from gateway.web.dashboard import SESSION_COOKIE, add_dashboard

TOKEN = "auth-token-8c1d7e2b"
LIMIT = 5

Client = TestClient[web.Request, web.Application]


async def client_for(
    store: Store, clock: ManualClock, overrides: Sequence[str] = ()
) -> TestClient[web.Request, web.Application]:
    config = config_module.load(
        env={"GATEWAY_WEB_API_TOKEN": TOKEN},
        overrides=[f"web.auth_max_failures={LIMIT}", "web.auth_failure_window=300", *overrides],
    )
    app = create_web_app(config, clock=clock, store=store, features=[add_dashboard])
    return TestClient(TestServer(app))


@pytest.fixture
async def client(store: Store, clock: ManualClock) -> AsyncIterator[Client]:
    """The dashboard and the API's guard, at most 5 failures per address in 5 minutes."""
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


async def test_wrong_logins_get_429_with_a_chinese_page(client: Client) -> None:
    """After 5 wrong logins the login form answers 429 with Retry-After, even for the right
    token; dashboard JSON with a wrong bearer token counts too."""
    for _ in range(LIMIT - 1):
        response = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
        assert response.status == 401
    json_guess = await client.get("/dashboard/data.json", headers={"Authorization": "Bearer guess"})
    assert json_guess.status == 401
    response = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "登录失败次数过多" in await response.text()
    assert SESSION_COOKIE not in response.cookies


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


async def test_logout_ends_the_session_on_the_server(
    client: Client, store: Store, clock: ManualClock
) -> None:
    """A cookie kept after logout no longer opens the dashboard, even before it expires, and
    not after a restart either (the end is in the store)."""
    login = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    cookie = login.cookies[SESSION_COOKIE].value
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert (await client.get("/dashboard/data.json", headers=headers)).status == 200
    out = await client.post("/logout", headers=headers, allow_redirects=False)
    assert out.status == 302
    client.session.cookie_jar.clear()
    assert (await client.get("/dashboard/data.json", headers=headers)).status == 401
    async with await client_for(store, clock) as restarted:
        assert (await restarted.get("/dashboard/data.json", headers=headers)).status == 401
        again = await restarted.post("/login", data={"token": TOKEN}, allow_redirects=False)
        fresh = {"Cookie": f"{SESSION_COOKIE}={again.cookies[SESSION_COOKIE].value}"}
        assert (await restarted.get("/dashboard/data.json", headers=fresh)).status == 200


@pytest.mark.parametrize(("forced", "secure"), [(False, False), (True, True)])
async def test_secure_cookie_can_be_forced(
    store: Store, clock: ManualClock, forced: bool, secure: bool
) -> None:
    """Over plain HTTP the cookie is Secure only when web.secure_cookies says so (TLS proxy)."""
    overrides = [f"web.secure_cookies={'true' if forced else 'false'}"]
    async with await client_for(store, clock, overrides) as http:
        login = await http.post("/login", data={"token": TOKEN}, allow_redirects=False)
        assert login.status == 302
        assert bool(login.cookies[SESSION_COOKIE]["secure"]) is secure
