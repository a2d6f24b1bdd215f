"""Hostile and careless input to the running gateway's HTTP side gets a precise 4xx/503,
never a 500: odd Authorization bytes, deep JSON, huge ids, guessing, a full disk."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from gateway.demo.stack import Stack
from gateway.web.input import MAX_JSON_DEPTH, json_depth_exceeds
from tests.test_callbacks_api import stack

__all__ = ["stack"]  # the running gateway fixture, shared with the callbacks API tests


async def call(
    stack: Stack, method: str, path: str, *, raw: bytes | None = None, body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, stack.url + path, headers=headers, data=raw, json=body) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def raw_request(stack: Stack, head: bytes) -> tuple[int, bytes]:
    """Send ``head`` as the request's bytes, exactly; the status and the body back."""
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/api/sms/messages", "/dashboard/data.json", "/dashboard"])
async def test_non_ascii_authorization_is_401(stack: Stack, path: str) -> None:
    """Authorization bytes that are not ASCII are a wrong token (401 or the login), not a 500."""
    head = (
        f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".encode()
        + b"Authorization: Bearer t\xf6k\xe9n\r\n\r\n"
    )
    status, _ = await raw_request(stack, head)
    assert status == (302 if path == "/dashboard" else 401)


@pytest.mark.parametrize("path", ["/dashboard/data.json", "/logout"])
async def test_non_ascii_session_cookie_is_no_session(stack: Stack, path: str) -> None:
    """A session cookie with bytes that are not ASCII is no session (401 or the login page)."""
    head = (
        f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".encode()
        + b"Cookie: gw_session=s\xe9ssion-n\xf6nce\r\n\r\n"
    )
    status, _ = await raw_request(stack, head)
    assert status == (302 if path == "/logout" else 401)


@pytest.mark.parametrize(
    "path", ["/api/served-items", "/api/orders/RO-1/report", "/api/sms/messages"]
)
async def test_deeply_nested_json_is_400_naming_the_problem(stack: Stack, path: str) -> None:
    """100,000 nested brackets, or a little more than the limit, are a 400 "too_deep"."""
    for raw in (b"[" * 100_000, b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)):
        status, body, _ = await call(stack, "POST", path, raw=raw)
        assert (status, body["error"]) == (400, "too_deep")
        assert str(MAX_JSON_DEPTH) in body["message"]


def test_json_depth_is_measured_without_recursion() -> None:
    """Depth counts lists and objects; a deep value is measured without a RecursionError."""
    deep: Any = 0
    for _ in range(200_000):
        deep = [deep]
    assert json_depth_exceeds(deep, MAX_JSON_DEPTH)
    assert not json_depth_exceeds({"a": [1, {"b": []}]}, 4)
    assert json_depth_exceeds({"a": [1, {"b": []}]}, 3)


async def test_body_not_utf8_is_400(stack: Stack) -> None:
    """A body that is not UTF-8 is a 400 bad_json on every JSON endpoint."""
    status, body, _ = await call(stack, "POST", "/api/sms/messages", raw=b'{"to": "\xff"}')
    assert (status, body["error"]) == (400, "bad_json")


@pytest.mark.parametrize(
    "text", ["999999999999999999999999999999", "9223372036854775808", "00000000000000000000001"]
)
async def test_huge_message_id_is_404(stack: Stack, text: str) -> None:
    """An id SQLite cannot hold is simply not found: the same 404 as any text not held."""
    status, body, _ = await call(stack, "GET", f"/api/sms/messages/{text}")
    assert (status, body["error"]) == (404, "no_such_message")


async def test_full_disk_is_503_naming_the_store_and_logged_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """With no room to write, writes and /health answer 503 naming the store, and the log
    has one line for the failure, not a traceback per request."""
    store = stack.store
    page_count = (await store.db.fetchone("PRAGMA page_count"))[0]  # type: ignore[index]
    # SQLite answers exactly as on a full disk (SQLITE_FULL) once it may not grow.
    await store.db.conn.execute(f"PRAGMA max_page_count = {page_count}")
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.url + "/health") as response:
            health = await response.json()
        assert response.status == 503
        assert health["checks"]["store"]["status"] == "failing"
        assert "disk is full" in health["checks"]["store"]["reason"]

    def item(n: int) -> dict[str, str]:
        return {
            "reference": f"F{n}",
            "kind": "id_card",
            "unit": "LZ-DC-01",
            "citizen_number": "13912345678",
            "served_at": "2026-11-29T10:00:00+08:00",
        }

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        # Items arrive until the store's last page is full; then every write is a 503.
        answers = [await call(stack, "POST", "/api/served-items", body=item(n)) for n in range(3)]
        n = 3
        while answers[-1][0] == 201 and n < 2000:
            answers.append(await call(stack, "POST", "/api/served-items", body=item(n)))
            n += 1
        for extra in range(2):
            answers.append(await call(stack, "POST", "/api/served-items", body=item(n + extra)))
    failed = [a for a in answers if a[0] != 201]
    assert len(failed) == 3
    for status, body, headers in failed:
        assert (status, body["error"]) == (503, "store_unavailable")
        assert str(store.db.path) in body["message"] and "disk is full" in body["message"]
        assert headers["Retry-After"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    await store.db.conn.execute("PRAGMA max_page_count = 1073741823")
    async with aiohttp.ClientSession() as http, http.get(stack.url + "/health") as response:
        assert response.status == 200
