"""Bookings by SMS: checked before anything is written, confirmed, reminded once the
evening before (outside quiet hours) across restarts, cancelled once. The service over
the real store and outbox with the clock moved by hand; the API on the running gateway
with the simulated Twilio."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from polling import until
from sms_support import outbox_service
from test_query_plans import scans_of_big_tables

from gateway import config as config_module
from gateway.bookings.exceptions import (
    BadBooking,
    BookingConflict,
    BookingRefused,
    CancelRefused,
    KindsError,
)
from gateway.bookings.service import (
    BookingInput,
    BookingService,
    load_kinds,
    parse_kinds,
    reminder_at,
    slot_text,
)
from gateway.bookings.web import add_bookings
from gateway.clock import LOCAL_TZ, ManualClock, ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.sms.policy import QuietHours
from gateway.store import Store
from gateway.supervise import Supervisor

TOKEN = "booking-client-0123456789"
CITIZEN = "+8613912345678"
QUIET = QuietHours(time(21, 0), time(8, 0), LOCAL_TZ)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def booking(ref: str = "WX-1", **changes: str) -> BookingInput:
    values = {
        "reference": ref,
        "kind": "exit_entry",
        "citizen_number": "139 1234 5678",
        "citizen_name": "王芳",
        "slot": "2026-12-02T09:30:00",  # Wednesday, local time
        "place": "市公安局出入境大厅3号窗口",
        "bring": "",
    }
    values.update(changes)
    return BookingInput(**values)


# -- the reminder rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evening", "quiet", "slot", "now", "expected"),
    [
        # 19:00 the day before, outside the 21:00–08:00 quiet hours.
        (
            time(19),
            QUIET,
            local(2026, 12, 2, 9, 30),
            local(2026, 11, 30, 10),
            local(2026, 12, 1, 19),
        ),
        # 22:00 would be quiet: one hour before the quiet hours, 20:00.
        (
            time(22),
            QUIET,
            local(2026, 12, 2, 9, 30),
            local(2026, 11, 30, 10),
            local(2026, 12, 1, 20),
        ),
        # Quiet from 18:00: 17:00.
        (
            time(19),
            QuietHours(time(18), time(8), LOCAL_TZ),
            local(2026, 12, 2, 9, 30),
            local(2026, 11, 30, 10),
            local(2026, 12, 1, 17),
        ),
        # Booked on the evening before, after 19:00: the confirmation is the reminder.
        (time(19), QUIET, local(2026, 12, 2, 9, 30), local(2026, 12, 1, 19, 30), None),
        # A slot in the afternoon is still reminded the evening before, not that morning.
        (time(19), QUIET, local(2026, 12, 2, 15), local(2026, 12, 1, 9), local(2026, 12, 1, 19)),
    ],
)
def test_the_reminder_goes_the_evening_before_outside_quiet_hours(
    evening: time, quiet: QuietHours, slot: datetime, now: datetime, expected: datetime | None
) -> None:
    """The evening before at the set time; earlier if that is quiet; none if it has passed."""
    assert reminder_at(slot, evening=evening, quiet=quiet, tz=LOCAL_TZ, now=now) == expected


def test_a_slot_reads_with_its_weekday() -> None:
    """A slot in a text: month, day, weekday and time, in 20 characters at most."""
    text = slot_text(local(2026, 12, 2, 9, 30))
    assert text == "12月02日(周三)09:30" and len(text) <= 20


def test_a_kind_whose_name_is_too_long_for_the_texts_is_refused() -> None:
    """The kinds file is checked: a name the texts cannot carry is refused, named."""
    with pytest.raises(KindsError, match=r"kinds\.x"):
        parse_kinds({"kinds": {"x": {"name": "很" * 17, "bring": "身份证"}}})


# -- the service -----------------------------------------------------------------------


class Run:
    """One run of the gateway's booking side on a store."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        config = config_module.load(overrides=[f"bookings.token={TOKEN}"])
        sms = outbox_service(store, clock, config.sms)
        self.store = store
        self.service = BookingService(store, clock, config.bookings, sms, sms.quiet)


@asynccontextmanager
async def run_on(path: Path | str, clock: ManualClock) -> AsyncIterator[Run]:
    async with Store.open(path, clock) as store:
        yield Run(store, clock)


@pytest.fixture
async def run(store_location: Path | str, clock: ManualClock) -> AsyncIterator[Run]:
    async with run_on(store_location, clock) as opened:
        yield opened


async def outbox(store: Store, template: str) -> list[str]:
    return [m.body for m in reversed(await store.sms.recent(limit=500)) if m.template == template]


async def test_a_booking_is_stored_and_confirmed_with_slot_place_and_what_to_bring(
    run: Run,
) -> None:
    """A booking gets our number, its kind's list of what to bring, and one confirmation."""
    result = await run.service.book(booking())
    assert not result.replay
    assert result.booking.number == "B20261130-0001"
    assert result.booking.citizen_number == CITIZEN
    assert result.booking.remind_at == local(2026, 12, 1, 19)
    [text] = await outbox(run.store, "booking_confirmation")
    for part in (
        "出入境证件办理",
        "12月02日(周三)09:30",
        "出入境大厅3号窗口",
        "居民身份证",
        "B20261130-0001",
    ):
        assert part in text


async def test_the_same_reference_is_one_booking_and_other_content_a_conflict(run: Run) -> None:
    """Sent again, a reference answers the first booking (one text); with another slot it
    is refused naming the reference, and nothing is written."""
    first = await run.service.book(booking())
    again = await run.service.book(booking())
    assert again.replay and again.booking.id == first.booking.id
    with pytest.raises(BookingConflict) as info:
        await run.service.book(booking(slot="2026-12-02T10:30:00"))
    assert info.value.ref == "WX-1"
    assert len(await outbox(run.store, "booking_confirmation")) == 1


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"slot": "2026-11-30T09:00:00"}, "slot", "in the past"),
        ({"slot": "2027-06-01T09:00:00"}, "slot", "more than 90 days"),
        ({"slot": "明天上午"}, "slot", "not an ISO 8601 time"),
        ({"kind": "fishing_licence"}, "kind", "unknown kind"),
        ({"citizen_number": "12345"}, "citizen_number", ""),
        ({"citizen_number": "0539 812 3456"}, "citizen_number", "fixed line"),
        ({"place": "很" * 25}, "place", "longer than 24"),
        ({"bring": "很" * 41}, "bring", "longer than 40"),
        ({"reference": ""}, "reference", "missing"),
        ({"reference": "a/b"}, "reference", "slash"),
    ],
)
async def test_a_bad_booking_is_refused_naming_the_field_and_nothing_is_written(
    run: Run, changes: dict[str, str], field: str, reason: str
) -> None:
    """A booking in the past, of an unknown kind, with a number that cannot take texts…
    is refused with the field named; no booking and no text are stored."""
    with pytest.raises(BadBooking) as info:
        await run.service.book(booking(**changes))
    assert info.value.field == field and reason in info.value.reason
    assert await run.store.bookings.listed() == []
    assert await run.store.sms.recent() == []


async def test_cancelling_texts_once_and_a_second_cancel_is_refused(
    run: Run, clock: ManualClock
) -> None:
    """A cancelled booking gets one cancellation text and no reminder; cancelling again is
    refused, saying when it was cancelled."""
    await run.service.book(booking())
    cancelled = await run.service.cancel("WX-1", "行程有变")
    assert (cancelled.status, cancelled.reminder) == ("cancelled", "skipped")
    with pytest.raises(CancelRefused, match="already cancelled at 2026-11-30 10:00"):
        await run.service.cancel("WX-1")
    [text] = await outbox(run.store, "booking_cancelled")
    assert "B20261130-0001" in text and "12月02日(周三)09:30" in text
    clock.advance(local(2026, 12, 1, 19, 5) - clock.now())
    assert await run.service.remind_due() == 0
    assert await outbox(run.store, "booking_reminder") == []


async def test_a_booking_whose_slot_began_cannot_be_cancelled(run: Run, clock: ManualClock) -> None:
    """Once the slot has begun the booking stays as it was."""
    await run.service.book(booking())
    clock.advance(local(2026, 12, 2, 9, 31) - clock.now())
    with pytest.raises(CancelRefused, match="slot has begun"):
        await run.service.cancel("WX-1")


async def run_loop_cut(service: BookingService, rng: random.Random) -> None:
    """The supervised reminder loop, cancelled at a random moment (often mid-round)."""
    supervisor = Supervisor("bookings")
    supervisor.loop("reminders", service.remind_due, every=0.0)
    await asyncio.sleep(rng.uniform(0, 0.03))
    await supervisor.aclose()


async def test_each_reminder_goes_exactly_once_across_restarts(
    run: Run, clock: ManualClock, store_location: Path | str
) -> None:
    """Ten bookings for Wednesday: none is reminded before Tuesday 19:00; then the loop
    is cut at random moments and the gateway restarted, and each citizen gets exactly one
    reminder."""
    for n in range(10):
        await run.service.book(booking(f"WX-{n}", citizen_number=f"1391234{n:04d}"))
    rng = random.Random(3)
    clock.advance(local(2026, 12, 1, 18, 59) - clock.now())
    await run_loop_cut(run.service, rng)
    assert await outbox(run.store, "booking_reminder") == []
    clock.advance(timedelta(minutes=6))
    for _ in range(6):
        async with run_on(store_location, clock) as again:
            await run_loop_cut(again.service, rng)
    async with run_on(store_location, clock) as again:
        await again.service.remind_due()
    reminders = [
        m for m in await run.store.sms.recent(limit=500) if m.template == "booking_reminder"
    ]
    assert sorted(m.to for m in reminders) == [f"+861391234{n:04d}" for n in range(10)]
    assert all("请携带" in m.body for m in reminders)
    assert {b.reminder for b in await run.store.bookings.listed()} == {"sent"}


async def test_a_reminder_found_due_after_its_slot_began_is_skipped(
    run: Run, clock: ManualClock
) -> None:
    """The gateway was down all evening and night: a reminder for a slot already begun is
    not sent."""
    await run.service.book(booking())
    clock.advance(local(2026, 12, 2, 10, 0) - clock.now())
    assert await run.service.remind_due() == 0
    assert (await run.service.get("WX-1")).reminder == "skipped"
    assert await outbox(run.store, "booking_reminder") == []


async def test_the_booking_credential_is_required_and_checked(run: Run) -> None:
    """No credential or a wrong one is refused."""
    with pytest.raises(BookingRefused, match="missing"):
        run.service.authenticate(None)
    with pytest.raises(BookingRefused, match="wrong"):
        run.service.authenticate("booking-client-000000000")
    run.service.authenticate(TOKEN)


# -- the API on the running gateway ------------------------------------------------------


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway with bookings open, Monday 10:00 in Shanghai, reminders running."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    async with running_stack(
        tmp_path / "data", clock, overrides=[f"bookings.token={TOKEN}"]
    ) as running:
        yield running


async def call(
    stack: Stack, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    if token is not None:
        headers["X-Channel-Token"] = token
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        async with http.request(method, stack.url + path, **kwargs) as response:
            return response.status, await response.json()


def api_booking(ref: str = "WX-1", **changes: str) -> dict[str, str]:
    values = {
        "reference": ref,
        "kind": "vehicle_inspection",
        "citizen_number": "13912345678",
        "slot": "2026-12-02T14:00:00+08:00",
        "place": "东城机动车检测站",
        "bring": "行驶证、交强险保单",
    }
    values.update(changes)
    return values


async def texts_to(stack: Stack, number: str, word: str) -> list[str]:
    return [m.body for m in stack.twilio.messages if m.to == number and word in m.body]


async def test_the_api_books_confirms_by_text_and_cancels(stack: Stack) -> None:
    """201 and a confirmation reaching Twilio; the same booking again 200; GET shows it;
    cancel 200 and a cancellation text; a second cancel 409."""
    status, made = await call(stack, "POST", "/api/bookings", api_booking())
    assert status == 201 and made["number"] == "B20261130-0001" and not made["replay"]
    assert made["remind_at"] == "2026-12-01T11:00:00.000000+00:00"
    [confirmation] = await until(lambda: texts_to(stack, CITIZEN, "预约成功"))
    for part in (
        "机动车安全技术检验",
        "12月02日(周三)14:00",
        "东城机动车检测站",
        "行驶证、交强险保单",
    ):
        assert part in confirmation
    status, again = await call(stack, "POST", "/api/bookings", api_booking())
    assert status == 200 and again["replay"] and again["number"] == made["number"]
    status, shown = await call(stack, "GET", "/api/bookings/WX-1")
    assert status == 200 and shown["status"] == "booked" and shown["reminder"] == "due"
    status, cancelled = await call(stack, "POST", "/api/bookings/WX-1/cancel", {"reason": "改期"})
    assert status == 200 and cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "改期"
    await until(lambda: texts_to(stack, CITIZEN, "预约已取消"))
    status, refused = await call(stack, "POST", "/api/bookings/WX-1/cancel")
    assert status == 409 and refused["error"] == "cancel_refused"
    assert refused["details"] == {"reference": "WX-1"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slot": "2026-11-29T14:00:00+08:00"}, "slot"),
        ({"kind": "boat_licence"}, "kind"),
        ({"citizen_number": "not a number"}, "citizen_number"),
        ({"extra": "x"}, "extra"),
    ],
)
async def test_the_api_refuses_bad_bookings_naming_the_field(
    stack: Stack, changes: dict[str, str], field: str
) -> None:
    """A booking in the past, an unknown kind, a bad number, an unknown field: 400 naming it."""
    status, body = await call(stack, "POST", "/api/bookings", api_booking(**changes))
    assert status == 400 and body["error"] == "bad_field"
    assert body["details"]["field"] == field


async def test_the_api_answers_409_naming_a_reference_reused_with_other_content(
    stack: Stack,
) -> None:
    """The same reference with another slot is a conflict that names the reference."""
    assert (await call(stack, "POST", "/api/bookings", api_booking()))[0] == 201
    status, body = await call(
        stack, "POST", "/api/bookings", api_booking(slot="2026-12-03T14:00:00+08:00")
    )
    assert status == 409 and body["error"] == "reference_conflict"
    assert body["details"] == {"reference": "WX-1"} and "WX-1" in body["message"]


async def test_the_api_needs_the_booking_credential_and_knows_its_bookings(stack: Stack) -> None:
    """No credential: 403; a reference never booked: 404; cancelling it: 404."""
    status, body = await call(stack, "POST", "/api/bookings", api_booking(), token=None)
    assert status == 403 and body["error"] == "booking_refused"
    assert (await call(stack, "GET", "/api/bookings/NOPE"))[0] == 404
    assert (await call(stack, "POST", "/api/bookings/NOPE/cancel"))[0] == 404


def test_the_openapi_fragment_documents_exactly_the_booking_routes() -> None:
    """Every booking route is in the fragment with its method, nothing else is, and every
    reference in it names a schema it defines."""
    app = web.Application()
    add_bookings(app, run_reminders=False)
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    path = Path(__file__).resolve().parent.parent / "gateway/web/openapi/bookings.yaml"
    doc = yaml.safe_load(path.read_text("utf-8"))
    documented = {(method, url) for url, ops in doc["paths"].items() for method in ops}
    assert routed == documented
    schemas = doc["components"]["schemas"]
    refs: list[str] = []
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)
    assert schemas["BookingRequest"]["properties"]["kind"]["enum"] == list(load_kinds())


@pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)  # SQLite's plans
async def test_the_booking_queries_search_indexes_only(
    run: Run, clock: ManualClock, tmp_path: Path
) -> None:
    """Booking, numbering, cancelling, the reminder loop and a day's list search indexes:
    none scans the bookings or the texts."""
    statements: list[str] = []
    await run.store.db.conn.set_trace_callback(statements.append)
    for n in range(5):
        await run.service.book(booking(f"WX-{n}"))
    await run.service.cancel("WX-0")
    clock.advance(local(2026, 12, 1, 19, 5) - clock.now())
    assert await run.service.remind_due() == 4
    await run.store.bookings.listed(
        slot_from=local(2026, 12, 2, 0, 0), slot_until=local(2026, 12, 3, 0, 0)
    )
    await run.store.db.conn.set_trace_callback(None)
    mine = [s for s in statements if "bookings" in s]
    assert len(mine) > 10
    found = scans_of_big_tables(tmp_path / "gateway.sqlite3", mine)
    assert found == [], "\n".join(found)
