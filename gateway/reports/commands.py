"""``gateway report daily|weekly|agenda|period|board``: the leaders' reports on demand.

``daily`` and ``weekly`` make the report as the morning loop would (HTML and PDF in
the reports folder, the report marked made, the leaders' texts queued in the outbox,
once: made again, the files are rewritten and nobody is texted twice); ``agenda``
makes a meeting's agenda; ``period`` prints the six rates and writes them to an Excel
file; ``board`` prints the three colours with their reasons. A day, week, range or
unit a report cannot cover is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.calllog.commands import store_missing
from gateway.clock import Clock
from gateway.config import Config
from gateway.reports.board import COLOUR_NAMES, Thresholds, unit_board
from gateway.reports.errors import ReportRefused
from gateway.reports.making import Made, ReportMaker, catalogue_names
from gateway.reports.period import build_period, period_xlsx, render_period_text
from gateway.reports.periods import parse_day, parse_week, range_span
from gateway.sms.service import SmsService
from gateway.store import Store
from gateway.tables import render

HEADLINE_NAMES = {
    "answered": "热线人工接通",
    "queued": "转人工来电",
    "cases": "新立诉求",
    "rated": "首次回访评价",
    "satisfaction": "满意率",
    "dissatisfied": "不满意件",
    "overdue": "超期工单",
    "slow": "超期诉求",
    "red": "红色预警单位",
    "open_cases": "未办结诉求",
    "orders": "在办不满意件",
}


def register(sub: Any) -> None:
    report = sub.add_parser("report", help="the leaders' reports: daily log, weekly, agenda, rates")
    report_sub = report.add_subparsers(dest="report", metavar="REPORT", required=True)
    daily = report_sub.add_parser("daily", help="the daily appeals log of a past day")
    daily.add_argument(
        "--date", required=True, help="the day, YYYY-MM-DD (a past day, or today so far)"
    )
    daily.add_argument("--no-texts", action="store_true", help="do not text the leaders")
    daily.set_defaults(handler=_daily)
    weekly = report_sub.add_parser("weekly", help="the weekly report of a past ISO week")
    weekly.add_argument("--week", required=True, help="the week, e.g. 2026-W48 (or a day in it)")
    weekly.add_argument("--no-texts", action="store_true", help="do not text the leaders")
    weekly.set_defaults(handler=_weekly)
    agenda = report_sub.add_parser("agenda", help="a sub-bureau's meeting agenda")
    agenda.add_argument("--unit", required=True, help="the sub-bureau's code, e.g. LZ-DC")
    agenda.add_argument("--date", required=True, help="the meeting day, YYYY-MM-DD")
    agenda.set_defaults(handler=_agenda)
    period = report_sub.add_parser("period", help="the six rates over a range, by unit and kind")
    period.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
    period.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD")
    period.add_argument("--unit", default=None, help="one unit's code (with the units under it)")
    period.add_argument("--xlsx", type=Path, default=None, help="write an Excel file here")
    period.set_defaults(handler=_period)
    board = report_sub.add_parser("board", help="the three colours with their reasons")
    board.add_argument("--date", default=None, help="the window's last day (default today)")
    board.set_defaults(handler=_board)


@asynccontextmanager
async def _opened(config: Config) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock(ZoneInfo(config.gateway.timezone))
    async with Store.configured(config, clock) as store:
        yield store, clock


def _maker(store: Store, clock: Clock, config: Config, texts: bool) -> ReportMaker:
    sms = SmsService.from_config(store.sms, config, clock) if texts else None
    return ReportMaker(store, clock, config, sms, catalogue_names())


def _print_made(made: Made) -> None:
    for key, value in made.figures.items():
        if key in HEADLINE_NAMES:
            print(f"{HEADLINE_NAMES[key]}：{value}")
    print(f"HTML：{made.html}")
    print(f"PDF： {made.pdf}")
    if made.kind == "agenda":
        return
    if made.so_far:
        print("当日尚未结束：本日志为截至目前的数据，明晨将生成全天日志并再通知领导")
        print(f"已通知领导：{made.texts} 条短信（当日日志每位领导一天只发一次）")
    elif made.recorded:
        print(f"已通知领导：{made.texts} 条短信已排队")
    else:
        print("此前已生成并通知过，本次只重写文件，未重复发短信")


async def _daily(config: Config, args: argparse.Namespace) -> int:
    return await _log(config, "daily", parse_day(args.date), not args.no_texts)


async def _weekly(config: Config, args: argparse.Namespace) -> int:
    return await _log(config, "weekly", parse_week(args.week), not args.no_texts)


async def _log(config: Config, kind: str, first: date, texts: bool) -> int:
    """The daily log of the day ``first``, or the weekly report of the week it begins."""
    if store_missing(config):
        return 1
    async with _opened(config) as (store, clock):
        maker = _maker(store, clock, config, texts)
        make = maker.daily if kind == "daily" else maker.weekly
        made = await make(first, made_by="command", text=texts)
    print(f"{'民生诉求日志' if kind == 'daily' else '民生警务周报'} {made.key}")
    _print_made(made)
    return 0


async def _agenda(config: Config, args: argparse.Namespace) -> int:
    day = parse_day(args.date)
    if store_missing(config):
        return 1
    async with _opened(config) as (store, clock):
        made = await _maker(store, clock, config, False).agenda(args.unit, day, made_by="command")
    print(f"调度会议程 {made.key}")
    _print_made(made)
    return 0


async def _period(config: Config, args: argparse.Namespace) -> int:
    first, last = parse_day(args.first, "--from"), parse_day(args.last, "--to")
    if args.xlsx is not None and args.xlsx.suffix.lower() != ".xlsx":
        raise ReportRefused(f"--xlsx {args.xlsx}: the file name must end in .xlsx")
    if store_missing(config):
        return 1
    async with _opened(config) as (store, clock):
        span = range_span(first, last, clock.local().date(), clock.tz)
        report = await build_period(
            store.reads or store.db,
            span,
            now=clock.now(),
            unit_code=args.unit,
            kind_names=catalogue_names(),
        )
    print(render_period_text(report))
    if args.xlsx is not None:
        data = period_xlsx(report)
        await asyncio.to_thread(args.xlsx.write_bytes, data)
        print(f"\nExcel：{args.xlsx}")
    return 0


async def _board(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    async with _opened(config) as (store, clock):
        today = clock.local().date()
        day = parse_day(args.date) if args.date else today
        if day > today:
            raise ReportRefused(f"{day} is in the future (today is {today})")
        board = await unit_board(
            store.reads or store.db,
            day=day,
            scope_units=None,
            thresholds=Thresholds.from_config(config.reports),
            tz=clock.tz,
            now=clock.now(),
        )
    first = day - timedelta(days=config.reports.window_days - 1)
    print(f"三色预警：{first} 至 {day}（{config.reports.window_days} 天）")
    rows = [
        (
            u.unit_name,
            COLOUR_NAMES[u.colour],
            "—" if u.satisfaction_pct is None else f"{u.satisfaction_pct:.1f}%",
            "；".join(u.reasons),
        )
        for u in board
    ]
    print(render(("单位", "预警", "满意率", "原因"), rows, right=(2,)))
    return 0
