"""The live hotline wall: ``/dashboard/wall`` and its figures ``/dashboard/wall.json``.

The page shows, per queue, the callers waiting, the longest wait, and the seats
talking, ringing, free, paused and offline, each seat with how long it has been so;
``/static/wall.js`` refreshes it from the JSON every :data:`WALL_REFRESH_SECONDS`
without reloading. Only those who may see the hotline (``Scope.hotline``) see it;
to others it does not exist (404).
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from gateway.wall.service import WALL
from gateway.wall.state import SEAT_STATE_NAMES, SEAT_STATES
from gateway.web.errors import ApiError
from gateway.web.pages.html import error_page, html_response, nav, page
from gateway.web.pages.view import viewer

WALL_REFRESH_SECONDS = 2


def wall_data(app: web.Application) -> dict[str, Any]:
    wall = app.get(WALL)
    if wall is None:
        return {"connected": False, "queues": []}
    return {"connected": True, "queues": [wall.view(q).as_json() for q in wall.queues()]}


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}分{secs:02d}秒" if minutes else f"{secs}秒"


def queue_html(q: dict[str, Any]) -> str:
    counts = q["seats"]
    figures = [
        ("waiting", "排队等候", str(q["waiting"]), " 人"),
        ("longest", "最长等待", _duration(q["longest_wait_s"]), ""),
        ("talking", "通话中", str(counts["talking"]), " 席"),
        ("free", "空闲", str(counts["free"]), " 席"),
        ("paused", "示忙", str(counts["paused"]), " 席"),
    ]
    cells = "".join(
        f'<div class="figure"><div class="value"><span data-w="{key}">{escape(value)}</span>'
        f'{unit}</div><div class="label">{label}</div></div>'
        for key, label, value, unit in figures
    )
    seats = "".join(
        f'<div class="seat {escape(m["state"])}" data-seat="{escape(m["interface"])}"'
        f' data-state="{escape(m["state"])}"><b>{escape(m["name"])}</b><br>'
        f"{SEAT_STATE_NAMES[m['state']]} {_duration(m['seconds'])}</div>"
        for m in q["members"]
    )
    others = "，".join(
        f"{SEAT_STATE_NAMES[s]} {counts[s]}" for s in SEAT_STATES if s not in ("talking", "free")
    )
    return (
        f'<section class="card wide queue" data-queue="{escape(q["queue"])}">'
        f'<h2>队列 {escape(q["queue"])}</h2><div class="wall">{cells}</div>'
        f'<p class="sub" data-w="others">{escape(others)}</p>'
        f'<div class="seats">{seats}</div></section>'
    )


def wall_page(data: dict[str, Any]) -> str:
    if not data["connected"] or not data["queues"]:
        say = "未连接交换机，暂无热线实况。" if not data["connected"] else "尚未取得队列状态。"
        inner = f'<section class="card wide"><p class="empty">{say}</p></section>'
    else:
        inner = "".join(queue_html(q) for q in data["queues"])
    body = (
        '<header><div><h1>热线实况</h1><p class="sub">排队、坐席状态，每 '
        f"{WALL_REFRESH_SECONDS} 秒自动更新</p></div></header>"
        f'{nav("/dashboard/wall")}<main class="single" id="wall"'
        f' data-wall-refresh="{WALL_REFRESH_SECONDS}">{inner}</main>'
        '<script src="/static/wall.js" defer></script>'
    )
    return page("热线实况 · 领导驾驶舱", body)


async def get_wall(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    if not scope.hotline:
        return error_page(404, "没有这个页面，或您无权查看。")
    return html_response(wall_page(wall_data(request.app)))


async def get_wall_json(request: web.Request) -> web.Response:
    scope = await viewer(request, page=False)
    if not scope.hotline:
        raise ApiError(404, "not_found", "no such page, or not yours to see")
    response = web.json_response(wall_data(request.app))
    response.headers["Cache-Control"] = "no-store"
    return response


def add_wall_pages(app: web.Application) -> None:
    app.router.add_get("/dashboard/wall", get_wall)
    app.router.add_get("/dashboard/wall.json", get_wall_json)
