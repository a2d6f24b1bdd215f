"""The three-colour board and a unit's own page.

* ``/dashboard/board`` (and ``board.json``) — every unit the viewer may see, red
  first, each with its colour and the reasons in words
  (:func:`gateway.reports.board.unit_board`, over the configured rolling window
  ending with the day shown);
* ``/dashboard/units/{code}`` — one unit: its colour and reasons, its satisfaction
  by day, and its cases (those still to handle first), each opening its timeline.

A unit outside the viewer's units is not found (404), as one that does not exist.
"""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any

from aiohttp import web

from gateway.reports.board import COLOUR_NAMES, Thresholds, UnitColour, subtrees, unit_board
from gateway.store.cases import CATEGORY_NAMES, OPEN_STATUSES, STATUS_NAMES
from gateway.store.reports import ReportQueries
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.errors import ApiError
from gateway.web.pages.charts import CHART_DAYS, day_picker
from gateway.web.pages.html import error_page, html_response, nav, page
from gateway.web.pages.svg import Point, line_chart
from gateway.web.pages.view import ShownDay, shown_day, viewer
from gateway.web.scope import Scope, audit


async def board_data(request: web.Request, scope: Scope, shown: ShownDay) -> dict[str, Any]:
    store, clock = request.app[STORE], request.app[CLOCK]
    thresholds = Thresholds.from_config(request.app[CONFIG].reports)
    board = await unit_board(
        store.reads or store.db,
        day=shown.day,
        scope_units=scope.unit_ids,
        thresholds=thresholds,
        tz=clock.tz,
        now=clock.now(),
    )
    return {
        "day": shown.label,
        "window_days": thresholds.window_days,
        "units": [_unit_json(u) for u in board],
        "counts": {c: sum(1 for u in board if u.colour == c) for c in ("red", "yellow", "green")},
    }


def _unit_json(u: UnitColour) -> dict[str, Any]:
    return {
        "unit": u.unit_code,
        "name": u.unit_name,
        "colour": u.colour,
        "colour_name": COLOUR_NAMES[u.colour],
        "reasons": list(u.reasons),
        "satisfaction_pct": u.satisfaction_pct,
        "dissatisfied": u.dissatisfied,
        "overdue_orders": u.overdue_orders,
        "overdue_cases": u.overdue_cases,
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _board_rows(units: list[dict[str, Any]], day: str) -> str:
    if not units:
        return '<tr><td colspan="7" class="empty">暂无可查看的单位</td></tr>'
    rows = []
    for u in units:
        reasons = "".join(f"<li>{escape(r)}</li>" for r in u["reasons"])
        rows.append(
            f'<tr data-unit="{escape(u["unit"])}" data-colour="{escape(u["colour"])}">'
            f'<td><a href="/dashboard/units/{escape(u["unit"])}?day={day}">'
            f"{escape(u['name'])}</a></td>"
            f'<td><span class="mark {escape(u["colour"])}">{escape(u["colour_name"])}</span></td>'
            f'<td class="n">{_pct(u["satisfaction_pct"])}</td>'
            f'<td class="n">{u["dissatisfied"]}</td><td class="n">{u["overdue_orders"]}</td>'
            f'<td class="n">{u["overdue_cases"]}</td>'
            f'<td><ul class="reasons">{reasons}</ul></td></tr>'
        )
    return "".join(rows)


def board_page(data: dict[str, Any], picker: str) -> str:
    counts = data["counts"]
    body = f"""
<header><div><h1>三色预警</h1><p class="sub">统计日 {escape(data["day"])}，
近 {data["window_days"]} 天滚动 · 红 {counts["red"]} · 黄 {counts["yellow"]} ·
绿 {counts["green"]}</p></div></header>
{nav("/dashboard/board")}{picker}
<main class="single"><section class="card wide"><h2>各单位三色预警及原因</h2>
<table id="board"><thead><tr><th>单位</th><th>预警</th><th>满意率</th><th>不满意</th>
<th>超期工单</th><th>超期诉求</th><th>原因</th></tr></thead>
<tbody>{_board_rows(data["units"], escape(data["day"]))}</tbody></table></section></main>"""
    return page("三色预警 · 领导驾驶舱", body)


async def get_board(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    try:
        shown = await shown_day(request, scope)
    except ApiError as exc:
        return error_page(exc.status, f"查询条件有误：{exc.message}")
    data = await board_data(request, scope, shown)
    await audit(request, "view_board", "/dashboard/board", f"day={shown.label}")
    return html_response(board_page(data, day_picker(shown, "/dashboard/board")))


async def get_board_json(request: web.Request) -> web.Response:
    scope = await viewer(request, page=False)
    shown = await shown_day(request, scope)
    response = web.json_response(await board_data(request, scope, shown))
    response.headers["Cache-Control"] = "no-store"
    return response


# -- one unit -------------------------------------------------------------------------


async def unit_data(request: web.Request, scope: Scope, shown: ShownDay) -> dict[str, Any] | None:
    """The unit named in the URL as the viewer may see it; None if it may not."""
    store, clock = request.app[STORE], request.app[CLOCK]
    reads = store.reads or store.db
    units = await ReportQueries(reads).units()
    code = request.match_info["code"]
    unit = next((u for u in units if u.code == code), None)
    if unit is None or not scope.sees_unit(unit.id):
        return None
    members = frozenset(subtrees(units)[unit.id])
    if scope.unit_ids is not None:
        members &= scope.unit_ids
    board = await board_data(request, scope, shown)
    colour = next((u for u in board["units"] if u["unit"] == code), None)
    first = shown.day - timedelta(days=CHART_DAYS - 1)
    days = await store.dashboard.satisfaction_by_day(first, shown.day, members)
    cases = await store.dashboard.unit_cases(members)
    return {
        "day": shown.label,
        "unit": {"code": unit.code, "name": unit.name, "kind": unit.kind},
        "board": colour,
        "satisfaction_by_day": [
            {"day": d.day.isoformat(), "rate": None if d.rate is None else round(d.rate, 4)}
            for d in days
        ],
        "cases": [
            {
                "number": c.number,
                "category_name": CATEGORY_NAMES.get(c.category, c.category),
                "status": c.status,
                "status_name": STATUS_NAMES.get(c.status, c.status),
                "subject": c.subject,
                "unit_name": c.unit_name,
                "open": c.status in OPEN_STATUSES,
                "deadline": None
                if c.deadline is None
                else clock.local(c.deadline).strftime("%Y-%m-%d %H:%M"),
                "overdue": c.status in OPEN_STATUSES
                and c.deadline is not None
                and c.deadline <= clock.now(),
            }
            for c in cases
        ],
    }


def unit_page(data: dict[str, Any], picker: str) -> str:
    unit, colour = data["unit"], data["board"]
    if colour is None:
        verdict = '<p class="sub">该单位不参加三色评价。</p>'
    else:
        reasons = "".join(f"<li>{escape(r)}</li>" for r in colour["reasons"])
        verdict = (
            f'<p><span class="mark {escape(colour["colour"])}" id="unit-colour">'
            f"{escape(colour['colour_name'])}</span> 满意率 {_pct(colour['satisfaction_pct'])}"
            f" · 不满意 {colour['dissatisfied']} · 超期工单 {colour['overdue_orders']}"
            f' · 超期诉求 {colour["overdue_cases"]}</p><ul class="reasons" id="unit-reasons">'
            f"{reasons}</ul>"
        )
    chart = line_chart(
        [Point(d["day"][5:], d["rate"]) for d in data["satisfaction_by_day"]],
        title=f"{unit['name']} 首次回访满意率",
        percent=True,
        floor=0.6,
    )
    rows = "".join(
        f'<tr data-case="{escape(c["number"])}"><td class="mono">'
        f'<a href="/dashboard/cases/{escape(c["number"])}">{escape(c["number"])}</a></td>'
        f"<td>{escape(c['category_name'])}</td><td>{escape(c['subject'])}</td>"
        f"<td>{escape(c['unit_name'])}</td><td>{escape(c['status_name'])}</td>"
        f"<td>{escape(c['deadline'] or '—')}"
        f"{' <span class=late>已超期</span>' if c['overdue'] else ''}</td></tr>"
        for c in data["cases"]
    )
    body = f"""
<header><div><h1>{escape(unit["name"])}</h1><p class="sub">{escape(unit["code"])} ·
统计日 {escape(data["day"])}</p></div></header>
{nav("")}{picker}
<main class="single"><section class="card wide"><h2>三色预警</h2>{verdict}</section>
<section class="card wide chart-card" id="chart-unit-satisfaction"><h2>满意率（按日）</h2>
{chart}</section>
<section class="card wide"><h2>诉求（待办在前）</h2><table id="unit-cases"><thead><tr>
<th>编号</th><th>类别</th><th>标题</th><th>承办单位</th><th>状态</th><th>期限</th></tr></thead>
<tbody>{rows or '<tr><td colspan="6" class="empty">暂无诉求</td></tr>'}</tbody></table>
</section></main>"""
    return page(f"{unit['name']} · 领导驾驶舱", body)


async def get_unit(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    try:
        shown = await shown_day(request, scope)
    except ApiError as exc:
        return error_page(exc.status, f"查询条件有误：{exc.message}")
    data = await unit_data(request, scope, shown)
    if data is None:
        return error_page(404, "没有这个单位，或您无权查看。")
    await audit(request, "view_unit", data["unit"]["code"], f"day={shown.label}")
    action = f"/dashboard/units/{data['unit']['code']}"
    return html_response(unit_page(data, day_picker(shown, action)))


async def get_unit_json(request: web.Request) -> web.Response:
    scope = await viewer(request, page=False)
    shown = await shown_day(request, scope)
    data = await unit_data(request, scope, shown)
    if data is None:
        raise ApiError(404, "no_such_unit", "no such unit, or not one of yours")
    response = web.json_response(data)
    response.headers["Cache-Control"] = "no-store"
    return response


def add_board_pages(app: web.Application) -> None:
    app.router.add_get("/dashboard/board", get_board)
    app.router.add_get("/dashboard/board.json", get_board_json)
    app.router.add_get("/dashboard/units/{code}", get_unit)
    app.router.add_get("/dashboard/units/{code}/data.json", get_unit_json)
