"""The leaders' dashboard: login required, sessions, the three-colour warning, and the
figures it shows matching what the store holds."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed
from gateway.store.sms import NewText
from gateway.web.app import create_web_app
from gateway.web.auth import SESSION_COOKIE
from gateway.web.dashboard import (
    GREEN_AT,
    YELLOW_AT,
    add_dashboard,
    warning_colour,
)
from tests.accounts_support import PASSWORD, add_people
from tests.test_dashboard_store import record

TOKEN = "dash-token-5e3f9a"
IDLE = 1800
LIFETIME = 43200


def _app(store: Store, clock: ManualClock, token: str = TOKEN) -> web.Application:
    config = config_module.load(
        env={"GATEWAY_WEB_API_TOKEN": token} if token else {},
        overrides=[f"web.session_idle={IDLE}", f"web.session_lifetime={LIFETIME}"],
    )
    return create_web_app(config, clock=clock, store=store, features=[add_dashboard])


@pytest.fixture
async def client(
    store: Store, clock: ManualClock
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A test client of an application serving only the dashboard, over the test store with
    the demo city and a leader's account."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    await add_people(store, config_module.load(), "leader")
    async with TestClient(TestServer(_app(store, clock))) as http:
        yield http


async def _login(
    http: TestClient[web.Request, web.Application],
    username: str = "leader",
    password: str = PASSWORD,
) -> int:
    response = await http.post(
        "/login", data={"username": username, "password": password}, allow_redirects=False
    )
    return response.status


# -- the three-colour warning ------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "colour"),
    [
        (1.0, "green"),
        (GREEN_AT, "green"),
        (GREEN_AT - 0.0001, "yellow"),
        (YELLOW_AT, "yellow"),
        (YELLOW_AT - 0.0001, "red"),
        (0.0, "red"),
        (None, "none"),
    ],
)
def test_warning_colour_thresholds(rate: float | None, colour: str) -> None:
    """Green at 95% or more, yellow at 90% or more, red below; nothing rated has no colour."""
    assert warning_colour(rate) == colour


# -- login -------------------------------------------------------------------------


async def test_root_redirects_to_the_dashboard(
    client: TestClient[web.Request, web.Application],
) -> None:
    """``/`` sends the browser to ``/dashboard``."""
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/dashboard"


async def test_dashboard_without_session_redirects_to_login(
    client: TestClient[web.Request, web.Application],
) -> None:
    """An anonymous page request goes to /login; the JSON answers 401; the login form is Chinese."""
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    data = await client.get("/dashboard/data.json")
    assert data.status == 401 and (await data.json())["error"] == "unauthorized"
    login = await client.get("/login")
    text = await login.text()
    assert login.status == 200 and "用户名" in text and 'name="password"' in text


async def test_wrong_password_is_refused_and_not_logged(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password, and an unknown name, get the same 401 page in Chinese, no cookie, and
    a log line without the password."""
    caplog.set_level(logging.INFO)
    wrong = "wrong-password-7781"
    response = await client.post(
        "/login", data={"username": "leader", "password": wrong}, allow_redirects=False
    )
    text = await response.text()
    assert response.status == 401 and "用户名或密码不正确" in text
    assert SESSION_COOKIE not in response.cookies
    unknown = await client.post(
        "/login", data={"username": "nobody", "password": PASSWORD}, allow_redirects=False
    )
    assert unknown.status == 401 and "用户名或密码不正确" in await unknown.text()
    assert "wrong name or password" in caplog.text
    assert wrong not in caplog.text and PASSWORD not in caplog.text
    empty = await client.post(
        "/login", data={"username": "leader", "password": ""}, allow_redirects=False
    )
    assert empty.status == 401 and "请输入用户名和密码" in await empty.text()
    still = await client.get("/dashboard", allow_redirects=False)
    assert still.status == 302


async def test_right_password_sets_a_strict_httponly_cookie_that_opens_the_page(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    """Login redirects to /dashboard with an HttpOnly SameSite=Strict cookie; the page then opens
    naming the person, and neither the password nor the cookie reaches the log."""
    caplog.set_level(logging.DEBUG)
    response = await client.post(
        "/login", data={"username": "leader", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 302 and response.headers["Location"] == "/dashboard"
    header = response.headers["Set-Cookie"]
    assert header.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in header
    assert "SameSite=Strict" in header
    cookie = response.cookies[SESSION_COOKIE].value
    page = await client.get("/dashboard", allow_redirects=False)
    text = await page.text()
    assert page.status == 200 and "领导驾驶舱" in text and "leader（局领导）" in text
    assert page.headers["Cache-Control"] == "no-store"
    data = await client.get("/dashboard/data.json")
    assert data.status == 200
    assert (await data.json())["viewer"] == {"username": "leader", "role": "leader"}
    assert PASSWORD not in caplog.text and cookie not in caplog.text
    again = await client.get("/login", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"] == "/dashboard"


async def test_session_ends_when_idle(
    client: TestClient[web.Request, web.Application], clock: ManualClock
) -> None:
    """A session unused for web.session_idle seconds no longer opens the page; one used within
    it goes on."""
    assert await _login(client) == 302
    clock.advance(IDLE - 60)
    assert (await client.get("/dashboard", allow_redirects=False)).status == 200
    clock.advance(IDLE - 60)
    assert (await client.get("/dashboard", allow_redirects=False)).status == 200
    clock.advance(IDLE + 1)
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    assert (await client.get("/dashboard/data.json")).status == 401


async def test_session_ends_at_its_lifetime_even_when_used(
    client: TestClient[web.Request, web.Application], clock: ManualClock
) -> None:
    """A session used every few minutes still ends web.session_lifetime after the login."""
    assert await _login(client) == 302
    step = 1500  # less than the idle lifetime
    for _ in range(LIFETIME // step):
        clock.advance(step)
        assert (await client.get("/dashboard/data.json")).status == 200
    rest = LIFETIME - (LIFETIME // step) * step
    assert 0 < rest < IDLE
    clock.advance(rest)
    assert (await client.get("/dashboard/data.json")).status == 401


async def test_forged_cookie_is_refused(client: TestClient[web.Request, web.Application]) -> None:
    """A cookie the server never issued does not open the page."""
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: "made-up-session-value"})
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 302


async def test_logout_ends_the_session(client: TestClient[web.Request, web.Application]) -> None:
    """After /logout the browser is back at /login and the page is closed again."""
    assert await _login(client) == 302
    response = await client.post("/logout", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    after = await client.get("/dashboard", allow_redirects=False)
    assert after.status == 302


async def test_bearer_token_opens_the_json(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Tools pass with ``Authorization: Bearer <token>`` and see every unit; a wrong bearer
    does not pass, and the token is no password for the login form."""
    good = await client.get("/dashboard/data.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status == 200 and (await good.json())["hotline"] is not None
    bad = await client.get("/dashboard/data.json", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    assert await _login(client, "leader", TOKEN) == 401


async def test_without_a_configured_token_people_still_log_in(
    store: Store, clock: ManualClock
) -> None:
    """With web.api_token unset machine clients are shut out, people log in with accounts."""
    async with TestClient(TestServer(_app(store, clock, token=""))) as http:
        await load_seed(store.units, demo_city(), "demo-city.toml")
        await add_people(store, config_module.load(), "leader")
        tool = await http.get("/dashboard/data.json", headers={"Authorization": "Bearer x" * 3})
        assert tool.status == 401
        assert await _login(http) == 302
        assert (await http.get("/dashboard", allow_redirects=False)).status == 200


async def test_static_files_are_served_and_unknown_ones_are_not(
    client: TestClient[web.Request, web.Application],
) -> None:
    """The stylesheet and script are served with their types; other names are 404."""
    css = await client.get("/static/dashboard.css")
    assert css.status == 200 and css.content_type == "text/css"
    js = await client.get("/static/dashboard.js")
    assert js.status == 200 and "data.json" in await js.text()
    missing = await client.get("/static/secret.txt")
    assert missing.status == 404


# -- figures -----------------------------------------------------------------------


async def _rate(store: Store, unit: str, reference: str, score: int) -> int:
    unit_row = await store.units.unit_by_code(unit)
    assert unit_row is not None
    now = store.clock.now()
    item = await store.callbacks.add_item(
        reference=reference,
        kind_code="minor_injury_case",
        unit_id=unit_row.id,
        officer_code=None,
        citizen_number="+8613912345678",
        citizen_name=None,
        served_at=now - timedelta(days=4),
        due_at=now,
    )
    rating, _ = await store.callbacks.add_rating(
        item_id=item.id, round_=1, attempt_id=None, channel="phone", score=score
    )
    if score == 3:
        await store.callbacks.create_order(
            item_id=item.id, rating_id=rating.id, level=1, deadline_at=now + timedelta(hours=72)
        )
    return item.id


def _text(key: str, when: datetime) -> NewText:
    return NewText(
        purpose="rectification_order",
        audience="officer",
        to="+8613912345678",
        sender="+8610690000001",
        template="rectification_order",
        variables={},
        body="【鲁州公安】整改",
        encoding="UCS-2",
        segments=1,
        idempotency_key=key,
        next_attempt_at=when,
    )


async def test_json_figures_match_the_store(
    client: TestClient[web.Request, web.Application], store: Store, clock: ManualClock
) -> None:
    """Calls, cases, items by status, satisfaction per unit with colour, the open order at
    level 1 with its age, and text counts are what the store holds."""
    now = clock.now()
    await store.calls.upsert(
        [
            record("9.1", now, queue="hotline", queue_wait_s=12.0, agent="Local/8001"),
            record("9.2", now, queue="hotline", queue_wait_s=8.0, agent="Local/8002"),
            record("9.3", now, queue="hotline", queue_wait_s=40.0, disposition="ABANDONED"),
            record("9.4", now - timedelta(days=1), agent="Local/8001"),
        ]
    )
    for category in ("complaint", "complaint", "consultation"):
        await store.cases.open_case(channel="hotline", category=category, actor="t", subject="s")
    for n in range(20):
        await _rate(store, "LZ-DC-01", f"G-{n}", 1 if n % 2 else 2)  # 100%: green
    for n in range(10):
        await _rate(store, "LZ-DC-02", f"Y-{n}", 3 if n == 0 else 1)  # 90%: yellow
    await _rate(store, "LZ-DC-03", "R-1", 1)
    await _rate(store, "LZ-DC-03", "R-2", 3)  # 50%: red
    first = await store.sms.insert_or_get(_text("a", now))
    await store.sms.insert_or_get(_text("b", now))
    await store.sms.record_failed(first[0].id, code="30003", reason="unreachable")
    clock.advance(3 * 3600 + 15 * 60)
    response = await client.get(
        "/dashboard/data.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    data = await response.json()
    assert data["hotline"] == {
        "total": 3,
        "answered_by_agent": 2,
        "abandoned": 1,
        "mean_queue_wait_s": 20.0,
    }
    assert data["cases"]["opened_today"] == 3 and data["cases"]["open"] == 3
    assert {c["category"]: c["count"] for c in data["cases"]["by_category"]} == {
        "complaint": 2,
        "consultation": 1,
    }
    assert data["callbacks"]["items"]["rated"] == 0  # rated by the store only, not moved
    assert data["callbacks"]["items"]["pending"] == 32
    units = {u["key"]: (u["rated"], u["percent"], u["colour"]) for u in data["callbacks"]["units"]}
    assert units == {
        "LZ-DC-01": (20, "100.0%", "green"),
        "LZ-DC-02": (10, "90.0%", "yellow"),
        "LZ-DC-03": (2, "50.0%", "red"),
    }
    assert data["callbacks"]["units"][0]["key"] == "LZ-DC-03"  # worst first
    overall = data["callbacks"]["satisfaction"]
    assert overall["rated"] == 32 and overall["dissatisfied"] == 2
    orders = data["orders"]["open"]
    assert len(orders) == 2 and {o["level"] for o in orders} == {1}
    assert data["orders"]["by_level"] == {"1": 2, "2": 0, "3": 0, "4": 0}
    assert orders[0]["age"] == "3小时15分" and orders[0]["age_hours"] == 3.25
    assert orders[0]["level_name"] == "派出所所长" and not orders[0]["overdue"]
    assert data["sms"] == {"waiting": 1, "sent": 0, "delivered": 0, "failed": 1, "total": 2}


async def test_page_shows_the_figures_escaped(
    client: TestClient[web.Request, web.Application], store: Store
) -> None:
    """The page shows each unit's rate and colour mark and the order; names are HTML-escaped."""
    await store.units.add_unit("LZ-X-01", "<script>alert(1)</script>派出所", "station", "LZ")
    await _rate(store, "LZ-X-01", "X-1", 3)
    assert await _login(client) == 302
    text = await (await client.get("/dashboard")).text()
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;派出所" in text
    row = re.search(r'<tr data-unit="LZ-X-01" data-colour="red">(.*?)</tr>', text)
    assert row and "0.0%" in row.group(1) and 'class="mark red"' in row.group(1)
    assert re.search(r'<tr data-ref="ZG\d{8}-0001" data-level="1">', text)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
