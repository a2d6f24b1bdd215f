"""The shell every dashboard page shares: one stylesheet, an optional script, strict
headers (no inline script may run, no frame may hold the page)."""

from __future__ import annotations

from html import escape

from aiohttp import web

CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none';"
    " media-src 'self'; img-src 'self' data:"
)
NAV = (
    ("/dashboard", "总览"),
    ("/dashboard/board", "三色预警"),
    ("/dashboard/wall", "热线实况"),
    ("/reports/daily", "日志"),
    ("/reports/weekly", "周报"),
    ("/reports/agenda", "会议议程"),
)


def page(title: str, body: str, *, script: bool = False) -> str:
    """A whole HTML page; ``body`` must already be escaped."""
    js = '<script src="/static/dashboard.js" defer></script>' if script else ""
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="/static/dashboard.css">{js}</head>'
        f"<body>{body}</body></html>"
    )


def nav(current: str) -> str:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if href == current else ""}>{escape(name)}</a>'
        for href, name in NAV
    )
    return f'<nav class="pages">{links}</nav>'


def html_response(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(status: int, message: str) -> web.Response:
    """A page that says in one line what was wrong (a bad date, a case not found)."""
    body = (
        f'<main class="notice"><h1>民生警务 · 领导驾驶舱</h1><p class="error" role="alert">'
        f'{escape(message)}</p><p><a href="/dashboard">返回总览</a></p></main>'
    )
    return html_response(page("提示 · 领导驾驶舱", body), status)
