"""The bookings API and the reminder loop.

* ``POST /api/bookings`` — a booking from a client (the service web sites, WeChat).
  Beside the API's bearer token the client sends the bookings credential as
  ``X-Channel-Token``. 201 with the booking when new, 200 when the reference was
  booked before with the same content, 409 naming the reference with other content.
* ``GET /api/bookings/{ref}`` — the booking and the state of its reminder.
* ``POST /api/bookings/{ref}/cancel`` ``{"reason"}`` — cancels it and texts the citizen;
  409 if it was cancelled already or its slot has begun.

The reminder loop (:meth:`BookingService.remind_due`) is supervised and stopped with
the application.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from gateway.bookings.exceptions import (
    BadBooking,
    BookingConflict,
    BookingRefused,
    CancelRefused,
    NoSuchBooking,
)
from gateway.bookings.service import FIELDS, BookingInput, BookingService, Kind, load_kinds
from gateway.clock import Clock, real_seconds, utc_iso
from gateway.cluster.wiring import led
from gateway.store.bookings import Booking
from gateway.supervise import Supervisor
from gateway.web.app import CLOCK, CONFIG, HEALTH_CHECKS, STORE
from gateway.web.errors import ApiError
from gateway.web.input import path_reference, read_json, string_fields
from gateway.web.sms import SMS

BOOKINGS = web.AppKey("bookings", BookingService)
BOOKING_REMINDERS = web.AppKey("booking_reminders", Supervisor)
CHANNEL_TOKEN_HEADER = "X-Channel-Token"


def bookings_feature(*, run_reminders: bool = True) -> Callable[[web.Application], None]:
    """The feature for :func:`~gateway.web.app.create_web_app` (after the SMS feature)."""
    return functools.partial(add_bookings, run_reminders=run_reminders)


def add_bookings(app: web.Application, *, run_reminders: bool = True) -> None:
    app.cleanup_ctx.append(functools.partial(_bookings_context, run_reminders))
    app.router.add_post("/api/bookings", post_booking)
    app.router.add_get("/api/bookings/{ref}", get_booking)
    app.router.add_post("/api/bookings/{ref}/cancel", cancel_booking)
    if run_reminders:
        app[HEALTH_CHECKS]["bookings"] = _check_reminders


async def _bookings_context(run_reminders: bool, app: web.Application) -> AsyncIterator[None]:
    config, clock = app[CONFIG], app[CLOCK]
    kinds = await asyncio.to_thread(load_kinds)
    sms = app[SMS]
    service = BookingService(app[STORE], clock, config.bookings, sms, sms.quiet, kinds=kinds)
    app[BOOKINGS] = service
    if not run_reminders:
        yield
        return
    supervisor = Supervisor("bookings")
    every = _every(clock, config.bookings.poll_seconds)
    # One gateway at a time reminds (the leader: gateway.cluster), where it runs.
    supervisor.loop("reminders", led(app, service.remind_due), every=every)
    app[BOOKING_REMINDERS] = supervisor
    try:
        yield
    finally:
        await supervisor.aclose()


def _every(clock: Clock, seconds: float) -> Callable[[], float]:
    return lambda: real_seconds(clock, seconds)


async def _check_reminders(app: web.Application) -> None:
    app[BOOKING_REMINDERS].check()


async def post_booking(request: web.Request) -> web.Response:
    service = request.app[BOOKINGS]
    with _mapped():
        service.authenticate(request.headers.get(CHANNEL_TOKEN_HEADER))
    values = string_fields(await read_json(request), FIELDS)
    with _mapped():
        result = await service.book(BookingInput(**values))
    payload = {**booking_json(result.booking, service.kinds), "replay": result.replay}
    return web.json_response(payload, status=200 if result.replay else 201)


async def get_booking(request: web.Request) -> web.Response:
    service = request.app[BOOKINGS]
    ref = path_reference(request, "ref")
    with _mapped():
        service.authenticate(request.headers.get(CHANNEL_TOKEN_HEADER))
        booking = await service.get(ref)
    return web.json_response(booking_json(booking, service.kinds))


async def cancel_booking(request: web.Request) -> web.Response:
    service = request.app[BOOKINGS]
    ref = path_reference(request, "ref")
    with _mapped():
        service.authenticate(request.headers.get(CHANNEL_TOKEN_HEADER))
    body = _object(await read_json(request)) if (await request.read()).strip() else {}
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ApiError(400, "bad_field", "reason: must be a string", {"field": "reason"})
    with _mapped():
        booking = await service.cancel(ref, reason)
    return web.json_response(booking_json(booking, service.kinds))


@contextmanager
def _mapped() -> Iterator[None]:
    """The service's refusals as HTTP errors naming the field or the reference."""
    try:
        yield
    except BadBooking as exc:
        raise ApiError(400, "bad_field", str(exc), {"field": exc.field}) from None
    except BookingRefused as exc:
        raise ApiError(403, "booking_refused", str(exc)) from None
    except BookingConflict as exc:
        raise ApiError(409, "reference_conflict", str(exc), {"reference": exc.ref}) from None
    except NoSuchBooking as exc:
        raise ApiError(404, "no_such_booking", str(exc), {"reference": exc.ref}) from None
    except CancelRefused as exc:
        raise ApiError(409, "cancel_refused", str(exc), {"reference": exc.ref}) from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def booking_json(booking: Booking, kinds: Mapping[str, Kind]) -> dict[str, Any]:
    """A booking as the API and ``gateway bookings list --json`` show it."""
    kind = kinds.get(booking.kind)
    return {
        "reference": booking.ref,
        "number": booking.number,
        "kind": booking.kind,
        "kind_name": kind.name if kind else booking.kind,
        "citizen_number": booking.citizen_number,
        "citizen_name": booking.citizen_name,
        "slot": utc_iso(booking.slot_at),
        "place": booking.place,
        "bring": booking.bring,
        "status": booking.status,
        "reminder": booking.reminder,
        "remind_at": utc_iso(booking.remind_at) if booking.remind_at else None,
        "cancelled_at": utc_iso(booking.cancelled_at) if booking.cancelled_at else None,
        "cancel_reason": booking.cancel_reason,
        "created_at": utc_iso(booking.created_at),
    }
