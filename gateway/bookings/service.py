"""Bookings by SMS: a slot booked on the web sites or WeChat is confirmed, reminded and
cancelled by text.

A booking is checked whole before anything is written, then stored in one write
transaction with its confirmation text (slot, place, what to bring). The client's
reference makes booking idempotent: the same reference with the same content answers
the first booking again; with other content it is a :class:`BookingConflict`.
Cancelling writes the cancellation text in the same transaction; a second cancel is
refused, as is one after the slot has begun.

**The evening-before reminder** (:func:`reminder_at`) is planned at booking:

* at ``bookings.reminder_time`` (local, default 19:00) on the day before the slot;
* if that moment is inside the SMS quiet hours (``sms.quiet_start``–``quiet_end``),
  one hour before the quiet hours begin that day instead (19:00 with quiet hours from
  21:00 stays; 22:00 becomes 20:00); should that too be quiet, noon of that day;
* if the moment has already passed when the booking is made (booked that evening,
  or for the next morning), no reminder is sent: the confirmation, sent now, already
  carries the slot, the place and what to bring.

The reminder loop (:meth:`BookingService.remind_due`) marks each reminder ``sent`` in
the same transaction that queues its text, so it goes exactly once across restarts;
a reminder found due only after its slot has begun (the gateway was down) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from gateway.bookings.exceptions import (
    BadBooking,
    BookingConflict,
    BookingRefused,
    CancelRefused,
    KindsError,
    NoSuchBooking,
)
from gateway.callbacks.service import Texter
from gateway.clock import Clock
from gateway.config import BookingsSection
from gateway.limits import BadText, check_name, check_reference
from gateway.phone import InvalidPhoneNumber, Use, mask, to_e164
from gateway.sms.policy import QuietHours
from gateway.store import Store
from gateway.store.bookings import Booking, NewBooking
from gateway.web.auth import token_matches

log = logging.getLogger(__name__)

FIELDS = ("reference", "kind", "citizen_number", "citizen_name", "slot", "place", "bring")
REQUIRED = ("reference", "kind", "citizen_number", "slot", "place")
# What the texts can carry whole (vars.place and vars.bring of the booking templates).
MAX_PLACE = 24
MAX_BRING = 40
MAX_KIND_NAME = 16
MAX_REASON = 200
WEEKDAYS = "一二三四五六日"


@dataclass(frozen=True)
class Kind:
    code: str
    name: str
    bring: str


def parse_kinds(data: Mapping[str, Any], source: str = "kinds") -> dict[str, Kind]:
    """The kinds of a parsed kinds file; :class:`KindsError` naming the first bad entry."""
    table = data.get("kinds")
    if not isinstance(table, Mapping) or not table:
        raise KindsError(f"{source}: no [kinds.CODE] tables")
    kinds: dict[str, Kind] = {}
    for code, spec in table.items():
        if not isinstance(spec, Mapping) or set(spec) != {"name", "bring"}:
            raise KindsError(f"{source}: [kinds.{code}] needs exactly name and bring")
        name, bring = spec["name"], spec["bring"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_KIND_NAME:
            raise KindsError(f"{source}: [kinds.{code}] name: 1–{MAX_KIND_NAME} characters")
        if not isinstance(bring, str) or not 0 < len(bring) <= MAX_BRING:
            raise KindsError(f"{source}: [kinds.{code}] bring: 1–{MAX_BRING} characters")
        kinds[code] = Kind(code, name, bring)
    return kinds


def load_kinds() -> dict[str, Kind]:
    text = resources.files(__package__).joinpath("kinds.toml").read_text("utf-8")
    return parse_kinds(tomllib.loads(text), "kinds.toml")


def reminder_at(
    slot: datetime, *, evening: time, quiet: QuietHours, tz: ZoneInfo, now: datetime
) -> datetime | None:
    """When the reminder of a booking for ``slot`` goes (see the module docstring); None
    when that moment has passed already."""
    day_before: date = slot.astimezone(tz).date() - timedelta(days=1)
    planned = datetime.combine(day_before, evening, tzinfo=tz)
    if quiet.contains(planned):
        planned = datetime.combine(day_before, quiet.start, tzinfo=tz) - timedelta(hours=1)
        if quiet.contains(planned) or planned.date() != day_before:
            planned = datetime.combine(day_before, time(12), tzinfo=tz)
    if quiet.contains(planned) or planned <= now:
        return None
    return planned


def slot_text(local: datetime) -> str:
    """A slot as a text shows it: ``12月02日(周三)09:30``."""
    return f"{local:%m月%d日}(周{WEEKDAYS[local.weekday()]}){local:%H:%M}"


@dataclass(frozen=True)
class BookingInput:
    """One booking as a client sends it (all strings, as received)."""

    reference: str
    kind: str
    citizen_number: str
    slot: str  # ISO 8601; local time if it has no offset
    place: str
    citizen_name: str = ""
    bring: str = ""


@dataclass(frozen=True)
class BookingResult:
    booking: Booking
    replay: bool  # the reference was booked before: nothing new was written


class BookingService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: BookingsSection,
        texter: Texter,
        quiet: QuietHours,
        *,
        kinds: Mapping[str, Kind] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.texter = texter
        self.quiet = quiet
        self.kinds = dict(kinds) if kinds is not None else load_kinds()
        self.evening = time.fromisoformat(settings.reminder_time)

    def authenticate(self, token: str | None) -> None:
        """Refuse unless ``token`` is the booking clients' credential."""
        if not self.settings.token:
            raise BookingRefused("bookings are shut: bookings.token is not set")
        if not token:
            raise BookingRefused("missing booking credential (X-Channel-Token)")
        if not token_matches(self.settings.token, token):
            raise BookingRefused("wrong booking credential")

    # -- booking ------------------------------------------------------------------------

    async def check(self, raw: BookingInput) -> NewBooking:
        """The booking with its values cleaned, or :class:`BadBooking` naming the field."""
        for name in REQUIRED:
            if not str(getattr(raw, name)).strip():
                raise BadBooking(name, "missing")
        try:
            ref = check_reference(raw.reference, "reference")
            name = check_name(raw.citizen_name, "citizen_name")
            place = check_name(raw.place, "place", MAX_PLACE)
            bring = check_name(raw.bring, "bring", MAX_BRING)
        except BadText as exc:
            raise BadBooking(exc.field, exc.reason) from None
        kind = self.kinds.get(raw.kind.strip())
        if kind is None:
            raise BadBooking("kind", f"unknown kind (known: {', '.join(self.kinds)})")
        try:
            number = to_e164(raw.citizen_number, use=Use.TEXT)
        except InvalidPhoneNumber as exc:
            raise BadBooking("citizen_number", exc.reason) from None
        slot = self._slot(raw.slot)
        new = NewBooking(
            ref=ref,
            digest="",
            kind=kind.code,
            citizen_number=number,
            citizen_name=name,
            slot_at=slot,
            place=place,
            bring=bring or kind.bring,
            remind_at=reminder_at(
                slot, evening=self.evening, quiet=self.quiet, tz=self.clock.tz, now=self.clock.now()
            ),
        )
        content = {k: str(v) for k, v in asdict(new).items() if k not in ("ref", "digest")}
        content.pop("remind_at")  # planned from the time of booking, not the client's content
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return replace(new, digest=digest)

    def _slot(self, text: str) -> datetime:
        shown = text.strip()[:40]
        try:
            slot = datetime.fromisoformat(text.strip())
            if slot.tzinfo is None:
                slot = slot.replace(tzinfo=self.clock.tz)
            slot = slot.astimezone(self.clock.tz)
        except (ValueError, OverflowError):
            raise BadBooking("slot", f"{shown!r} is not an ISO 8601 time") from None
        now = self.clock.now()
        if slot <= now:
            raise BadBooking("slot", f"{shown!r} is in the past")
        if slot > now + timedelta(days=self.settings.max_days_ahead):
            days = self.settings.max_days_ahead
            raise BadBooking(
                "slot", f"{shown!r} is more than {days} days ahead (bookings.max_days_ahead)"
            )
        return slot

    async def book(self, raw: BookingInput) -> BookingResult:
        """Take one booking and queue its confirmation, or answer a replay of it."""
        new = await self.check(raw)
        async with self.store.db.transaction() as conn:
            seen = await self.store.bookings.by_ref(new.ref, conn)
            if seen is not None:
                if seen.digest != new.digest:
                    raise BookingConflict(new.ref)
                return BookingResult(seen, replay=True)
            booking = await self.store.bookings.insert(conn, new)
            await self._text(conn, booking, "booking_confirmation", "confirm")
        log.info(
            "booking %s (%s) for %s at %s; reminder %s",
            booking.number,
            booking.kind,
            mask(booking.citizen_number),
            self.clock.local(booking.slot_at).strftime("%Y-%m-%d %H:%M"),
            self.clock.local(booking.remind_at).strftime("%Y-%m-%d %H:%M")
            if booking.remind_at
            else "none",
        )
        return BookingResult(booking, replay=False)

    async def get(self, ref: str) -> Booking:
        booking = await self.store.bookings.by_ref(ref.strip())
        if booking is None:
            raise NoSuchBooking(ref)
        return booking

    async def cancel(self, ref: str, reason: str = "") -> Booking:
        """Cancel a booking and queue the cancellation text, in one transaction."""
        try:
            reason = check_name(reason, "reason", MAX_REASON)
        except BadText as exc:
            raise BadBooking(exc.field, exc.reason) from None
        async with self.store.db.transaction() as conn:
            booking = await self.store.bookings.by_ref(ref.strip(), conn)
            if booking is None:
                raise NoSuchBooking(ref)
            if booking.status == "cancelled":
                assert booking.cancelled_at is not None
                when = self.clock.local(booking.cancelled_at).strftime("%Y-%m-%d %H:%M")
                raise CancelRefused(booking.ref, f"already cancelled at {when}")
            if booking.slot_at <= self.clock.now():
                raise CancelRefused(booking.ref, "its slot has begun; it cannot be cancelled")
            if not await self.store.bookings.cancel(conn, booking.id, reason):
                raise CancelRefused(booking.ref, "changed meanwhile, try again")
            await self._text(conn, booking, "booking_cancelled", "cancel")
        log.info("booking %s cancelled", booking.number)
        return await self.get(booking.ref)

    # -- the reminder loop ----------------------------------------------------------------

    async def remind_due(self) -> int:
        """Queue every due reminder, each marked sent in the transaction that queues it.
        Returns how many were queued."""
        now = self.clock.now()
        sent = 0
        for booking in await self.store.bookings.due_reminders(now):
            async with self.store.db.transaction() as conn:
                if booking.slot_at <= now:
                    if await self.store.bookings.settle_reminder(conn, booking.id, "skipped"):
                        log.warning("booking %s: reminder skipped, its slot began", booking.number)
                    continue
                if not await self.store.bookings.settle_reminder(conn, booking.id, "sent"):
                    continue  # cancelled or sent meanwhile
                await self._text(conn, booking, "booking_reminder", "remind")
            sent += 1
        return sent

    async def _text(
        self, conn: aiosqlite.Connection, booking: Booking, template: str, step: str
    ) -> None:
        kind = self.kinds.get(booking.kind)
        variables: dict[str, object] = {
            "business": kind.name if kind else booking.kind,
            "slot": slot_text(self.clock.local(booking.slot_at)),
            "place": booking.place,
            "booking_ref": booking.number,
            "hotline": self.settings.hotline,
        }
        if template != "booking_cancelled":
            variables["bring"] = booking.bring
        await self.texter.enqueue(
            purpose="booking",
            to=booking.citizen_number,
            template=template,
            variables=variables,
            idempotency_key=f"booking:{booking.id}:{step}",
            conn=conn,
        )
