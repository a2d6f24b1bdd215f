"""``gateway callbacks`` (queue, outcomes, satisfaction), ``gateway callbacks import``
(served items from a CSV file) and ``gateway orders`` (rectification orders)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import LEVEL_NAMES
from gateway.callbacks.report import (
    DEFAULT_DAYS,
    OUTCOME_NAMES,
    STATUS_NAMES,
    BadPeriod,
    overall_row,
    parse_period,
    render_satisfaction,
    satisfaction_rows,
)
from gateway.callbacks.service import (
    CallbackError,
    CallbackService,
    CheckedItem,
    ServedItemInput,
)
from gateway.calllog.commands import store_missing
from gateway.clock import Clock, parse_utc
from gateway.config import Config
from gateway.phone import mask
from gateway.sms.service import SmsService
from gateway.store import Store
from gateway.store.figures import MAX_PAGE
from gateway.tables import render

CSV_COLUMNS = ("reference", "kind", "unit", "citizen_number", "served_at")
CSV_OPTIONAL = ("citizen_name", "officer")
ORDER_STATUS_NAMES = {"open": "整改中", "reported": "已报整改待回访", "closed": "已办结"}


def register(sub: Any) -> None:
    callbacks = sub.add_parser("callbacks", help="callback queue, outcomes and satisfaction")
    callbacks.add_argument(
        "--by",
        choices=("unit", "kind", "day"),
        default="unit",
        help="group the satisfaction table (default: unit)",
    )
    callbacks.add_argument(
        "--days", help=f"the last N local days, today included (default {DEFAULT_DAYS})"
    )
    callbacks.add_argument("--from", dest="first", help="first local day, YYYY-MM-DD")
    callbacks.add_argument("--to", dest="last", help="last local day, YYYY-MM-DD (default today)")
    callbacks.add_argument("--json", action="store_true", help="machine-readable output")
    callbacks.set_defaults(handler=_summary)
    cb_sub = callbacks.add_subparsers(dest="callbacks_command", metavar="ACTION")
    importer = cb_sub.add_parser("import", help="report served items from a CSV file")
    importer.add_argument(
        "file", type=Path, help=f"CSV with a header: {', '.join(CSV_COLUMNS + CSV_OPTIONAL)}"
    )
    importer.add_argument(
        "--all-or-none",
        action="store_true",
        help="import nothing if any row is refused (default: import every good row)",
    )
    importer.set_defaults(handler=_import)

    orders = sub.add_parser("orders", help="rectification orders by level and age")
    orders.add_argument(
        "--all", action="store_true", help="closed orders too, newest first, a page at a time"
    )
    orders.add_argument("--limit", type=int, default=50, help="orders a page with --all (50)")
    orders.add_argument("--before", type=int, help="with --all: the page after this order id")
    orders.add_argument("--json", action="store_true", help="machine-readable output")
    orders.set_defaults(handler=_orders)


def build_service(store: Store, config: Config, clock: Clock) -> CallbackService:
    """The callback service with the outbox as its texter (no worker: nothing is sent here)."""
    sms = SmsService.from_config(store.sms, config, clock)
    return CallbackService(store, clock, load_catalogue(), config.callbacks, sms)


async def _summary(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    clock = Clock()
    try:
        period = parse_period(clock, args.days, args.first, args.last)
    except BadPeriod as exc:
        print(f"gateway callbacks: {exc}", file=sys.stderr)
        return 2
    catalogue = load_catalogue()
    names = {k.code: k.name for k in catalogue}
    since, until = period.since, period.until
    async with Store.configured(config, clock) as store:
        figures = store.figures
        statuses = await figures.item_counts(since, until)
        outcomes = await figures.attempt_outcomes(since, until)
        table = satisfaction_rows(await figures.satisfaction(since, until, args.by, names))
        orders = await figures.order_counts(since, until)
    overall = overall_row(table)
    if args.json:
        json.dump(
            {
                "period": period.as_json(),
                "items": statuses,
                "attempts": outcomes,
                "satisfaction": [row.as_json() for row in table],
                "overall": overall[0].as_json() if overall else None,
                "orders": {s: orders.get(s, 0) for s in ORDER_STATUS_NAMES},
            },
            sys.stdout,
            ensure_ascii=False,
            indent=2,
        )
        print()
        return 0
    print(f"统计期：{period.first} 至 {period.last}（待办为当前全部）")
    print("回访队列")
    print(
        render(
            ["状态", "件数"], [[STATUS_NAMES.get(k, k), v] for k, v in statuses.items()], right=[1]
        )
    )
    print("\n回访结果（按次）")
    print(
        render(
            ["结果", "次数"], [[OUTCOME_NAMES.get(k, k), v] for k, v in outcomes.items()], right=[1]
        )
    )
    heading = {"unit": "单位", "kind": "业务", "day": "日期"}[args.by]
    print(f"\n首次回访满意率（按{heading}）")
    print(render_satisfaction(table + overall, heading))
    return 0


async def _import(config: Config, args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    except OSError as exc:
        print(f"gateway: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        print(f"gateway: {path}: missing columns {', '.join(missing)}", file=sys.stderr)
        return 2
    clock = Clock()
    added = duplicates = 0
    refused: list[str] = []
    async with Store.configured(config, clock) as store:
        service = build_service(store, config, clock)
        # Every row is checked before any is written; --all-or-none then writes none.
        checked: list[CheckedItem] = []
        try:
            for row in reader:
                line = reader.line_num
                if None in row or None in row.values():
                    refused.append(f"{path}:{line}: not as many fields as the header names")
                    continue
                values = {k: (row.get(k) or "") for k in CSV_COLUMNS + CSV_OPTIONAL}
                try:
                    checked.append(await service.check(ServedItemInput(**values)))
                except CallbackError as exc:
                    refused.append(f"{path}:{line}: {exc}")
        except csv.Error as exc:
            print(f"gateway: {path}:{reader.line_num}: not readable CSV: {exc}", file=sys.stderr)
            return 2
        if not (refused and args.all_or_none):
            # One transaction: a store failure part-way imports nothing, never half a file.
            stored = await service.add_many(checked, source=f"csv:{path.name}")
            added = sum(1 for item in stored if item is not None)
            duplicates = len(stored) - added
    for message in refused:
        print(message, file=sys.stderr)
    if refused and args.all_or_none:
        print(f"{path}: {len(refused)} rows refused; nothing imported (--all-or-none)")
        return 1
    print(
        f"{path}: {added} served items added, {duplicates} already reported, {len(refused)} refused"
    )
    return 1 if refused else 0


async def _orders(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    clock = Clock()
    statuses = ("open", "reported", "closed") if args.all else ("open", "reported")
    now = clock.now()
    if args.all and not 1 <= args.limit <= MAX_PAGE:
        print(f"gateway orders: --limit must be 1 to {MAX_PAGE}", file=sys.stderr)
        return 2
    async with Store.configured(config, clock) as store:
        if args.all:
            listed = await store.figures.orders_page(statuses, limit=args.limit, before=args.before)
        else:
            listed = await store.figures.active_orders()
        events_of = await store.figures.order_events_of([o.order.id for o in listed])
        rows: list[dict[str, Any]] = []
        for entry in listed:
            order = entry.order
            events = events_of[order.id]
            rows.append(
                {
                    "ref": order.ref,
                    "level": order.level,
                    "level_name": LEVEL_NAMES[order.level],
                    "status": order.status,
                    "id": order.id,
                    "unit": entry.unit_name,
                    "item": entry.item_reference,
                    "citizen_number": entry.citizen_number,
                    "created_at": order.created_at.isoformat(),
                    "deadline_at": order.deadline_at.isoformat(),
                    "age_hours": round((now - order.created_at).total_seconds() / 3600, 1),
                    "reported_by": order.reported_by,
                    "report_note": order.report_note,
                    "closed_at": order.closed_at.isoformat() if order.closed_at else None,
                    "hours_to_close": round(
                        (order.closed_at - order.created_at).total_seconds() / 3600, 1
                    )
                    if order.closed_at
                    else None,
                    "texts": sum(1 for e in events if e.action == "notified"),
                    "events": [
                        {
                            "at": e.at.isoformat(),
                            "level": e.level,
                            "action": e.action,
                            "actor": e.actor,
                            "note": e.note,
                        }
                        for e in events
                    ],
                }
            )
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    if not rows:
        print("没有整改中的工单" if not args.all else "没有工单")
        return 0
    table = [
        [
            r["ref"],
            f"{r['level']} {r['level_name']}",
            ORDER_STATUS_NAMES[r["status"]],
            r["unit"],
            mask(r["citizen_number"]),
            f"{r['age_hours']:.0f}h",
            clock.local(parse_utc(r["deadline_at"])).strftime("%m-%d %H:%M"),
            r["texts"],
            r["reported_by"] or "",
        ]
        for r in rows
    ]
    print(
        render(
            ["工单号", "级别", "状态", "责任单位", "群众电话", "已过", "期限", "短信", "整改人"],
            table,
            right=[5, 7],
        )
    )
    by_level: dict[int, int] = {}
    for r in rows:
        by_level[r["level"]] = by_level.get(r["level"], 0) + 1
    print("\n" + "，".join(f"{LEVEL_NAMES[k]}：{v}件" for k, v in sorted(by_level.items())))
    if args.all and len(rows) == args.limit:
        print(f"下一页：gateway orders --all --limit {args.limit} --before {rows[-1]['id']}")
    return 0
