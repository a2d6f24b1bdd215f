"""A case's whole timeline, and the recordings on it, played in the browser.

* ``/dashboard/cases/{number}`` — the page: the case, then everything that happened
  to it oldest first (channels, history, calls, callbacks, ratings, orders, texts),
  each recording as an ``<audio>`` player;
* ``/dashboard/cases/{number}/timeline.json`` — the same as data;
* ``/dashboard/recordings/{kind}/{id}`` — a recording of a case (the caller's voice
  message), a call or a rating; served with byte ranges so the player can seek.

A case, call or rating outside the viewer's units is "not found" (404), exactly as
one that does not exist. A recording is served only from inside a recordings
folder — the callers' voice messages (``<data_dir>/<ivr.messages_dir>``) and, for a
call, its PBX's monitor folder (``pbx.monitor_dir``): a stored path that leads
outside them, also through a symbolic link, is a 404 and a warning in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.appeals.service import CHANNEL_NAMES as SUBMISSION_CHANNELS
from gateway.callbacks.policy import LEVEL_NAMES
from gateway.callbacks.report import OUTCOME_NAMES
from gateway.callbacks.report import STATUS_NAMES as ITEM_STATUS_NAMES
from gateway.callbacks.service import REASONS
from gateway.calllog.commands import DIRECTION_NAMES, DISPOSITION_NAMES
from gateway.clock import Clock, utc_iso
from gateway.reports.agenda import ACTION_NAMES
from gateway.sms.commands import PURPOSE_NAMES
from gateway.sms.commands import STATUS_NAMES as TEXT_STATUS_NAMES
from gateway.store.cases import CATEGORY_NAMES, CHANNEL_NAMES, STATUS_NAMES, Case
from gateway.store.dashboard import TimelineRow
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.errors import ApiError
from gateway.web.input import path_id
from gateway.web.pages.html import error_page, html_response, nav, page
from gateway.web.pages.view import viewer
from gateway.web.scope import Scope, audit

log = logging.getLogger(__name__)

RECORDING_KINDS = ("case", "call", "rating")
# What RECORD FILE writes for each format the flows use; a stored path has no extension.
AUDIO_TYPES = {".wav": "audio/wav", ".gsm": "audio/gsm", ".ulaw": "audio/basic"}
SCORE_NAMES = {1: "满意", 2: "基本满意", 3: "不满意"}
KIND_NAMES = {
    "submission": "来件",
    "history": "办理",
    "call": "电话",
    "item": "回访",
    "attempt": "回访",
    "rating": "评价",
    "order": "整改",
    "order_event": "整改",
    "text": "短信",
}


class RecordingNotFound(ApiError):
    def __init__(self, kind: str, row_id: int) -> None:
        super().__init__(404, "no_such_recording", f"no recording of {kind} {row_id}")


def recordings_roots(request: web.Request, pbx: str | None) -> list[Path]:
    """Where a recording may come from: a call's PBX's monitor folder (``pbx.monitor_dir``)
    for a call, and the callers' voice messages folder."""
    config = request.app[CONFIG]
    roots = [
        Path(section.monitor_dir)
        for section in config.pbx
        if pbx is not None and section.name == pbx and section.monitor_dir
    ]
    return [*roots, config.gateway.data_dir / config.ivr.messages_dir]


def find_recording(roots: list[Path], stored: str) -> Path | None:
    """The first root holding the stored recording inside it (:func:`recording_file`)."""
    for root in roots:
        found = recording_file(root, stored)
        if found is not None:
            return found
    return None


def recording_file(root: Path, stored: str) -> Path | None:
    """The file of a stored recording path, if it lies inside ``root`` once every link
    is followed; None otherwise (missing, outside, or not a regular file). Blocking:
    run it in a thread."""
    try:
        base = root.resolve(strict=True)
    except OSError:
        return None
    given = Path(stored)
    if not given.is_absolute():
        given = root / given
    candidates = [given] if given.suffix.lower() in AUDIO_TYPES else []
    candidates += [given.with_name(given.name + ext) for ext in AUDIO_TYPES]
    for candidate in candidates:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not real.is_relative_to(base):
            log.warning("recording %s leads outside the recordings folder: refused", candidate)
            return None
        if real.is_file():
            return real
    return None


def recording_url(kind: str, row_id: int) -> str:
    return f"/dashboard/recordings/{kind}/{row_id}"


async def visible_case(request: web.Request, scope: Scope) -> Case | None:
    """The case named in the URL if the viewer may see it, else None."""
    case = await request.app[STORE].read_cases.get(request.match_info["number"])
    if case is None or not scope.sees_unit(case.owner_unit_id):
        return None
    return case


def _seconds(seconds: Any) -> str:
    return "—" if seconds is None else f"{float(seconds):.0f} 秒"


def describe(row: TimelineRow) -> tuple[str, str, str | None]:
    """(title, detail, recording url) of one timeline row, in Chinese."""
    f = row.fields
    recording = recording_url(row.kind, row.ref_id) if f.get("recording") else None
    if row.kind == "submission":
        channel = SUBMISSION_CHANNELS.get(f["channel"], f["channel"])
        title = f"{channel}来件（{f['reference']}）" + ("，同一诉求再次反映" if f["repeat"] else "")
        return title, f["text"] + (f"（地点：{f['place']}）" if f["place"] else ""), None
    if row.kind == "history":
        action = ACTION_NAMES.get(f["action"], f["action"])
        return f"{action}（{f['actor']}）", f["note"], None
    if row.kind == "call":
        direction = DIRECTION_NAMES.get(f["direction"], f["direction"])
        outcome = DISPOSITION_NAMES.get(f["disposition"] or "", f["disposition"] or "进行中")
        detail = f"排队 {_seconds(f['queue_wait_s'])}，通话 {_seconds(f['talk_s'])}"
        if f["agent"]:
            detail += f"，坐席 {f['agent']}"
        return f"{direction}电话：{outcome}", f"{detail}，交换机 {f['pbx']}", recording
    if row.kind == "item":
        status = ITEM_STATUS_NAMES.get(f["status"], f["status"])
        return "登记回访", f"第 {f['round']} 轮，现状：{status}", None
    if row.kind == "attempt":
        outcome = OUTCOME_NAMES.get(f"{f['channel']}:{f['outcome']}", f["outcome"])
        if f["pbx"]:  # a call (a text has no PBX)
            outcome += f"（交换机 {f['pbx']}）"
        return f"回访第 {f['round']} 轮第 {f['attempt']} 次", outcome, None
    if row.kind == "rating":
        score = SCORE_NAMES.get(int(f["score"]), str(f["score"]))
        reason = REASONS.get(f["reason"] or "", f["reason"] or "")
        how = "电话按键" if f["channel"] == "phone" else "短信回复"
        return (
            f"群众评价：{score}",
            f"第 {f['round']} 轮，{how}" + (f"，原因：{reason}" if reason else ""),
            recording,
        )
    if row.kind == "order":
        level = LEVEL_NAMES.get(int(f["level"]), str(f["level"]))
        return f"整改工单 {f['ref']}", f"{f['level']}级（{level}），期限 {f['deadline_at']}", None
    if row.kind == "order_event":
        action = ACTION_NAMES.get(f["action"], f["action"])
        return f"工单 {f['ref']}：{action}", f["note"] or "", None
    purpose = PURPOSE_NAMES.get(f["purpose"], f["purpose"])
    who = "群众" if f["audience"] == "citizen" else "民警"
    status = TEXT_STATUS_NAMES.get(f["status"], f["status"])
    return f"短信（{purpose}）发给{who}：{status}", f["body"], None


def timeline_json(case: Case, rows: list[TimelineRow], clock: Clock) -> dict[str, Any]:
    entries = []
    for row in rows:
        title, detail, url = describe(row)
        entries.append(
            {
                "at": utc_iso(row.at),
                "local": clock.local(row.at).strftime("%Y-%m-%d %H:%M:%S"),
                "kind": row.kind,
                "id": row.ref_id,
                "title": title,
                "detail": detail,
                "recording": url,
            }
        )
    return {
        "case": {
            "number": case.number,
            "category": case.category,
            "category_name": CATEGORY_NAMES.get(case.category, case.category),
            "channel": case.channel,
            "channel_name": CHANNEL_NAMES.get(case.channel, case.channel),
            "status": case.status,
            "status_name": STATUS_NAMES.get(case.status, case.status),
            "subject": case.subject,
            "content": case.content,
            "citizen_name": case.citizen_name,
            "unit": case.owner_unit_code,
            "unit_name": case.owner_unit_name,
            "deadline": None if case.deadline is None else utc_iso(case.deadline),
            "deadline_local": (
                None
                if case.deadline is None
                else clock.local(case.deadline).strftime("%Y-%m-%d %H:%M")
            ),
            "opened_local": clock.local(case.created_at).strftime("%Y-%m-%d %H:%M"),
            "recording": recording_url("case", case.id) if case.recording else None,
            "merged_into": case.merged_into_number,
        },
        "timeline": entries,
    }


def _player(url: str) -> str:
    return f'<audio controls preload="metadata" src="{escape(url)}"></audio>'


def case_page(data: Mapping[str, Any]) -> str:
    c = data["case"]
    rows = []
    for e in data["timeline"]:
        audio = _player(e["recording"]) if e["recording"] else ""
        rows.append(
            f'<li class="event {escape(e["kind"])}" data-kind="{escape(e["kind"])}">'
            f'<time>{escape(e["local"])}</time><span class="tag">'
            f"{escape(KIND_NAMES.get(e['kind'], e['kind']))}</span>"
            f"<b>{escape(e['title'])}</b><p>{escape(e['detail'])}</p>{audio}</li>"
        )
    message = (
        f'<p class="voice">群众语音留言：{_player(c["recording"])}</p>' if c["recording"] else ""
    )
    merged = f"<p>已并入 {escape(c['merged_into'])}</p>" if c["merged_into"] else ""
    body = f"""
<header><div><h1>诉求 <span class="mono" id="case-number">{escape(c["number"])}</span></h1>
<p class="sub">{escape(c["category_name"])} · 来自{escape(c["channel_name"])} ·
{escape(c["status_name"])}</p></div></header>
{nav("")}
<main class="single">
<section class="card wide"><h2>诉求概况</h2>
<table class="facts"><tr><th>标题</th><td>{escape(c["subject"])}</td></tr>
<tr><th>内容</th><td>{escape(c["content"])}</td></tr>
<tr><th>群众</th><td>{escape(c["citizen_name"] or "—")}</td></tr>
<tr><th>承办单位</th><td>{escape(c["unit_name"] or "未分派")}</td></tr>
<tr><th>受理时间</th><td>{escape(c["opened_local"])}</td></tr>
<tr><th>办理期限</th><td>{escape(c["deadline_local"] or "—")}</td></tr></table>
{message}{merged}</section>
<section class="card wide"><h2>全过程（{len(data["timeline"])} 项）</h2>
<ol class="timeline" id="timeline">{"".join(rows) or '<li class="empty">暂无记录</li>'}</ol>
</section></main>"""
    return page(f"诉求 {c['number']} · 领导驾驶舱", body)


async def get_case_page(request: web.Request) -> web.Response:
    scope = await viewer(request, page=True)
    case = await visible_case(request, scope)
    if case is None:
        return error_page(404, "没有这件诉求，或您无权查看。")
    await audit(request, "view_case", case.number)
    store, clock = request.app[STORE], request.app[CLOCK]
    rows = await store.dashboard.case_timeline(
        case.id, case.number, case.citizen_number, case.created_at
    )
    return html_response(case_page(timeline_json(case, rows, clock)))


async def get_case_json(request: web.Request) -> web.Response:
    scope = await viewer(request, page=False)
    case = await visible_case(request, scope)
    if case is None:
        raise ApiError(404, "no_such_case", "no such case, or not one of your units'")
    await audit(request, "view_case", case.number)
    store, clock = request.app[STORE], request.app[CLOCK]
    rows = await store.dashboard.case_timeline(
        case.id, case.number, case.citizen_number, case.created_at
    )
    response = web.json_response(timeline_json(case, rows, clock))
    response.headers["Cache-Control"] = "no-store"
    return response


def _first_read(request: web.Request) -> bool:
    """The read that starts a play (no range, or one from byte 0): audited once a play,
    not once per range the player asks for. A malformed range is left to the file
    response (416)."""
    try:
        return request.http_range.start in (None, 0)
    except ValueError:
        return False


async def get_recording(request: web.Request) -> web.StreamResponse:
    """A recording the viewer may hear, from inside the recordings folder only."""
    scope = await viewer(request, page=False)
    kind = request.match_info["kind"]
    row_id = path_id(request, "id", "no_such_recording")
    if kind not in RECORDING_KINDS:
        raise RecordingNotFound(kind[:16], row_id)
    found = await request.app[STORE].dashboard.recording(kind, row_id)
    if found is None or not scope.sees_unit(found.unit_id):
        raise RecordingNotFound(kind, row_id)
    roots = recordings_roots(request, found.pbx)
    path = await asyncio.to_thread(find_recording, roots, found.path)
    if path is None:
        raise RecordingNotFound(kind, row_id)
    if _first_read(request):
        await audit(request, "play_recording", f"{kind}/{row_id}")
    response = web.FileResponse(path)
    response.content_type = AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def add_case_pages(app: web.Application) -> None:
    app.router.add_get("/dashboard/cases/{number}", get_case_page)
    app.router.add_get("/dashboard/cases/{number}/timeline.json", get_case_json)
    app.router.add_get("/dashboard/recordings/{kind}/{id}", get_recording)
