"""The dashboard's three charts for a day, filtered by the viewer's units.

* satisfaction by day: first-callback satisfaction over the :data:`CHART_DAYS` days
  up to the day shown (a gap where nothing was rated);
* calls by hour: the hotline's inbound calls of the day, per local hour (only for
  those who may see the hotline);
* categories by unit: the cases opened over the same days, per owner unit and
  category (story 4: the share of each category per unit).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from html import escape
from typing import Any

from gateway.callbacks.report import period_of
from gateway.clock import Clock
from gateway.store import Store
from gateway.store.cases import CATEGORIES, CATEGORY_NAMES
from gateway.web.pages.svg import Bar, Point, Series, Stack, bar_chart, line_chart, stacked_bars
from gateway.web.pages.view import ShownDay
from gateway.web.scope import Scope

CHART_DAYS = 14
CATEGORY_COLOURS = {
    "complaint": "#d64545",
    "suggestion": "#3b6fb6",
    "consultation": "#2f9e44",
    "booking": "#8e5bd0",
    "report": "#e8890c",
    "help": "#c2255c",
    "praise": "#12a4b6",
    "other": "#868e96",
}
SERIES = [Series(c, CATEGORY_NAMES[c], CATEGORY_COLOURS[c]) for c in CATEGORIES]


async def chart_data(store: Store, clock: Clock, shown: ShownDay, scope: Scope) -> dict[str, Any]:
    """The charts' figures as JSON-ready data (``/dashboard/charts.json``)."""
    first = shown.day - timedelta(days=CHART_DAYS - 1)
    window = period_of(clock, first, shown.day)
    days = await store.dashboard.satisfaction_by_day(first, shown.day, scope.unit_ids)
    hours = await store.dashboard.calls_by_hour(shown.day) if scope.hotline else None
    cells = await store.dashboard.categories_by_unit(window.since, window.until, scope.unit_ids)
    units: dict[str, dict[str, Any]] = {}
    for cell in cells:
        unit = units.setdefault(
            cell.unit_code, {"unit": cell.unit_code or None, "name": cell.unit_name, "counts": {}}
        )
        unit["counts"][cell.category] = cell.count
    return {
        "day": shown.label,
        "window": {"from": first.isoformat(), "to": shown.day.isoformat()},
        "satisfaction_by_day": [
            {
                "day": d.day.isoformat(),
                "satisfied": d.satisfied,
                "basically_satisfied": d.basically,
                "dissatisfied": d.dissatisfied,
                "rate": None if d.rate is None else round(d.rate, 4),
            }
            for d in days
        ],
        "calls_by_hour": (
            None
            if hours is None
            else [{"hour": h.hour, "total": h.total, "abandoned": h.abandoned} for h in hours]
        ),
        "categories_by_unit": list(units.values()),
    }


def charts_html(data: Mapping[str, Any]) -> str:
    """The charts as inline SVG cards."""
    window = data["window"]
    satisfaction = line_chart(
        [Point(d["day"][5:], d["rate"]) for d in data["satisfaction_by_day"]],
        title=f"首次回访满意率（{window['from']} 至 {window['to']}）",
        percent=True,
        floor=0.6,
    )
    cards = [
        f'<section class="card wide chart-card" id="chart-satisfaction"><h2>满意率（按日）</h2>'
        f"{satisfaction}</section>"
    ]
    if data["calls_by_hour"] is not None:
        calls = bar_chart(
            [Bar(f"{h['hour']:02d}", h["total"]) for h in data["calls_by_hour"]],
            title=f"热线来电（{data['day']}，按小时）",
            unit="通",
        )
        cards.append(
            f'<section class="card wide chart-card" id="chart-calls"><h2>来电（按小时）</h2>'
            f"{calls}</section>"
        )
    categories = stacked_bars(
        [Stack(u["name"], u["counts"]) for u in data["categories_by_unit"]],
        SERIES,
        title=f"诉求类别（{window['from']} 至 {window['to']}，按单位）",
        unit="件",
        height=280,
    )
    cards.append(
        '<section class="card wide chart-card" id="chart-categories">'
        f"<h2>诉求类别（按单位）</h2>{categories}</section>"
    )
    return "".join(cards)


def day_picker(shown: ShownDay, action: str = "/dashboard") -> str:
    """A date field that reloads the page on the chosen day (no script needed)."""
    note = ""
    if shown.latest:
        note = f'<span class="note">今日（{shown.today}）暂无数据，显示最近有数据的一天</span>'
    return (
        f'<form class="day-picker" method="get" action="{escape(action)}">'
        f'<label for="day">统计日</label><input id="day" name="day" type="date"'
        f' value="{shown.label}" max="{shown.today.isoformat()}">'
        f'<button type="submit">查看</button>{note}</form>'
    )
