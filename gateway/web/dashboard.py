"""The leaders' dashboard: a day's hotline, cases, callbacks, orders and texts, and charts.

    app = create_web_app(config, features=[..., add_dashboard, add_pages])

Pages (Chinese, for the bureau's leaders and the supervision office):

* ``/`` redirects to ``/dashboard``;
* ``/dashboard?day=YYYY-MM-DD`` one server-rendered page for the day picked (see
  :func:`gateway.web.pages.view.shown_day` for the default), with the charts of
  :mod:`gateway.web.pages.charts` (``/dashboard/charts.json``); a little script
  refreshes its figures from ``/dashboard/data.json`` every 10 seconds; the other
  pages (board, wall, cases, reports) are in :mod:`gateway.web.pages`;
* ``/login`` asks for a person's name and password (:mod:`gateway.accounts`);
  ``/logout`` ends the session. ``/static/dashboard.{css,js}`` are open (they hold
  no data).

Every ``/dashboard`` request needs a person's session cookie or ``Authorization:
Bearer <web.api_token>`` (for tools), resolved by the application's middleware
into a :class:`~gateway.web.scope.Scope`; the figures are those of the scope's
units (and the hotline's only if the role sees the hotline). The cookie holds a
random value whose hash the store keeps; it is HttpOnly and SameSite=Strict (and
Secure on HTTPS or with ``web.secure_cookies``); the session ends at logout, after
``web.session_idle`` seconds unused or ``web.session_lifetime`` after the login.
Without a session a page redirects to ``/login`` and the JSON answers 401. Wrong
passwords count per account name and per address in the store: beyond the limit
the login answers 429 with ``Retry-After``. Neither a password nor a cookie is
logged.

The three-colour warning (:func:`warning_colour`) marks each unit's first-callback
satisfaction green at :data:`GREEN_AT` or more, yellow at :data:`YELLOW_AT` or
more, red below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.accounts.roles import AUDIT_READERS, ROLES
from gateway.accounts.service import AccountService, LoginRefused
from gateway.callbacks.policy import LEVEL_NAMES, TOP_LEVEL
from gateway.callbacks.report import (
    MAX_DAYS,
    Period,
    overall_row,
    percent,
    period_of,
    satisfaction_rows,
)
from gateway.clock import Clock, utc_iso
from gateway.store import Store
from gateway.store.cases import CATEGORIES, CATEGORY_NAMES
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.auth import SESSION_COOKIE, client_address
from gateway.web.errors import ApiError
from gateway.web.pages.charts import chart_data, charts_html, day_picker
from gateway.web.pages.html import error_page, nav
from gateway.web.pages.html import html_response as _html
from gateway.web.pages.html import page as _page
from gateway.web.pages.view import shown_day, viewer
from gateway.web.scope import MACHINE_SCOPE, SCOPE, Scope, audit

log = logging.getLogger(__name__)

# The three-colour warning on first-callback satisfaction.
GREEN_AT = 0.95
YELLOW_AT = 0.90

REFRESH_SECONDS = 10
# The callbacks, orders and texts the dashboard shows cover the last WINDOW_DAYS local
# days unless the page asks for another window (``?days=N``).
WINDOW_DAYS = 30
# The open orders the page lists, the most urgent first (all are counted by level).
ORDERS_SHOWN = 100

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "dashboard.css": "text/css",
    "dashboard.js": "application/javascript",
    "wall.js": "application/javascript",
}
STATIC: web.AppKey[dict[str, bytes]] = web.AppKey("dashboard_static", dict)

COLOUR_NAMES = {"green": "绿", "yellow": "黄", "red": "红", "none": "—"}
ITEM_STATUS_NAMES = {
    "pending": "待回访",
    "calling": "回访中",
    "sms": "待短信回复",
    "rated": "已评价",
    "unreachable": "联系不上",
    "skipped": "不回访",
}
ORDER_STATUS_NAMES = {"open": "整改中", "reported": "已反馈待复访"}
LEVEL_SHORT = {1: "派出所所长", 2: "分局", 3: "督办室", 4: "局党委"}


def warning_colour(rate: float | None) -> str:
    """``green`` / ``yellow`` / ``red`` for a satisfaction rate; ``none`` if nothing was rated."""
    if rate is None:
        return "none"
    if rate >= GREEN_AT:
        return "green"
    if rate >= YELLOW_AT:
        return "yellow"
    return "red"


# -- figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    """The local day the dashboard reports on, as a UTC period."""

    start: datetime
    end: datetime
    label: str


def today(clock: Clock) -> Day:
    return day_of(clock, clock.local().date())


def day_of(clock: Clock, day: date) -> Day:
    """The local ``day`` as a UTC period."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=clock.tz)
    return Day(
        midnight.astimezone(UTC),
        (midnight + timedelta(days=1)).astimezone(UTC),
        day.isoformat(),
    )


def _age(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{minutes}分"
    return f"{minutes}分钟"


async def dashboard_figures(
    store: Store,
    clock: Clock,
    days: int = WINDOW_DAYS,
    scope: Scope = MACHINE_SCOPE,
    shown: date | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (``/dashboard/data.json``): the
    hotline and cases of the day ``shown`` (default today), and the callbacks, orders
    and texts of the ``days`` local days up to it, as far as ``scope`` sees (the
    hotline only with ``scope.hotline``; texts, which belong to no unit, only to those
    who see every unit). Viewers of the same scope share one computation every few
    seconds (``store.figures.cached``)."""
    last = shown or clock.local().date()
    period = period_of(clock, last - timedelta(days=days - 1), last)
    key = ("dashboard", days, period.last, scope.unit_ids, scope.hotline)
    return await store.figures.cached(key, lambda: _figures(store, clock, period, scope))


async def _figures(store: Store, clock: Clock, period: Period, scope: Scope) -> dict[str, Any]:
    now = clock.now()
    day = day_of(clock, period.last)
    units_seen = scope.unit_ids
    hotline = await store.read_calls.hotline_figures(day.start, day.end) if scope.hotline else None
    opened = await store.read_cases.opened_by_category(day.start, day.end, units=units_seen)
    by_unit = satisfaction_rows(
        await store.figures.satisfaction(period.since, period.until, "unit", units=units_seen)
    )
    overall = overall_row(by_unit)
    units = sorted(
        by_unit,
        key=lambda row: (row.figures.rate if row.figures.rate is not None else 2.0, row.key),
    )
    orders = []
    for listed in await store.figures.active_orders(limit=ORDERS_SHOWN, units=units_seen):
        order = listed.order
        orders.append(
            {
                "ref": order.ref,
                "level": order.level,
                "level_name": LEVEL_NAMES.get(order.level, str(order.level)),
                "status": order.status,
                "status_name": ORDER_STATUS_NAMES.get(order.status, order.status),
                "unit": listed.unit_name,
                "created_at": utc_iso(order.created_at),
                "age_hours": round((now - order.created_at).total_seconds() / 3600, 2),
                "age": _age(now - order.created_at),
                "deadline_at": utc_iso(order.deadline_at),
                "deadline": clock.local(order.deadline_at).strftime("%m-%d %H:%M"),
                "overdue": order.status == "open" and order.deadline_at <= now,
            }
        )
    levels = await store.figures.active_order_levels(units=units_seen)
    by_level = {str(level): levels.get(level, 0) for level in range(1, TOP_LEVEL + 1)}
    sms = None
    if units_seen is None:
        sms = await store.figures.text_counts(period.since, period.until)

    def unit_json(row: Any) -> dict[str, Any]:
        data: dict[str, Any] = row.as_json()
        colour = warning_colour(row.figures.rate)
        data.update(percent=percent(row.figures.rate), colour=colour)
        return data

    total = overall[0] if overall else None
    items = await store.figures.item_counts(period.since, period.until, units=units_seen)
    return {
        "generated_at": utc_iso(now),
        "local_time": clock.local(now).strftime("%Y-%m-%d %H:%M"),
        "day": day.label,
        "period": {**period.as_json(), "days": (period.last - period.first).days + 1},
        "thresholds": {"green": GREEN_AT, "yellow": YELLOW_AT},
        "viewer": {"username": scope.username, "role": scope.role},
        "hotline": None
        if hotline is None
        else {
            "total": hotline.total,
            "answered_by_agent": hotline.answered_by_agent,
            "abandoned": hotline.abandoned,
            "mean_queue_wait_s": (
                None if hotline.mean_queue_wait_s is None else round(hotline.mean_queue_wait_s, 1)
            ),
        },
        "cases": {
            "opened_today": sum(opened.values()),
            "by_category": [
                {"category": c, "name": CATEGORY_NAMES[c], "count": opened.get(c, 0)}
                for c in CATEGORIES
                if opened.get(c, 0)
            ],
            "open": await store.read_cases.open_count(units=units_seen),
        },
        "callbacks": {
            "items": {status: items.get(status, 0) for status in ITEM_STATUS_NAMES},
            "items_total": sum(items.values()),
            "satisfaction": (
                unit_json(total)
                if total
                else {"rated": 0, "satisfaction": None, "percent": percent(None), "colour": "none"}
            ),
            "units": [unit_json(row) for row in units],
        },
        "orders": {"open": orders, "by_level": by_level, "total": sum(levels.values())},
        "sms": None
        if sms is None
        else {
            "waiting": sms.get("queued", 0) + sms.get("sending", 0),
            "sent": sms.get("sent", 0),
            "delivered": sms.get("delivered", 0),
            "failed": sms.get("failed", 0) + sms.get("undelivered", 0),
            "total": sum(sms.values()),
        },
    }


# -- HTML -------------------------------------------------------------------------


# Other parts' pages (the audit log) use the same frame and the same headers.
page = _page
html_response = _html


def login_page(message: str = "", username: str = "") -> str:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    form = (
        '<form method="post" action="/login" class="login-form">'
        '<label for="username">用户名</label>'
        f'<input id="username" name="username" autocomplete="username" value="{escape(username)}"'
        " required autofocus>"
        '<label for="password">密码</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password"'
        " required>"
        '<button type="submit">登录</button></form>'
    )
    body = (
        '<main class="login"><h1>民生警务服务中心</h1><h2>领导驾驶舱 · 登录</h2>'
        f"{note}{form}"
        '<p class="hint">请使用本人账号登录；没有账号请联系系统管理员开设。</p></main>'
    )
    return _page("登录 · 领导驾驶舱", body)


def _figure(label: str, key: str, value: Any, unit: str = "", cls: str = "") -> str:
    shown = "—" if value is None else value
    return (
        f'<div class="figure {cls}"><div class="value"><span data-k="{escape(key)}">'
        f"{escape(str(shown))}</span>{escape(unit)}</div>"
        f'<div class="label">{escape(label)}</div></div>'
    )


def _unit_rows(units: list[dict[str, Any]]) -> str:
    if not units:
        return '<tr><td colspan="7" class="empty">暂无评价</td></tr>'
    rows = []
    for u in units:
        colour = u["colour"]
        rows.append(
            f'<tr data-unit="{escape(u["key"])}" data-colour="{escape(colour)}">'
            f'<td>{escape(u["label"])}</td><td class="n">{u["rated"]}</td>'
            f'<td class="n">{u["satisfied"]}</td><td class="n">{u["basically_satisfied"]}</td>'
            f'<td class="n">{u["dissatisfied"]}</td><td class="n">{escape(u["percent"])}</td>'
            f'<td><span class="mark {escape(colour)}">{escape(COLOUR_NAMES[colour])}</span></td>'
            "</tr>"
        )
    return "".join(rows)


def _order_rows(orders: list[dict[str, Any]]) -> str:
    if not orders:
        return '<tr><td colspan="6" class="empty">暂无在办整改工单</td></tr>'
    rows = []
    for o in orders:
        late = '<span class="late">已超期</span>' if o["overdue"] else ""
        rows.append(
            f'<tr data-ref="{escape(o["ref"])}" data-level="{o["level"]}">'
            f'<td class="mono">{escape(o["ref"])}</td><td>{escape(o["unit"])}</td>'
            f'<td><span class="level l{o["level"]}">{o["level"]}级</span> '
            f"{escape(o['level_name'])}</td><td>{escape(o['status_name'])}</td>"
            f"<td>{escape(o['age'])}</td><td>{escape(o['deadline'])} {late}</td></tr>"
        )
    return "".join(rows)


def _viewer(viewer: Mapping[str, str]) -> str:
    """Who is logged in; the supervision office's link to the audit log."""
    role = ROLES.get(viewer["role"])
    who = escape(f"{viewer['username']}（{role.name}）" if role else viewer["username"])
    if viewer["role"] in AUDIT_READERS:
        who += ' · <a href="/audit">审计日志</a>'
    return who


def _hotline_section(hot: Mapping[str, Any] | None) -> str:
    """Today's hotline, for those whose role sees the hotline."""
    if hot is None:
        return ""
    return f"""<section class="card wide"><h2>当日热线</h2><div class="figures">
{_figure("呼入总量", "hotline.total", hot["total"], " 通")}
{_figure("人工接听", "hotline.answered_by_agent", hot["answered_by_agent"], " 通")}
{_figure("排队放弃", "hotline.abandoned", hot["abandoned"], " 通")}
{_figure("平均排队等待", "hotline.mean_queue_wait_s", hot["mean_queue_wait_s"], " 秒")}
</div></section>"""


def _sms_section(sms: Mapping[str, Any] | None, period_days: int) -> str:
    """The texts, for those who see every unit (texts belong to no unit)."""
    if sms is None:
        return ""
    return f"""<section class="card wide"><h2>短信（待发全部 · 其余近{period_days}天）</h2>
<div class="figures">
{_figure("待发送", "sms.waiting", sms["waiting"], " 条")}
{_figure("已发出", "sms.sent", sms["sent"], " 条")}
{_figure("已送达", "sms.delivered", sms["delivered"], " 条")}
{_figure("发送失败", "sms.failed", sms["failed"], " 条", "bad" if sms["failed"] else "")}
</div></section>"""


def dashboard_page(data: Mapping[str, Any], *, charts: str = "", picker: str = "") -> str:
    """The page for ``data`` (as :func:`dashboard_figures` returns it), every value escaped;
    ``charts`` and the day ``picker`` are markup made from escaped values."""
    hot, cases, cb, sms = data["hotline"], data["cases"], data["callbacks"], data["sms"]
    overall = cb["satisfaction"]
    categories = (
        "".join(f"<li>{escape(c['name'])}<b>{c['count']}</b></li>" for c in cases["by_category"])
        or '<li class="empty">当日暂无</li>'
    )
    items = "".join(
        _figure(ITEM_STATUS_NAMES[s], f"callbacks.items.{s}", n) for s, n in cb["items"].items()
    )
    levels = "".join(
        f'<div class="figure"><div class="value"><span data-k="orders.by_level.{lv}">'
        f"{data['orders']['by_level'][str(lv)]}</span></div>"
        f'<div class="label"><span class="level l{lv}">{lv}级</span> '
        f"{escape(LEVEL_SHORT[lv])}</div></div>"
        for lv in range(1, TOP_LEVEL + 1)
    )
    green, yellow = f"{GREEN_AT * 100:.0f}%", f"{YELLOW_AT * 100:.0f}%"
    period_days = int(data["period"]["days"])
    body = f"""
<header><div><h1>民生警务 · 领导驾驶舱</h1>
<p class="sub">统计日 <span data-k="day">{escape(data["day"])}</span> ·
更新于 <span data-k="local_time">{escape(data["local_time"])}</span> ·
每 {REFRESH_SECONDS} 秒自动刷新</p></div>
<form method="post" action="/logout"><span class="sub" id="viewer">{_viewer(data["viewer"])}</span>
<button class="quiet" type="submit">退出登录</button></form>
</header>
{nav("/dashboard")}{picker}
<main data-refresh="{REFRESH_SECONDS}">
{_hotline_section(hot)}
<section class="card"><h2>当日受理诉求</h2><div class="figures">
{_figure("当日新增", "cases.opened_today", cases["opened_today"], " 件")}
{_figure("在办诉求", "cases.open", cases["open"], " 件")}
</div><ul class="cats" id="categories">{categories}</ul></section>
<section class="card"><h2>首次回访满意率（近{period_days}天）</h2>
<div class="big {escape(overall["colour"])}" id="overall">
<span data-k="callbacks.satisfaction.percent">{escape(overall["percent"])}</span></div>
<p class="sub">已评价 <span data-k="callbacks.satisfaction.rated">{overall["rated"]}</span> 件 ·
绿 ≥ {green}，黄 ≥ {yellow}，红 &lt; {yellow}</p></section>
<section class="card wide"><h2>回访业务（待办全部 · 办结近{period_days}天）</h2>
<div class="figures">{items}</div></section>
<section class="card wide"><h2>各单位满意率（近{period_days}天 · 三色预警）</h2>
<table><thead><tr><th>单位</th><th>已评价</th><th>满意</th><th>基本满意</th><th>不满意</th>
<th>满意率</th><th>预警</th></tr></thead><tbody id="units">{_unit_rows(cb["units"])}</tbody></table>
</section>
<section class="card wide"><h2>在办整改工单（共
<span data-k="orders.total">{data["orders"]["total"]}</span> 件，
列出最紧急的 {ORDERS_SHOWN} 件）</h2>
<div class="figures">{levels}</div>
<table><thead><tr><th>工单号</th><th>单位</th><th>级别</th><th>状态</th><th>已过时间</th>
<th>期限</th></tr></thead><tbody id="orders">{_order_rows(data["orders"]["open"])}</tbody></table>
</section>
{_sms_section(sms, period_days)}
{charts}
</main>"""
    return _page("领导驾驶舱 · 民生警务", body, script=True)


# -- handlers ---------------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard")


async def get_login(request: web.Request) -> web.Response:
    scope = request.get(SCOPE)
    if scope is not None and scope.person:
        raise web.HTTPFound("/dashboard")
    return _html(login_page())


# Longer form values are refused as wrong without hashing them.
MAX_FORM_VALUE = 1024


async def post_login(request: web.Request) -> web.Response:
    """A person's login: a session cookie and /dashboard, or the form again saying why
    (401 wrong name or password, 429 with Retry-After beyond the failed-login limit)."""
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _html(login_page("请输入用户名和密码。"), status=401)
    username = username.strip()[:MAX_FORM_VALUE]
    if not username or not password:
        return _html(login_page("请输入用户名和密码。", username), status=401)
    address = client_address(request)
    accounts = AccountService(request.app[STORE], request.app[CONFIG].web)
    try:
        if len(password) > MAX_FORM_VALUE:
            raise LoginRefused()
        login = await accounts.login(username, password, address)
    except LoginRefused as refused:
        if refused.wait:
            log.warning("login of %r from %s refused: too many failures", username, address)
            message = f"登录失败次数过多，请 {refused.wait} 秒后再试。"
            response = _html(login_page(message, username), status=429)
            response.headers["Retry-After"] = str(refused.wait)
            return response
        log.warning("login of %r from %s refused: wrong name or password", username, address)
        message = "用户名或密码不正确，登录失败。请核对后重新输入。"
        return _html(login_page(message, username), status=401)
    log.info("login of %s (%s) from %s", login.user.username, login.user.role, address)
    response = _redirect("/dashboard")
    response.set_cookie(
        SESSION_COOKIE,
        login.token,
        max_age=int(accounts.lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.app[CONFIG].web.secure_cookies,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session on the server and drop the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        accounts = AccountService(request.app[STORE], request.app[CONFIG].web)
        await accounts.logout(cookie, client_address(request))
    response = _redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _redirect(location: str) -> web.Response:
    response = web.Response(status=302, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _window(request: web.Request) -> int:
    """The ``days`` the page asked for, else :data:`WINDOW_DAYS`."""
    given = request.query.get("days")
    if given is None:
        return WINDOW_DAYS
    if not given.isdigit() or not 1 <= int(given) <= MAX_DAYS:
        raise ApiError(400, "bad_days", f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(given)


async def get_dashboard(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    try:
        shown = await shown_day(request, scope)
        days = _window(request)
    except ApiError as exc:
        return error_page(exc.status, f"查询条件有误：{exc.message}")
    store, clock = request.app[STORE], request.app[CLOCK]
    data = await dashboard_figures(store, clock, days, scope, shown.day)
    charts = await chart_data(store, clock, shown, scope)
    await audit(request, "view_dashboard", "/dashboard", f"day={shown.label} days={days}")
    return _html(dashboard_page(data, charts=charts_html(charts), picker=day_picker(shown)))


async def get_data(request: web.Request) -> web.Response:
    scope = await viewer(request, page=False)
    shown = await shown_day(request, scope)
    store, clock = request.app[STORE], request.app[CLOCK]
    data = await dashboard_figures(store, clock, _window(request), scope, shown.day)
    response = web.json_response(data)
    response.headers["Cache-Control"] = "no-store"
    return response


async def get_charts(request: web.Request) -> web.Response:
    """The charts' figures for the day asked, filtered by the viewer's units."""
    scope = await viewer(request, page=False)
    shown = await shown_day(request, scope)
    data = await chart_data(request.app[STORE], request.app[CLOCK], shown, scope)
    response = web.json_response(data)
    response.headers["Cache-Control"] = "no-store"
    return response


async def get_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = request.app[STATIC].get(name)
    if body is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    response = web.Response(body=body, content_type=STATIC_FILES[name], charset="utf-8")
    response.headers["Cache-Control"] = "max-age=300"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _read_static() -> dict[str, bytes]:
    return {name: (STATIC_DIR / name).read_bytes() for name in STATIC_FILES}


async def _static_context(app: web.Application) -> AsyncIterator[None]:
    app[STATIC] = await asyncio.to_thread(_read_static)
    yield


def add_dashboard(app: web.Application) -> None:
    """The dashboard's pages, its JSON, the login and its two static files."""
    app.cleanup_ctx.append(_static_context)
    app.router.add_get("/", root)
    app.router.add_get("/login", get_login)
    app.router.add_post("/login", post_login)
    app.router.add_get("/logout", logout)
    app.router.add_post("/logout", logout)
    app.router.add_get("/dashboard", get_dashboard)
    app.router.add_get("/dashboard/data.json", get_data)
    app.router.add_get("/dashboard/charts.json", get_charts)
    app.router.add_get("/static/{name}", get_static)
