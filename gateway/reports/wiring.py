"""The reports' part of the gateway application: the once-a-day loop, its health."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.cluster.wiring import led
from gateway.reports.making import ReportMaker, ReportSchedule, catalogue_names
from gateway.web.app import CLOCK, CONFIG, HEALTH_CHECKS, STORE
from gateway.web.sms import SMS

REPORTS = web.AppKey("reports", ReportSchedule)


def add_report_schedule(app: web.Application) -> None:
    """Make the daily log, the weekly report and the agendas when they are due."""
    app.cleanup_ctx.append(_schedule_context)
    app[HEALTH_CHECKS]["reports"] = _check


async def _schedule_context(app: web.Application) -> AsyncIterator[None]:
    names = await asyncio.to_thread(catalogue_names)
    maker = ReportMaker(app[STORE], app[CLOCK], app[CONFIG], app[SMS], names)
    schedule = ReportSchedule(maker)
    schedule.start(functools.partial(led, app))  # one gateway at a time (the leader)
    app[REPORTS] = schedule
    try:
        yield
    finally:
        await schedule.aclose()


async def _check(app: web.Application) -> None:
    """Degraded while the loop fails (a store that cannot write, no CJK font)."""
    app[REPORTS].check()
