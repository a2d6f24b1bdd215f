"""Wiring of the dashboard's pages beyond the front page (see the package docstring)."""

from __future__ import annotations

from aiohttp import web

from gateway.web.pages.board import add_board_pages
from gateway.web.pages.cases import add_case_pages
from gateway.web.pages.reports import add_report_pages
from gateway.web.pages.wall import add_wall_pages


def add_pages(app: web.Application) -> None:
    """The case pages and recordings, the board, the hotline wall and the reports."""
    add_board_pages(app)
    add_case_pages(app)
    add_report_pages(app)
    add_wall_pages(app)
