"""First-callback satisfaction tables: per unit, per kind, per local day, overall.

Tables cover a :class:`Period` of local days (:func:`last_days`, :func:`period_of`);
:func:`satisfaction_rows` turns the store's SQL aggregates
(``store.figures.satisfaction``) into rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from gateway.callbacks.policy import Satisfaction, satisfaction
from gateway.clock import Clock, utc_iso
from gateway.store.figures import ScoreGroup
from gateway.tables import render

# The period figures cover unless told otherwise: the last 30 local days, today included.
DEFAULT_DAYS = 30
MAX_DAYS = 3660


class BadPeriod(ValueError):
    """A period someone asked for is not one; the message says why, in one line."""


@dataclass(frozen=True)
class Period:
    """Local days ``first`` to ``last`` (both included), as the UTC span they cover."""

    first: date
    last: date
    since: datetime
    until: datetime

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "since": utc_iso(self.since),
            "until": utc_iso(self.until),
        }


def period_of(clock: Clock, first: date, last: date) -> Period:
    """The local days ``first`` to ``last`` in the clock's zone."""
    if last < first:
        raise BadPeriod(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadPeriod(f"a period covers at most {MAX_DAYS} days")
    tz = clock.tz
    since = datetime.combine(first, time(), tz)
    until = datetime.combine(last + timedelta(days=1), time(), tz)
    return Period(first, last, since, until)


def last_days(clock: Clock, days: int = DEFAULT_DAYS) -> Period:
    """The last ``days`` local days, today included."""
    if not 1 <= days <= MAX_DAYS:
        raise BadPeriod(f"days must be 1 to {MAX_DAYS}, not {days}")
    today = clock.local().date()
    return period_of(clock, today - timedelta(days=days - 1), today)


def parse_period(clock: Clock, days: str | None, first: str | None, last: str | None) -> Period:
    """A period from what a person typed: ``days`` (the last N days), or ``first`` and/or
    ``last`` (YYYY-MM-DD); nothing gives the default."""
    if days is not None and (first is not None or last is not None):
        raise BadPeriod("give either days or from/to, not both")
    if first is None and last is None:
        try:
            count = DEFAULT_DAYS if days is None else int(days)
        except ValueError:
            raise BadPeriod(f"days must be a whole number, not {days!r}") from None
        return last_days(clock, count)
    try:
        end = date.fromisoformat(last) if last else clock.local().date()
        start = date.fromisoformat(first) if first else end - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError as exc:
        raise BadPeriod(f"dates are YYYY-MM-DD: {exc}") from None
    return period_of(clock, start, end)


# What people read for an item's status and an attempt's outcome.
STATUS_NAMES = {
    "pending": "待回访",
    "calling": "通话中",
    "sms": "已发短信待回复",
    "rated": "已评价",
    "unreachable": "联系不上",
    "skipped": "无需回访",
}
OUTCOME_NAMES = {
    "call:placed": "电话：呼叫中",
    "call:answered": "电话：已接通",
    "call:rated": "电话：已评价",
    "call:no_rating": "电话：接通未评价",
    "call:busy": "电话：忙线",
    "call:no_answer": "电话：无人接听",
    "call:congestion": "电话：线路拥塞",
    "call:no_such_number": "电话：空号",
    "call:failed": "电话：呼叫失败",
    "call:unknown": "电话：重启中断",
    "sms:sent": "短信：已发评价请求",
}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    figures: Satisfaction

    def as_json(self) -> dict[str, Any]:
        rate = self.figures.rate
        return {
            "key": self.key,
            "label": self.label,
            "rated": self.figures.rated,
            "satisfied": self.figures.satisfied,
            "basically_satisfied": self.figures.basically,
            "dissatisfied": self.figures.dissatisfied,
            "satisfaction": None if rate is None else round(rate, 4),
        }


def satisfaction_table(
    ratings: Iterable[Mapping[str, Any]],
    by: str,
    clock: Clock,
    kind_names: Mapping[str, str] | None = None,
) -> list[Row]:
    """Group first-callback ratings (``CallbackRepository.first_round_ratings``) by
    ``unit``, ``kind``, ``day`` or ``all``; rows sorted by key."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for rating in ratings:
        if by == "unit":
            key = (rating["unit_code"], rating["unit_name"])
        elif by == "kind":
            code = rating["kind_code"]
            key = (code, (kind_names or {}).get(code, code))
        elif by == "day":
            day = clock.local(rating["rated_at"]).date().isoformat()
            key = (day, day)
        elif by == "all":
            key = ("all", "全部")
        else:
            raise ValueError(f"cannot group ratings by {by!r} (unit, kind, day, all)")
        groups[key].append(rating["score"])
    return [Row(k, label, satisfaction(scores)) for (k, label), scores in sorted(groups.items())]


def satisfaction_rows(groups: Iterable[ScoreGroup]) -> list[Row]:
    """Rows of the store's aggregated score groups (``store.figures.satisfaction``)."""
    return [
        Row(
            g.key,
            g.label,
            Satisfaction(
                g.satisfied + g.basically + g.dissatisfied, g.satisfied, g.basically, g.dissatisfied
            ),
        )
        for g in groups
    ]


def overall_row(rows: Iterable[Row]) -> list[Row]:
    """The one ``all`` row that sums ``rows`` (none if nothing was rated), as
    ``satisfaction_table(..., "all", ...)`` gives it, without another query."""
    total = Satisfaction(0, 0, 0, 0)
    for row in rows:
        f = row.figures
        total = Satisfaction(
            total.rated + f.rated,
            total.satisfied + f.satisfied,
            total.basically + f.basically,
            total.dissatisfied + f.dissatisfied,
        )
    return [Row("all", "全部", total)] if total.rated else []


def render_satisfaction(rows: list[Row], heading: str) -> str:
    """The satisfaction table people read, one line per row (the overall row last)."""
    cells = [
        [
            row.label,
            row.figures.rated,
            row.figures.satisfied,
            row.figures.basically,
            row.figures.dissatisfied,
            percent(row.figures.rate),
        ]
        for row in rows
    ]
    headers = [heading, "评价数", "满意", "基本满意", "不满意", "满意率"]
    return render(headers, cells, right=[1, 2, 3, 4, 5])


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"
