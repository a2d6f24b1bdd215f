"""The demo's bookings: citizens book a slot at a police counter through the real
``POST /api/bookings`` (the service web sites and WeChat, with the bookings clients'
credential), a few cancel; the gateway texts each a confirmation, a cancellation, and
at 19:00 the evening before a reminder."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import aiohttp

from gateway.demo.stack import Stack

Progress = Callable[[str], None]

# (kind code, the counter where the slot is; at most 24 characters)
COUNTERS: tuple[tuple[str, str], ...] = (
    ("exit_entry", "出入境管理支队办证大厅"),
    ("household", "东关派出所户籍窗口"),
    ("household", "望湖派出所户籍窗口"),
    ("id_card", "春风派出所户籍窗口"),
    ("id_card", "高新派出所户籍窗口"),
    ("vehicle_inspection", "鲁州市第二机动车检测站"),
    ("driving_licence", "交警支队车管所二楼大厅"),
    ("vehicle_plate", "交警支队车管所一楼大厅"),
)
REASONS = ("临时出差，改天再约", "材料没有准备齐", "家里有事去不了")


@dataclass
class BookingsDay:
    booked: Counter[str] = field(default_factory=Counter)  # kind → bookings
    cancelled: int = 0
    refused: list[str] = field(default_factory=list)


def next_working_days(start: date, count: int) -> list[date]:
    """The ``count`` weekdays after ``start``."""
    days: list[date] = []
    day = start
    while len(days) < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


async def bookings_day(
    stack: Stack,
    rng: random.Random,
    citizens: Sequence[tuple[str, str]],
    progress: Progress,
    cancel: int = 2,
) -> BookingsDay:
    """Each citizen books a slot on the next two working days; ``cancel`` of them cancel."""
    day = BookingsDay()
    headers = {
        "Authorization": f"Bearer {stack.api_token}",
        "X-Channel-Token": stack.bookings_token,
    }
    today = stack.clock.local()
    slot_days = next_working_days(today.date(), 2)
    made: list[str] = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for index, (number, name) in enumerate(citizens):
            kind, place = rng.choice(COUNTERS)
            minutes = rng.randrange(0, 15) * 30  # 09:00 to 16:00, every half hour
            slot = datetime.combine(rng.choice(slot_days), time(9), stack.clock.tz)
            body = {
                "reference": f"YY{today:%Y%m%d}-{index + 1:04d}",
                "kind": kind,
                "citizen_number": number,
                "citizen_name": name,
                "slot": (slot + timedelta(minutes=minutes)).isoformat(),
                "place": place,
            }
            status, answer = await _post(http, stack.url + "/api/bookings", body)
            if status == 201:
                day.booked[kind] += 1
                made.append(body["reference"])
            else:
                day.refused.append(f"{body['reference']}: {status} {answer}")
            await stack.clock.sleep(rng.uniform(1, 4) * 60)
        for reference in rng.sample(made, min(cancel, len(made))):
            url = f"{stack.url}/api/bookings/{reference}/cancel"
            status, answer = await _post(http, url, {"reason": rng.choice(REASONS)})
            if status == 200:
                day.cancelled += 1
            else:
                day.refused.append(f"cancel {reference}: {status} {answer}")
    progress(
        f"{stack.clock.local():%H:%M} 预约：网站、微信预约 {sum(day.booked.values())} 件，"
        f"取消 {day.cancelled} 件"
    )
    return day


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()
