"""``gateway bookings list`` and ``gateway bookings cancel REF``.

The list is for people (Chinese labels, local times, masked numbers); ``--json`` is for
tools. Cancelling queues the cancellation text in the store's outbox, which the running
gateway sends. A refusal (no such booking, already cancelled, slot begun) is one line
on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.bookings.service import BookingService, load_kinds
from gateway.bookings.web import booking_json
from gateway.calllog.commands import store_missing
from gateway.clock import Clock
from gateway.config import Config
from gateway.phone import mask
from gateway.sms.service import SmsService
from gateway.store import Store
from gateway.tables import render

STATUS_NAMES = {"booked": "已预约", "cancelled": "已取消"}
REMINDER_NAMES = {"due": "待提醒", "sent": "已提醒", "none": "无需提醒", "skipped": "未提醒"}


def register(sub: Any) -> None:
    bookings = sub.add_parser("bookings", help="bookings by SMS: list them, or cancel one")
    actions = bookings.add_subparsers(dest="bookings_command", metavar="ACTION", required=True)
    listed = actions.add_parser("list", help="bookings by slot, with the state of their texts")
    listed.add_argument("--status", choices=tuple(STATUS_NAMES), help="only this status")
    listed.add_argument("--day", type=_day, metavar="YYYY-MM-DD", help="only slots of this day")
    listed.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listed.add_argument("--json", action="store_true", help="JSON for tools, full numbers")
    listed.set_defaults(handler=_list)
    cancel = actions.add_parser("cancel", help="cancel a booking; the citizen is texted")
    cancel.add_argument("ref", help="the client's reference of the booking")
    cancel.add_argument("--reason", default="", help="why, kept on the booking")
    cancel.set_defaults(handler=_cancel)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


async def _list(config: Config, args: argparse.Namespace) -> int:
    if args.limit < 1:
        print(f"gateway: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    if store_missing(config):
        return 1
    tz = ZoneInfo(config.gateway.timezone)
    start = end = None
    if args.day is not None:
        start = datetime.combine(args.day, time(0), tzinfo=tz)
        end = start + timedelta(days=1)
    async with Store.configured(config, Clock(tz)) as store:
        found = await store.bookings.listed(
            status=args.status, slot_from=start, slot_until=end, limit=args.limit
        )
    kinds = load_kinds()
    if args.json:
        print(json.dumps([booking_json(b, kinds) for b in found], ensure_ascii=False, indent=1))
        return 0
    if not found:
        print("没有符合条件的预约。")
        return 0
    headers = ["预约号", "业务", "时间", "地点", "群众", "电话", "状态", "提醒", "客户端编号"]
    rows = [
        [
            b.number,
            kinds[b.kind].name if b.kind in kinds else b.kind,
            b.slot_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            b.place,
            b.citizen_name,
            mask(b.citizen_number),
            STATUS_NAMES.get(b.status, b.status),
            REMINDER_NAMES.get(b.reminder, b.reminder),
            b.ref,
        ]
        for b in found
    ]
    print(render(headers, rows))
    return 0


async def _cancel(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    clock = Clock(ZoneInfo(config.gateway.timezone))
    async with Store.configured(config, clock) as store:
        sms = SmsService.from_config(store.sms, config, clock)
        service = BookingService(store, clock, config.bookings, sms, sms.quiet)
        cancelled = await service.cancel(args.ref, args.reason)
    print(f"预约 {cancelled.number}（{cancelled.ref}）已取消，取消短信已排队发送。")
    return 0
