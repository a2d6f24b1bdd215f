"""First-callback satisfaction tables: per unit, per kind, per local day, overall."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.callbacks.policy import Satisfaction, satisfaction
from gateway.clock import Clock
from gateway.tables import render

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
