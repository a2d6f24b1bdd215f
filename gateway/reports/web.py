"""The reports' HTTP API (bearer token, under /api/):

* ``GET /api/reports/board?date=YYYY-MM-DD`` the three colours of every unit with their
  reasons, over the configured window ending that day (default today);
* ``GET /api/reports/period?from=…&to=…[&unit=CODE][&format=xlsx]`` the six rates by
  unit and by kind as JSON, or the Excel file.

A day, range or unit a report cannot cover is 400 ``bad_report`` with the reason in
one line. Figures are read on the read-only connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import date
from typing import Any

from aiohttp import web

from gateway.reports.board import Thresholds, unit_board
from gateway.reports.errors import ReportRefused
from gateway.reports.making import catalogue_names
from gateway.reports.period import RateRow, build_period, period_xlsx
from gateway.reports.periods import parse_day, range_span
from gateway.store.figures import Reads
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.errors import ApiError

KIND_NAMES: web.AppKey[dict[str, str]] = web.AppKey("report_kind_names", dict)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def add_report_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_names_context)
    app.router.add_get("/api/reports/board", get_board)
    app.router.add_get("/api/reports/period", get_period)


async def _names_context(app: web.Application) -> AsyncIterator[None]:
    app[KIND_NAMES] = await asyncio.to_thread(catalogue_names)
    yield


def _reads(request: web.Request) -> Reads:
    store = request.app[STORE]
    return store.reads or store.db


def _day(request: web.Request, name: str) -> date:
    text = request.query.get(name)
    if text is None:
        raise ApiError(400, "bad_report", f"{name} is required (YYYY-MM-DD)")
    try:
        return parse_day(text, name)
    except ReportRefused as exc:
        raise ApiError(400, "bad_report", str(exc)) from None


async def get_board(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    today = clock.local().date()
    day = _day(request, "date") if "date" in request.query else today
    if day > today:
        raise ApiError(400, "bad_report", f"{day} is in the future (today is {today})")
    section = request.app[CONFIG].reports
    board = await unit_board(
        _reads(request),
        day=day,
        scope_units=None,
        thresholds=Thresholds.from_config(section),
        tz=clock.tz,
        now=clock.now(),
    )
    return web.json_response(
        {
            "date": day.isoformat(),
            "window_days": section.window_days,
            "units": [asdict(unit) for unit in board],
        }
    )


def _row(row: RateRow) -> dict[str, Any]:
    return {
        **asdict(row),
        "callback_rate": row.callback_rate,
        "satisfaction": row.satisfaction,
        "on_time_rate": row.on_time_rate,
    }


async def get_period(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    first, last = _day(request, "from"), _day(request, "to")
    wanted = request.query.get("format", "json")
    if wanted not in ("json", "xlsx"):
        raise ApiError(400, "bad_report", f"format is json or xlsx, not {wanted!r}")
    names: dict[str, str] = request.app[KIND_NAMES]
    try:
        span = range_span(first, last, clock.local().date(), clock.tz)
        report = await build_period(
            _reads(request),
            span,
            now=clock.now(),
            unit_code=request.query.get("unit"),
            kind_names=names,
        )
    except ReportRefused as exc:
        raise ApiError(400, "bad_report", str(exc)) from None
    if wanted == "xlsx":
        body = await asyncio.to_thread(period_xlsx, report)
        name = f"rates-{first}-{last}.xlsx"
        return web.Response(
            body=body,
            content_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    h = report.hotline
    return web.json_response(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "unit": report.unit.code if report.unit else None,
            "hotline": {
                **asdict(h),
                "answer_rate": report.answer_rate,
                "answer_15s_rate": report.answer_15s_rate,
                "abandon_rate": report.abandon_rate,
            },
            "total": _row(report.total),
            "by_unit": [_row(r) for r in report.by_unit],
            "by_kind": [_row(r) for r in report.by_kind],
        }
    )
