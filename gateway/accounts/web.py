"""The accounts' HTTP side: the audit log for the supervision office (a session of
role ``supervision``), as JSON at ``GET /api/audit`` and as a page at ``GET /audit``.
Anyone else — other roles and machine clients — gets 404, as for a route that does
not exist.

Query: ``limit`` (1-1000, default 100), ``before`` (an id: the next page, as the
``Link`` header's ``rel="next"`` gives it), ``user`` (one person's lines).
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from gateway.accounts.roles import AUDIT_READERS, ROLES
from gateway.clock import utc_iso
from gateway.store.accounts import AUDIT_PAGE_MAX, AuditEntry
from gateway.web.app import CLOCK, STORE
from gateway.web.dashboard import html_response, page
from gateway.web.errors import ApiError
from gateway.web.input import query_whole
from gateway.web.scope import audit, scope_of

AUDIT_PER_PAGE = 100


# The audit log's actions as the supervision office reads them.
ACTION_NAMES = {
    "login": "登录",
    "login_failed": "登录失败",
    "login_refused": "登录被拒（失败过多）",
    "logout": "退出",
    "view_dashboard": "查看驾驶舱",
    "view_case": "查看诉求",
    "view_item": "查看回访件",
    "view_audit": "查看审计日志",
    "user_add": "新建账号",
    "user_passwd": "修改密码",
    "user_disable": "停用账号",
    "user_enable": "启用账号",
}


def add_accounts(app: web.Application) -> None:
    app.router.add_get("/api/audit", get_audit)
    app.router.add_get("/audit", get_audit_page)


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": utc_iso(entry.at),
        "actor": entry.actor,
        "role": entry.role,
        "address": entry.address,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
    }


async def _entries(request: web.Request) -> tuple[list[AuditEntry], int, str | None]:
    """The page of the log the query asks for, if the caller may read it (else 404)."""
    scope = scope_of(request)
    if scope.role not in AUDIT_READERS:
        raise ApiError(404, "not_found", "no such resource")
    limit = query_whole(request, "limit", AUDIT_PAGE_MAX) or AUDIT_PER_PAGE
    before = query_whole(request, "before", 2**62)
    user = request.query.get("user") or None
    if user is not None and len(user) > 64:
        raise ApiError(400, "bad_user", "user must be a name of 1 to 64 characters")
    entries = await request.app[STORE].accounts.audit_entries(
        limit=limit, before=before, actor=user
    )
    await audit(request, "view_audit", request.path, f"user={user}" if user else "")
    return entries, limit, user


def _next(request: web.Request, entries: list[AuditEntry], limit: int) -> str | None:
    if len(entries) < limit:
        return None
    return str(request.rel_url.with_query({**request.query, "before": str(entries[-1].id)}))


async def get_audit(request: web.Request) -> web.Response:
    entries, limit, _ = await _entries(request)
    response = web.json_response({"entries": [audit_json(e) for e in entries]})
    following = _next(request, entries, limit)
    if following:
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


async def get_audit_page(request: web.Request) -> web.Response:
    """The log as a page: newest first, one person's with ``?user=``, older by a link."""
    entries, limit, user = await _entries(request)
    clock = request.app[CLOCK]
    rows = (
        "".join(
            f'<tr data-id="{e.id}"><td>{clock.local(e.at):%Y-%m-%d %H:%M:%S}</td>'
            f"<td>{escape(e.actor)}</td><td>{escape(_role_name(e.role))}</td>"
            f'<td class="mono">{escape(e.address)}</td>'
            f"<td>{escape(ACTION_NAMES.get(e.action, e.action))}</td>"
            f"<td>{escape(e.target)}</td><td>{escape(e.detail)}</td></tr>"
            for e in entries
        )
        or '<tr><td colspan="7" class="empty">暂无记录</td></tr>'
    )
    following = _next(request, entries, limit)
    more = f'<p><a href="{escape(following)}">更早的记录</a></p>' if following else ""
    who = f" · 用户 {escape(user)}" if user else ""
    body = (
        f"<header><div><h1>审计日志{who}</h1>"
        '<p class="sub">登录、查看、导出与账号变更，最新的在前</p></div>'
        '<form method="get" action="/audit"><input name="user" placeholder="用户名">'
        '<button class="quiet" type="submit">筛选</button></form></header>'
        '<main><section class="card wide"><table><thead><tr><th>时间</th><th>用户</th>'
        "<th>角色</th><th>地址</th><th>操作</th><th>对象</th><th>说明</th></tr></thead>"
        f'<tbody id="audit">{rows}</tbody></table>{more}</section></main>'
    )
    return html_response(page("审计日志 · 民生警务", body))


def _role_name(role: str) -> str:
    known = ROLES.get(role)
    return known.name if known else role
