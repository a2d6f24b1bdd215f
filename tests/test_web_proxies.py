"""Behind a load balancer: the client's address comes from X-Forwarded-For only when the
peer is a trusted proxy, so the limits count clients, not the balancer, and nobody picks
their own address by sending the header."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.web.app import create_web_app
from gateway.web.proxies import forwarded_client

TOKEN = "proxy-token-5b2e9c1f"
LIMIT = 3
LOCAL = [ipaddress.ip_network("127.0.0.1/32")]
BALANCERS = [ipaddress.ip_network("10.0.0.0/24")]

Client = TestClient[web.Request, web.Application]


def test_an_untrusted_peer_keeps_its_own_address_whatever_it_forwards() -> None:
    """From a peer that is not a trusted proxy, X-Forwarded-For is ignored."""
    assert forwarded_client("203.0.113.9", "198.51.100.7", BALANCERS) == "203.0.113.9"


def test_a_trusted_balancer_gives_the_nearest_untrusted_hop() -> None:
    """From a trusted proxy, the header is read from the right, proxies skipped: an address
    the client put first itself is not believed."""
    assert forwarded_client("10.0.0.5", "198.51.100.7", BALANCERS) == "198.51.100.7"
    assert forwarded_client("10.0.0.5", "1.2.3.4, 198.51.100.7, 10.0.0.9", BALANCERS) == (
        "198.51.100.7"
    )
    assert forwarded_client("10.0.0.5", "[2001:db8::7]:4711", BALANCERS) == "2001:db8::7"
    assert forwarded_client("10.0.0.5", "198.51.100.7:4711", BALANCERS) == "198.51.100.7"


def test_an_unreadable_or_empty_header_keeps_the_proxy_address() -> None:
    """A malformed hop, or no hop at all, never yields a made-up client address."""
    assert forwarded_client("10.0.0.5", "198.51.100.7, not-an-ip", BALANCERS) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", " , ", BALANCERS) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", None, BALANCERS) == "10.0.0.5"


def test_a_bad_trusted_proxy_is_refused_in_one_line() -> None:
    """web.trusted_proxies must be addresses or networks; the key is named."""
    with pytest.raises(config_module.ConfigError, match=r"web\.trusted_proxies.*not an IP"):
        config_module.load(overrides=["web.trusted_proxies=10.0.0.300"])


async def _client(store: Store, clock: ManualClock, overrides: Sequence[str]) -> Client:
    config = config_module.load(
        env={"GATEWAY_WEB_API_TOKEN": TOKEN},
        overrides=[f"web.auth_max_failures={LIMIT}", "web.auth_failure_window=300", *overrides],
    )
    return TestClient(
        TestServer(create_web_app(config, clock=clock, store=store, features=[_echo_route]))
    )


def _echo_route(app: web.Application) -> None:
    """An API route behind the same guard as every other, answering who asked."""

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote})

    app.router.add_get("/api/whoami", whoami)


@pytest.fixture
async def behind_balancer(store: Store, clock: ManualClock) -> AsyncIterator[Client]:
    """The API with loopback (the test client's address) as a trusted balancer."""
    async with await _client(store, clock, ["web.trusted_proxies=127.0.0.1"]) as http:
        yield http


@pytest.fixture
async def direct(store: Store, clock: ManualClock) -> AsyncIterator[Client]:
    """The API with no trusted proxy."""
    async with await _client(store, clock, []) as http:
        yield http


async def _guess(http: Client, client: str) -> int:
    response = await http.get(
        "/api/whoami",
        headers={"Authorization": "Bearer wrong", "X-Forwarded-For": client},
    )
    return response.status


async def test_behind_a_balancer_one_client_s_guesses_do_not_lock_out_another(
    behind_balancer: Client,
) -> None:
    """Wrong tokens from one forwarded client reach the limit (429); another client behind
    the same balancer is still served with the right token."""
    statuses = [await _guess(behind_balancer, "198.51.100.7") for _ in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429]
    other = await behind_balancer.get(
        "/api/whoami",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "198.51.100.8"},
    )
    assert other.status == 200 and (await other.json())["remote"] == "198.51.100.8"


async def test_without_trusted_proxies_a_forged_header_escapes_no_limit(direct: Client) -> None:
    """A client that sends a new X-Forwarded-For with each guess is still one address."""
    statuses = [await _guess(direct, f"198.51.100.{n}") for n in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429]
