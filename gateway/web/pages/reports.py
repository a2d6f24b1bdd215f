"""The reports as pages, built from the store when asked (:mod:`gateway.reports`).

* ``/reports/daily/{YYYY-MM-DD}`` — the daily appeals log of a past day;
  ``/reports/daily`` opens yesterday's;
* ``/reports/weekly/{YYYY-Www}`` — the weekly report of a past week;
  ``/reports/weekly`` opens last week's;
* ``/reports/agenda/{YYYY-MM-DD}/{unit}`` — a sub-bureau's or county bureau's
  meeting agenda; ``/reports/agenda`` lists the meetings the viewer may open.

These are the links the leaders' texts carry. The daily log and the weekly report
cover the whole city: only those who see every unit open them; an agenda, only
those who see its unit. To anyone else they are not found (404). A day or week
that cannot have a report (still to come, not a date) is a 400 saying why.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from html import escape

from aiohttp import web

from gateway.reports.agenda import MEETING_KINDS
from gateway.reports.errors import OutOfScope, ReportRefused
from gateway.reports.making import catalogue_names
from gateway.reports.pages import agenda_page, daily_page, weekly_page
from gateway.reports.periods import week_key
from gateway.store.reports import ReportQueries
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.pages.html import error_page, html_response, nav, page
from gateway.web.pages.view import viewer
from gateway.web.scope import audit

_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
KIND_NAMES: web.AppKey[Mapping[str, str]] = web.AppKey("report_kind_names", Mapping)
NOT_YOURS = "没有这份报告，或您无权查看。"


def report_response(html: str) -> web.Response:
    """A report page: its own inline style is allowed by its hash, nothing else inline."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    ]
    styles = " ".join(hashes) or "'none'"
    response = html_response(html)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {styles}; base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    )
    return response


async def _names_context(app: web.Application) -> AsyncIterator[None]:
    app[KIND_NAMES] = await asyncio.to_thread(catalogue_names)  # reads the catalogue's file
    yield


async def _log_page(request: web.Request, kind: str) -> web.Response:
    scope = await viewer(request, page=True)
    if scope.unit_ids is not None:
        return error_page(404, NOT_YOURS)
    store, clock, config = request.app[STORE], request.app[CLOCK], request.app[CONFIG]
    key = request.match_info["key"]
    build = daily_page if kind == "daily" else weekly_page
    try:
        html = await build(
            store.reads or store.db, clock, config.reports, key, request.app[KIND_NAMES]
        )
    except ReportRefused as exc:
        return error_page(400, f"报告参数有误：{exc}")
    await audit(request, f"view_{kind}", key)
    return report_response(html)


async def get_daily(request: web.Request) -> web.Response:
    return await _log_page(request, "daily")


async def get_weekly(request: web.Request) -> web.Response:
    return await _log_page(request, "weekly")


async def latest_daily(request: web.Request) -> web.Response:
    await viewer(request, page=True)
    yesterday = request.app[CLOCK].local().date() - timedelta(days=1)
    raise web.HTTPFound(f"/reports/daily/{yesterday.isoformat()}")


async def latest_weekly(request: web.Request) -> web.Response:
    await viewer(request, page=True)
    last_week = request.app[CLOCK].local().date() - timedelta(days=7)
    raise web.HTTPFound(f"/reports/weekly/{week_key(last_week)}")


async def get_agenda(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    store, clock, config = request.app[STORE], request.app[CLOCK], request.app[CONFIG]
    reads = store.reads or store.db
    code, day = request.match_info["unit"], request.match_info["day"]
    unit = next((u for u in await ReportQueries(reads).units() if u.code == code), None)
    if unit is None or unit.kind not in MEETING_KINDS or not scope.sees_unit(unit.id):
        return error_page(404, NOT_YOURS)
    try:
        html = await agenda_page(
            reads, clock, config.reports, code, day, request.app[KIND_NAMES], scope.unit_ids
        )
    except OutOfScope:
        return error_page(404, NOT_YOURS)  # 404, never 403: what exists does not leak
    except ReportRefused as exc:
        return error_page(400, f"报告参数有误：{exc}")
    await audit(request, "view_agenda", f"{day}/{code}")
    return report_response(html)


async def list_agendas(request: web.Request) -> web.Response:
    """The next meeting of every sub-bureau and county bureau the viewer may see."""
    scope = await viewer(request, page=True)
    store, clock, config = request.app[STORE], request.app[CLOCK], request.app[CONFIG]
    units = [
        u
        for u in await ReportQueries(store.reads or store.db).units()
        if u.kind in MEETING_KINDS and scope.sees_unit(u.id)
    ]
    today = clock.local().date()
    day = next(
        today + timedelta(days=d)
        for d in range(8)
        if (today + timedelta(days=d)).isoweekday() in config.reports.meeting_weekdays
    )
    links = "".join(
        f'<li><a href="/reports/agenda/{day.isoformat()}/{escape(u.code)}">'
        f"{escape(u.name)} · {day.isoformat()} 调度会议程</a></li>"
        for u in units
    )
    body = (
        '<header><div><h1>调度会议程</h1><p class="sub">周二、周四、周六</p></div></header>'
        f'{nav("/reports/agenda")}<main class="single"><section class="card wide">'
        f"<h2>下次会议</h2><ul>{links or '<li class=empty>暂无可查看的会议</li>'}</ul>"
        "</section></main>"
    )
    return html_response(page("调度会议程 · 领导驾驶舱", body))


def add_report_pages(app: web.Application) -> None:
    app.cleanup_ctx.append(_names_context)
    app.router.add_get("/reports/daily", latest_daily)
    app.router.add_get("/reports/daily/{key}", get_daily)
    app.router.add_get("/reports/weekly", latest_weekly)
    app.router.add_get("/reports/weekly/{key}", get_weekly)
    app.router.add_get("/reports/agenda", list_agendas)
    app.router.add_get("/reports/agenda/{day}/{unit}", get_agenda)
