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
