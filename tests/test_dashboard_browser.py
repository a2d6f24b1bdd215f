"""The dashboard in a real headless Chromium, against the whole gateway on loopback:
redirected to the login, a wrong password refused, the leader's let in, the figures
of a small scripted load on the page with their colours, and a screenshot."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.callbacks.service import ServedItemInput
from gateway.callbacks.web import CALLBACKS
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.sim.ami import (
    Answer,
    CallerScript,
    HangUp,
    Press,
    Silence,
    Speak,
    WaitForAgent,
    WaitForPrompt,
)
from tests.polling import until

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SPEED = 200.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chromium_or_skip() -> str:
    """The system Chromium's path; without it (or playwright) fail on CI, else skip."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    reason = ""
    if path is None:
        reason = f"Chromium is not installed at {CHROMIUM} (scripts/browser.sh installs it)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (requirements-dev.lock pins it)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the dashboard's browser test cannot run on CI: {reason}")
        pytest.skip(reason)
    assert path is not None
    return path


def rates(key: str) -> Answer:
    steps = [WaitForPrompt("rate"), Press(key)]
    if key == "3":
        steps += [
            WaitForPrompt("reason"),
            Press("2"),
            WaitForPrompt("message_intro"),
            Speak(3.0),
            Press("#"),
        ]
    return Answer([*steps, WaitForPrompt(timeout=60)])


def caller(number: str, steps: list[Any]) -> CallerScript:
    return CallerScript(
        caller=number, caller_name="市民", dialled="9600110", steps=steps, language="zh"
    )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway and both simulators, on a Monday at 09:00 in Shanghai, 200× fast."""
    clock = ScaledClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), SPEED)
    async with running_stack(
        tmp_path / "data",
        clock,
        recordings_dir=ROOT / "recordings" / "zh",
        people=True,
        overrides=["callbacks.poll_seconds=30", "callbacks.retry_spacing_minutes=5"],
    ) as running:
        yield running


async def scripted_load(stack: Stack) -> int:
    """Three hotline calls and three rated items (one dissatisfied); returns today's hotline
    total as the store counts it (the figure the page must show)."""
    calls = [
        stack.pbx.place_call(
            caller(
                "+8613800000001",
                [WaitForPrompt("main_menu", timeout=60), Press("0"), WaitForAgent(timeout=600)],
            )
        ),
        stack.pbx.place_call(
            caller(
                "+8613800000002",
                [WaitForPrompt("main_menu", timeout=60), Press("1"), WaitForAgent(timeout=600)],
            )
        ),
        stack.pbx.place_call(
            caller("+8613800000003", [WaitForPrompt("main_menu", timeout=60), Silence(2), HangUp()])
        ),
    ]
    service = stack.app[CALLBACKS]
    served = (stack.clock.now() - timedelta(days=4)).isoformat()
    for index, (unit, number, key) in enumerate(
        [
            ("LZ-DC-01", "+8613900000001", "1"),
            ("LZ-DC-01", "+8613900000002", "2"),
            ("LZ-DC-02", "+8613900000003", "3"),
        ]
    ):
        stack.pbx.set_citizen(number, rates(key))
        await service.serve(
            ServedItemInput(
                reference=f"UI-{index + 1}",
                kind="minor_injury_case",
                unit=unit,
                citizen_number=number,
                served_at=served,
                citizen_name="李四",
            ),
            source="test",
        )
    await asyncio.wait([c.finished for c in calls], timeout=20)
    assert all(c.finished.done() for c in calls), "the scripted hotline calls did not end"

    seen: list[object] = []

    async def settled() -> bool:
        counts = await stack.store.callbacks.status_counts()
        orders = await stack.store.callbacks.orders(("open",))
        inbound = await stack.store.calls.find(direction="inbound", complete=True)
        seen[:] = [counts, len(orders), len(inbound)]
        return counts.get("rated", 0) == 3 and len(orders) == 1 and len(inbound) == len(calls)

    try:
        await until(settled, 20)
    except TimeoutError:
        pytest.fail(f"the scripted load did not settle (items, orders, calls): {seen}")
    day = stack.clock.local().replace(hour=0, minute=0, second=0, microsecond=0)
    return (await stack.store.calls.hotline_figures(day, day + timedelta(days=1))).total


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "the screenshot is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_dashboard_in_headless_chromium(stack: Stack, tmp_path: Path) -> None:
    """Login page first, a wrong password refused, the leader's shows calls, per-unit colours
    and the level-1 order; the screenshot is a real PNG."""
    executable = _chromium_or_skip()
    from playwright.async_api import async_playwright

    calls = await scripted_load(stack)
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(10_000)
            await page.goto(f"{stack.url}/dashboard")
            assert page.url == f"{stack.url}/login"

            await page.fill("#username", "leader")
            await page.fill("#password", "not-the-password")
            async with page.expect_response(f"{stack.url}/login") as refused:
                await page.click("button[type=submit]")
            assert (await refused.value).status == 401
            assert "用户名或密码不正确" in await page.locator("p.error").inner_text()

            await page.fill("#password", stack.people["leader"])
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{stack.url}/dashboard")
            assert "领导驾驶舱" in await page.title()

            total = page.locator('[data-k="hotline.total"]')
            assert await total.inner_text() == str(calls)
            green = page.locator('tr[data-unit="LZ-DC-01"][data-colour="green"] .mark')
            red = page.locator('tr[data-unit="LZ-DC-02"][data-colour="red"] .mark')
            assert await green.inner_text() == "绿" and await red.inner_text() == "红"
            green_bg = await green.evaluate("e => getComputedStyle(e).backgroundColor")
            red_bg = await red.evaluate("e => getComputedStyle(e).backgroundColor")
            assert (green_bg, red_bg) == ("rgb(47, 158, 68)", "rgb(214, 69, 69)")
            assert "100.0%" in await page.locator('tr[data-unit="LZ-DC-01"]').inner_text()
            assert "0.0%" in await page.locator('tr[data-unit="LZ-DC-02"]').inner_text()
            order = page.locator('#orders tr[data-level="1"]')
            assert await order.count() == 1
            assert "派出所所长" in await order.inner_text()
            assert await page.locator('[data-k="orders.by_level.1"]').inner_text() == "1"

            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
        finally:
            await context.close()
    data = shot.read_bytes()
    width, height = png_size(data)
    assert width >= 1000 and height >= 600 and len(data) > 30_000


async def complaint_case_of_red_unit(stack: Stack) -> tuple[str, int]:
    """A caller leaves a spoken complaint (a real WAV the simulated PBX writes into the
    recordings folder); the case is handed to LZ-DC-02, the unit the scripted load makes red.
    Returns the case's number and id."""
    call = stack.pbx.place_call(
        caller(
            "+8613800000009",
            [
                WaitForPrompt("main_menu", timeout=60),
                Press("2"),
                WaitForPrompt(input=True, timeout=120),
                Speak(4.0),
                Press("#"),
                WaitForPrompt("case_number", timeout=120),
                HangUp(),
            ],
        )
    )
    await asyncio.wait_for(call.finished, 30)

    async def opened() -> Any:
        found = await stack.store.cases.find(category="complaint")
        return found[0] if found and found[0].recording else None

    case = await until(opened, 20)
    assigned = await stack.store.cases.assign(case.number, "LZ-DC-02", actor="test")
    return assigned.number, assigned.id


async def _log_in(page: Any, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/dashboard")


async def test_leader_and_station_chief_in_headless_chromium(stack: Stack, tmp_path: Path) -> None:
    """The leader sees the charts and the board with its reasons, opens the red unit, its case's
    timeline, and plays the caller's recording (the audio loads: duration > 0), and the hotline
    wall refreshes itself in place; the chief of another station sees his own unit only and gets
    404 for that case, its recording, the red unit and its figures, by page and by API."""
    executable = _chromium_or_skip()
    from playwright.async_api import async_playwright

    await scripted_load(stack)
    number, case_id = await complaint_case_of_red_unit(stack)
    recording = f"/dashboard/recordings/case/{case_id}"
    url = stack.url
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            leader = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await leader.new_page()
            page.set_default_timeout(10_000)
            await _log_in(page, url, "leader", stack.people["leader"])
            for chart in ("chart-satisfaction", "chart-calls", "chart-categories"):
                assert await page.locator(f"#{chart} svg.chart").count() == 1
            bars = page.locator("#chart-calls svg rect[data-value]")
            values = [int(v) for v in await bars.evaluate_all("bs => bs.map(b => b.dataset.value)")]
            assert sum(values) >= 4  # the scripted calls and the complaint, by hour

            await page.click("nav.pages a[href='/dashboard/board']")
            await page.wait_for_url(f"{url}/dashboard/board")
            red = page.locator('#board tr[data-unit="LZ-DC-02"][data-colour="red"]')
            assert "满意率 0.0%" in await red.locator(".reasons").inner_text()
            green = page.locator('#board tr[data-unit="LZ-DC-01"][data-colour="green"]')
            assert await green.count() == 1

            await red.locator("a").click()
            await page.wait_for_url(f"{url}/dashboard/units/LZ-DC-02*")
            assert await page.locator("#unit-colour").inner_text() == "红"
            assert "满意率 0.0%" in await page.locator("#unit-reasons").inner_text()
            link = page.locator(f'#unit-cases a[href="/dashboard/cases/{number}"]')
            async with page.expect_response(lambda r: r.url.endswith(recording)) as loaded:
                await link.click()
            assert (await loaded.value).status in (200, 206)
            assert (await loaded.value).headers["content-type"] == "audio/wav"
            await page.wait_for_url(f"{url}/dashboard/cases/{number}")
            assert await page.locator("#case-number").inner_text() == number
            assert await page.locator("#timeline li").count() >= 3

            player = page.locator(f'audio[src="{recording}"]').first
            await player.evaluate("a => { a.muted = true; return a.play(); }")
            await page.wait_for_function(
                "a => a.readyState >= 1 && a.duration > 1 && !a.error && a.currentTime > 0",
                arg=await player.element_handle(),
            )
            duration = await player.evaluate("a => a.duration")
            # the 4 s the caller spoke, the lead-in, and the end of the silence that
            # stopped the recording, which a loaded machine stretches a little
            assert 3.0 <= duration <= 8.0
            await page.screenshot(path=str(tmp_path / "case.png"), full_page=True)

            await page.goto(f"{url}/dashboard/wall")  # refreshed in place, not reloaded
            await page.wait_for_function("() => document.getElementById('wall').dataset.updated")
            hotline = page.locator('[data-queue="hotline"]')
            free = int(await hotline.locator('[data-w="free"]').inner_text())
            talking = int(await hotline.locator('[data-w="talking"]').inner_text())
            assert free + talking == await hotline.locator(".seat").count() == 20

            chief = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await chief.new_page()
            page.set_default_timeout(10_000)
            await _log_in(page, url, "dongguan", stack.people["dongguan"])
            assert await page.locator("#chart-calls").count() == 0  # no hotline figures
            await page.goto(f"{url}/dashboard/board")
            rows = page.locator("#board tbody tr[data-unit]")
            assert await rows.evaluate_all("rs => rs.map(r => r.dataset.unit)") == ["LZ-DC-01"]
            for path in (f"/dashboard/cases/{number}", "/dashboard/units/LZ-DC-02"):
                response = await page.goto(f"{url}{path}")
                assert response is not None and response.status == 404
                assert "无权查看" in await page.locator("p.error").inner_text()
            for path in (
                recording,
                f"/dashboard/cases/{number}/timeline.json",
                "/dashboard/units/LZ-DC-02/data.json",
                f"/api/cases/{number}",
            ):
                response = await page.request.get(f"{url}{path}")
                assert response.status == 404, path
            charts = await (await page.request.get(f"{url}/dashboard/charts.json")).json()
            assert charts["calls_by_hour"] is None
            assert {u["unit"] for u in charts["categories_by_unit"]} <= {"LZ-DC-01"}
            board = await (await page.request.get(f"{url}/dashboard/board.json")).json()
            assert [u["unit"] for u in board["units"]] == ["LZ-DC-01"]
        finally:
            await browser.close()
