"""The accounts' HTTP side: ``GET /api/audit``, the audit log for the supervision
office (a session of role ``supervision``). Anyone else — other roles and machine
clients — gets 404, as for a route that does not exist.

Query: ``limit`` (1-1000, default 100), ``before`` (an id: the next page, as the
``Link`` header's ``rel="next"`` gives it), ``user`` (one person's lines).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.accounts.roles import AUDIT_READERS
from gateway.clock import utc_iso
from gateway.store.accounts import AUDIT_PAGE_MAX, AuditEntry
from gateway.web.app import STORE
from gateway.web.errors import ApiError
from gateway.web.input import query_whole
from gateway.web.scope import audit, scope_of

AUDIT_PER_PAGE = 100


def add_accounts(app: web.Application) -> None:
    app.router.add_get("/api/audit", get_audit)


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


async def get_audit(request: web.Request) -> web.Response:
    scope = scope_of(request)
    if scope.role not in AUDIT_READERS:
        raise ApiError(404, "not_found", "no such resource")
    limit = query_whole(request, "limit", AUDIT_PAGE_MAX) or AUDIT_PER_PAGE
    before = query_whole(request, "before", 2**62)
    user = request.query.get("user")
    if user is not None and not 1 <= len(user) <= 64:
        raise ApiError(400, "bad_user", "user must be a name of 1 to 64 characters")
    entries = await request.app[STORE].accounts.audit_entries(
        limit=limit, before=before, actor=user
    )
    await audit(request, "view_audit", "/api/audit", f"user={user}" if user else "")
    response = web.json_response({"entries": [audit_json(e) for e in entries]})
    if len(entries) == limit:
        query = {**request.query, "before": str(entries[-1].id)}
        response.headers["Link"] = f'<{request.rel_url.with_query(query)}>; rel="next"'
    return response
