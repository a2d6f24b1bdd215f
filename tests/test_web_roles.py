"""Every page, figure and API answer is filtered by the person's role: a station chief sees
his station, a sub-bureau its stations, the hotline supervisor the hotline, a leader all; a
reach outside by URL or API is 404 (existence does not leak); machine clients keep their
token and see what they always did; the supervision office reads the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from tests.accounts_support import PASSWORD, PEOPLE, add_people
from tests.test_dashboard import _rate, _text

# unit → (served item, case number set by the fixture); every item rated 3 (dissatisfied)
# opens a level-1 order for its unit.
UNITS = ("LZ-DC-01", "LZ-DC-02", "LZ-XC-01")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole gateway (nothing dialled), every role's account, and in each of three
    stations an item rated dissatisfied with its order and a case; one text."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    async with running_stack(tmp_path / "data", clock, run_scheduler=False) as running:
        await add_people(running.store, running.config, *PEOPLE)
        for unit in UNITS:
            await _rate(running.store, unit, f"ITEM-{unit}", 3)
            await running.store.cases.open_case(
                channel="hotline", category="complaint", actor="test", owner_unit=unit
            )
        await running.store.cases.open_case(channel="hotline", category="consultation", actor="t")
        await running.store.sms.insert_or_get(_text("roles-1", clock.now()))
        yield running


class Browser:
    """One person's HTTP session (cookies kept), or a machine client with the token."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession, token: str | None = None):
        self.stack = stack
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(
            self.stack.url + path, headers=self.headers, allow_redirects=False
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(
            self.stack.url + path, json=body, headers=self.headers, allow_redirects=False
        ) as response:
            return response.status, await response.json()


async def _person(stack: Stack, name: str) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            stack.url + "/login",
            data={"username": name, "password": PASSWORD},
            allow_redirects=False,
        ) as response:
            assert response.status == 302, f"{name} could not log in"
        yield Browser(stack, http)


async def person(stack: Stack, name: str) -> tuple[Browser, Any]:
    """A logged-in browser of ``name`` and the context that closes it."""
    context = _person(stack, name)
    return await anext(context), context


async def _case_numbers(stack: Stack) -> dict[str | None, str]:
    cases = await stack.store.cases.find(limit=100)
    return {c.owner_unit_code: c.number for c in cases}


async def test_a_station_chief_reaching_outside_his_station_gets_404_on_every_route(
    stack: Stack,
) -> None:
    """For each route the chief of 东关 sees his own station's thing and gets 404 for another
    station's (and for an unowned case, the texts and the audit log), by API and by page."""
    cases = await _case_numbers(stack)
    chief, context = await person(stack, "dongguan")
    try:
        own_case, other_case = cases["LZ-DC-01"], cases["LZ-DC-02"]
        for path, status in [
            (f"/api/cases/{own_case}", 200),
            (f"/api/cases/{other_case}", 404),
            (f"/api/cases/{cases['LZ-XC-01']}", 404),
            (f"/api/cases/{cases[None]}", 404),
            ("/api/served-items/ITEM-LZ-DC-01", 200),
            ("/api/served-items/ITEM-LZ-DC-02", 404),
            ("/api/served-items/ITEM-LZ-XC-01", 404),
            ("/api/sms/messages", 404),
            ("/api/sms/messages/1", 404),
            ("/api/audit", 404),
            ("/audit", 404),
        ]:
            got, body = await chief.get(path)
            assert got == status, f"GET {path}: {got}, expected {status}"
            if status == 404:
                assert body["error"] in (
                    "not_found",
                    "no_such_case",
                    "no_such_item",
                    "no_such_message",
                ), path
        # an unknown case and another station's case answer alike: existence does not leak
        unknown_status, unknown = await chief.get("/api/cases/TS20261130-9999")
        other_status, other = await chief.get(f"/api/cases/{other_case}")
        assert (unknown_status, unknown["error"]) == (other_status, other["error"])
        _, orders = await chief.get("/api/orders?all=1")
        assert {o["unit"] for o in orders} == {"LZ-DC-01"}
        _, summary = await chief.get("/api/callbacks/summary")
        assert [u["key"] for u in summary["by_unit"]] == ["LZ-DC-01"]
        assert summary["overall"][0]["rated"] == 1
        assert sum(k["rated"] for k in summary["by_kind"]) == 1
        _, data = await chief.get("/dashboard/data.json")
        assert [u["key"] for u in data["callbacks"]["units"]] == ["LZ-DC-01"]
        assert [o["unit"] for o in data["orders"]["open"]] == ["东关派出所"]
        assert data["orders"]["total"] == 1 and data["cases"]["open"] == 1
        assert data["callbacks"]["items_total"] == 1
        assert data["hotline"] is None and data["sms"] is None
        status, page = await chief.get("/dashboard")
        assert status == 200 and "东关派出所" in page
        assert "西关派出所" not in page and "望湖派出所" not in page and "今日热线" not in page
        assert 'href="/audit"' not in page
        # people read the API; changes are for machine clients
        posted, body = await chief.post("/api/orders/ZG20261130-0001/report", {"actor": "J00010"})
        assert (posted, body["error"]) == (401, "machine_clients_only")
    finally:
        await context.aclose()


async def test_a_sub_bureau_sees_its_stations_and_no_other_bureau(stack: Stack) -> None:
    """东城分局 sees 东关 and 西关 (its stations, by the unit tree), not 望湖 of 西城."""
    cases = await _case_numbers(stack)
    bureau, context = await person(stack, "dongcheng")
    try:
        assert (await bureau.get(f"/api/cases/{cases['LZ-DC-02']}"))[0] == 200
        assert (await bureau.get(f"/api/cases/{cases['LZ-XC-01']}"))[0] == 404
        assert (await bureau.get("/api/served-items/ITEM-LZ-XC-01"))[0] == 404
        _, orders = await bureau.get("/api/orders")
        assert {o["unit"] for o in orders} == {"LZ-DC-01", "LZ-DC-02"}
        _, data = await bureau.get("/dashboard/data.json")
        assert {u["key"] for u in data["callbacks"]["units"]} == {"LZ-DC-01", "LZ-DC-02"}
        assert data["cases"]["open"] == 2
    finally:
        await context.aclose()


async def test_the_hotline_supervisor_sees_the_hotline_only(stack: Stack) -> None:
    """The hotline supervisor gets the hotline's figures and no unit's case, item or order."""
    cases = await _case_numbers(stack)
    hotline, context = await person(stack, "hotline")
    try:
        _, data = await hotline.get("/dashboard/data.json")
        assert data["hotline"] is not None and data["callbacks"]["units"] == []
        assert data["orders"]["total"] == 0 and data["cases"]["open"] == 0
        assert (await hotline.get(f"/api/cases/{cases['LZ-DC-01']}"))[0] == 404
        assert (await hotline.get("/api/served-items/ITEM-LZ-DC-01"))[0] == 404
        _, orders = await hotline.get("/api/orders")
        assert orders == []
    finally:
        await context.aclose()


async def test_a_leader_and_a_machine_client_see_every_unit(stack: Stack) -> None:
    """A leader sees every station, the unowned case and the texts; the API's token sees the
    same as before accounts existed."""
    cases = await _case_numbers(stack)
    leader, context = await person(stack, "leader")
    try:
        async with aiohttp.ClientSession() as http:
            machine = Browser(stack, http, stack.api_token)
            for browser in (leader, machine):
                for number in cases.values():
                    assert (await browser.get(f"/api/cases/{number}"))[0] == 200
                _, orders = await browser.get("/api/orders")
                assert {o["unit"] for o in orders} == set(UNITS)
                status, texts = await browser.get("/api/sms/messages")
                assert status == 200 and len(texts["messages"]) == 1
                _, data = await browser.get("/dashboard/data.json")
                assert len(data["callbacks"]["units"]) == 3 and data["sms"]["total"] == 1
            assert (await machine.get("/api/audit"))[0] == 404  # the audit log is for people
            assert (await leader.get("/api/audit"))[0] == 404  # … of the supervision office
    finally:
        await context.aclose()


async def test_the_supervision_office_reads_the_audit_log(stack: Stack) -> None:
    """Logins, failed logins, views of a case and of the dashboard, and logouts are in the
    audit log with who and from where; the supervision office reads it, a page at a time,
    as JSON and as a page linked from its dashboard."""
    cases = await _case_numbers(stack)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            stack.url + "/login", data={"username": "dongguan", "password": "wrong-password"}
        ) as response:
            assert response.status == 401
    chief, context = await person(stack, "dongguan")
    await chief.get(f"/api/cases/{cases['LZ-DC-01']}")
    await chief.get("/dashboard")
    async with chief.http.post(stack.url + "/logout", allow_redirects=False) as response:
        assert response.status == 302
    await context.aclose()
    ducha, ducha_context = await person(stack, "ducha")
    try:
        status, body = await ducha.get("/api/audit?user=dongguan")
        assert status == 200
        lines = [(e["action"], e["target"]) for e in reversed(body["entries"])]
        assert lines == [
            ("login_failed", "dongguan"),
            ("login", ""),
            ("view_case", cases["LZ-DC-01"]),
            ("view_dashboard", "/dashboard"),
            ("logout", ""),
        ]
        assert all(e["address"] == "127.0.0.1" for e in body["entries"])
        assert body["entries"][0]["role"] == "station"
        status, html = await ducha.get("/audit?user=dongguan")
        assert status == 200 and "审计日志 · 用户 dongguan" in html
        assert html.count("<tr data-id=") == 5 and "查看诉求" in html and "登录失败" in html
        _, dashboard = await ducha.get("/dashboard")
        assert 'href="/audit"' in dashboard
        status, page = await ducha.get("/api/audit?limit=2")
        assert status == 200 and len(page["entries"]) == 2
        assert (await ducha.get("/api/audit?limit=0"))[0] == 400
        assert (await ducha.get("/api/audit?limit=x"))[0] == 400
    finally:
        await ducha_context.aclose()


# Routes anyone may reach: the login itself, the static files, Twilio's signed webhooks
# and the health check.
OPEN_ROUTES = {"/", "/login", "/logout", "/static/{name}", "/health"}


async def test_every_route_refuses_a_request_without_credentials(stack: Stack) -> None:
    """Every route of the real app, but the login, static files, /health and Twilio's
    signed webhooks, answers a request with no credential with 401 (API, JSON) or a
    redirect to the login page, before its handler can tell anything."""
    routes = {
        (route.method, route.resource.canonical)
        for route in stack.app.router.routes()
        if route.resource is not None and route.method in ("GET", "POST")
    }
    checked = 0
    async with aiohttp.ClientSession() as http:
        for method, canonical in sorted(routes):
            if canonical in OPEN_ROUTES or canonical.startswith("/twilio/"):
                continue
            path = canonical
            for name in ("{ref}", "{reference}", "{id}", "{number}", "{code}", "{key}"):
                path = path.replace(name, "1")
            path = path.replace("{kind}", "calls").replace("{day}", "2026-12-01")
            path = path.replace("{unit}", "LZ-DC")
            assert "{" not in path, f"fill the parameters of {canonical}"
            async with http.request(
                method, stack.url + path, json={}, allow_redirects=False
            ) as response:
                if path.startswith("/api/") or path.endswith(".json"):
                    assert response.status == 401, (method, path, response.status)
                else:
                    assert response.status in (302, 303), (method, path, response.status)
                    assert response.headers["Location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 40
