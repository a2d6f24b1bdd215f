"""The chasing and booking-reminder loops as the gateway wires them: supervised, shown
on /health, texting through the simulated Twilio as the clock moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from polling import until

from gateway.clock import LOCAL_TZ, ScaledClock
from gateway.demo.stack import Stack, running_stack

WEB_TOKEN = "web-portal-0123456789abc"
BOOKING_TOKEN = "booking-client-0123456789"
CITIZEN = "+8613912345678"
STATION_CHIEF = "+8615171049746"  # J00010, chief of LZ-DC-01 in the demo city


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole gateway with its loops, Monday 30 November 2026, 10:00 in Shanghai."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    overrides = [
        f"appeals.channels_web_token={WEB_TOKEN}",
        f"bookings.token={BOOKING_TOKEN}",
        "appeals.chase_poll_seconds=0.2",
        "bookings.poll_seconds=0.2",
    ]
    async with running_stack(tmp_path / "data", clock, overrides=overrides) as running:
        yield running


async def post(stack: Stack, path: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {stack.api_token}", "X-Channel-Token": token}
    async with (
        aiohttp.ClientSession() as http,
        http.post(stack.url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def bodies(stack: Stack, number: str, word: str) -> list[str]:
    return [m.body for m in stack.twilio.messages if m.to == number and word in m.body]


def advance_to(stack: Stack, when: datetime) -> None:
    stack.clock.advance(when - stack.clock.now())


async def test_the_running_gateway_reminds_and_chases_a_case_and_reminds_a_booking(
    stack: Stack,
) -> None:
    """A complaint to accept by the end of Tuesday: its station chief is reminded at once;
    left unaccepted into Wednesday, the chief gets the level-1 text. A booking for
    Wednesday gets its reminder once Tuesday 19:00 comes. /health lists both loops."""
    status, _ = await post(
        stack,
        "/api/cases",
        {
            "channel": "web",
            "reference": "W1",
            "citizen_number": "13912345678",
            "category": "complaint",
            "text": "小区门口夜间常有人飙车，噪音扰民，请派出所加强巡逻。",
            "unit_hint": "LZ-DC-01",
        },
        WEB_TOKEN,
    )
    assert status == 201
    await until(lambda: bodies(stack, STATION_CHIEF, "临期提醒"))
    status, _ = await post(
        stack,
        "/api/bookings",
        {
            "reference": "WX-1",
            "kind": "exit_entry",
            "citizen_number": "13912345678",
            "slot": "2026-12-02T09:30:00+08:00",
            "place": "市公安局出入境大厅",
        },
        BOOKING_TOKEN,
    )
    assert status == 201
    await until(lambda: bodies(stack, CITIZEN, "预约成功"))
    advance_to(stack, datetime(2026, 12, 1, 19, 1, tzinfo=LOCAL_TZ))
    [reminder] = await until(lambda: bodies(stack, CITIZEN, "预约提醒"))
    assert "12月02日(周三)09:30" in reminder
    advance_to(stack, datetime(2026, 12, 2, 9, 0, tzinfo=LOCAL_TZ))
    [overdue] = await until(lambda: bodies(stack, STATION_CHIEF, "诉求超期督办"))
    assert "第1级" in overdue and "受理时限12月01日24时" in overdue
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{stack.url}/health") as response,
    ):
        checks = (await response.json())["checks"]
    assert checks["chasing"] == {"status": "ok"} and checks["bookings"] == {"status": "ok"}
    assert len(bodies(stack, STATION_CHIEF, "临期提醒")) == 1
    assert len(bodies(stack, CITIZEN, "预约提醒")) == 1
