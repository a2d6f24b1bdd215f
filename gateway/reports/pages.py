"""The reports as pages, from what a person typed: for the dashboard's report pages and
the reports' API. Each raises :class:`ReportRefused` (answered 400) for a day, week,
range or unit it cannot cover, and :class:`OutOfScope` (answered 403) for a unit the
viewer may not see."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.clock import Clock
from gateway.config import ReportsSection
from gateway.reports.agenda import build_agenda, meeting_unit, render_agenda_html
from gateway.reports.board import Thresholds, subtrees
from gateway.reports.errors import OutOfScope
from gateway.reports.logs import ActivityLog, build_log, render_daily_html, render_weekly_html
from gateway.reports.periods import agenda_day, daily_span, parse_day, parse_week, weekly_span
from gateway.store.figures import Reads
from gateway.store.reports import ReportQueries


async def _log(
    reads: Reads,
    clock: Clock,
    section: ReportsSection,
    kind: str,
    text: str,
    kind_names: Mapping[str, str],
) -> ActivityLog:
    today = clock.local().date()
    if kind == "daily":
        span = daily_span(parse_day(text), today, clock.tz)
    else:
        span = weekly_span(parse_week(text), today, clock.tz)
    return await build_log(
        reads,
        span,
        now=clock.now(),
        tz=clock.tz,
        thresholds=Thresholds.from_config(section),
        kind_names=kind_names,
    )


async def daily_page(
    reads: Reads, clock: Clock, section: ReportsSection, day: str, kind_names: Mapping[str, str]
) -> str:
    """The daily log of ``day`` (YYYY-MM-DD, a past day) as a page."""
    return render_daily_html(await _log(reads, clock, section, "daily", day, kind_names))


async def weekly_page(
    reads: Reads, clock: Clock, section: ReportsSection, week: str, kind_names: Mapping[str, str]
) -> str:
    """The weekly report of ``week`` (2026-W48, a past week) as a page."""
    return render_weekly_html(await _log(reads, clock, section, "weekly", week, kind_names))


async def agenda_page(
    reads: Reads,
    clock: Clock,
    section: ReportsSection,
    unit_code: str,
    day: str,
    kind_names: Mapping[str, str],
    scope_units: frozenset[int] | None,
) -> str:
    """The agenda of ``unit_code``'s meeting on ``day``, for a viewer who may see that
    unit and every unit under it (``scope_units``; None: all)."""
    meeting = agenda_day(parse_day(day), clock.local().date(), section.meeting_weekdays)
    unit = await meeting_unit(reads, unit_code)
    if scope_units is not None:
        members = subtrees(await ReportQueries(reads).units())[unit.id]
        if not members <= scope_units:
            raise OutOfScope(f"unit {unit_code} is outside what this account may see")
    agenda = await build_agenda(
        reads, unit, meeting, now=clock.now(), tz=clock.tz, kind_names=dict(kind_names)
    )
    return render_agenda_html(agenda)
