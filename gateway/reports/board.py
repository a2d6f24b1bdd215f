"""The three colours: each unit green, yellow or red, with the reasons in words.

:func:`colour_of` is the pure rule: a unit's figures over a rolling window and the
configured :class:`Thresholds` give a colour and the Chinese phrases that explain it
("满意率 89.2%，低于 90%", "超期工单 2 件"); a green unit gets its reason too.
:func:`unit_board` gathers the figures from the store's read connection and applies it
to every unit the viewer may see.

A unit's figures are its own and those of the units under it (a sub-bureau counts its
stations): first-callback ratings given in the window (satisfaction and dissatisfied),
rectification orders still waiting for the unit's report past their deadline, and
cases not answered past their deadline, both as they stand at the end of the day (or
now, for today).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gateway.config import ReportsSection
from gateway.store.figures import Reads
from gateway.store.reports import ReportQueries, UnitRow

COLOURS = ("green", "yellow", "red")
COLOUR_NAMES = {"green": "绿", "yellow": "黄", "red": "红"}
# Units the board shows (the city itself and the leadership offices are not assessed).
BOARD_KINDS = ("sub_bureau", "county_bureau", "department", "station")
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Thresholds:
    """Where yellow and red begin (``[reports]`` in the configuration, whose defaults
    :data:`DEFAULT_THRESHOLDS` holds); 0 turns a count's rule off."""

    window_days: int
    green_satisfaction: float
    red_satisfaction: float
    yellow_dissatisfied: int
    red_dissatisfied: int
    yellow_overdue_orders: int
    red_overdue_orders: int
    yellow_overdue_cases: int
    red_overdue_cases: int

    @classmethod
    def from_config(cls, section: ReportsSection) -> Thresholds:
        """The thresholds of the ``[reports]`` section (the same names)."""
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})


DEFAULT_THRESHOLDS = Thresholds.from_config(ReportsSection())


@dataclass(frozen=True)
class UnitFigures:
    """What the colour of one unit is decided on."""

    satisfied: int = 0
    basically: int = 0
    dissatisfied: int = 0
    overdue_orders: int = 0
    overdue_cases: int = 0

    @property
    def rated(self) -> int:
        return self.satisfied + self.basically + self.dissatisfied

    @property
    def satisfaction(self) -> float | None:
        """(satisfied + basically satisfied) / rated; None when nobody rated."""
        return (self.satisfied + self.basically) / self.rated if self.rated else None

    def __add__(self, other: UnitFigures) -> UnitFigures:
        return UnitFigures(
            self.satisfied + other.satisfied,
            self.basically + other.basically,
            self.dissatisfied + other.dissatisfied,
            self.overdue_orders + other.overdue_orders,
            self.overdue_cases + other.overdue_cases,
        )


@dataclass(frozen=True)
class UnitColour:
    unit_id: int
    unit_code: str
    unit_name: str
    colour: str  # 'green' | 'yellow' | 'red'
    reasons: list[str] = field(default_factory=list)
    satisfaction_pct: float | None = None
    dissatisfied: int = 0
    overdue_orders: int = 0
    overdue_cases: int = 0


def pct(rate: float) -> str:
    """A rate as people read it: 89.2%."""
    return f"{rate * 100:.1f}%"


def _limit(value: float) -> str:
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def colour_of(figures: UnitFigures, thresholds: Thresholds) -> tuple[str, list[str]]:
    """The unit's colour and every reason for it, in Chinese, worst first."""
    red: list[str] = []
    yellow: list[str] = []
    rate = figures.satisfaction
    if rate is not None:
        shown = pct(rate)
        if rate < thresholds.red_satisfaction:
            red.append(f"满意率 {shown}，低于 {_limit(thresholds.red_satisfaction)}")
        elif rate < thresholds.green_satisfaction:
            yellow.append(f"满意率 {shown}，低于 {_limit(thresholds.green_satisfaction)}")
    counts = (
        ("不满意", figures.dissatisfied, "件", thresholds.yellow_dissatisfied,
         thresholds.red_dissatisfied),
        ("超期工单", figures.overdue_orders, "件", thresholds.yellow_overdue_orders,
         thresholds.red_overdue_orders),
        ("超期诉求", figures.overdue_cases, "件", thresholds.yellow_overdue_cases,
         thresholds.red_overdue_cases),
    )  # fmt: skip
    for label, n, measure, yellow_at, red_at in counts:
        if red_at and n >= red_at:
            red.append(f"{label} {n} {measure}（红色线 {red_at} {measure}）")
        elif yellow_at and n >= yellow_at:
            yellow.append(f"{label} {n} {measure}")
    if red:
        return "red", red + yellow
    if yellow:
        return "yellow", yellow
    if rate is None:
        reason = f"近{thresholds.window_days}天无回访评价，无超期工单和诉求"
    else:
        reason = f"满意率 {pct(rate)}，不低于 {_limit(thresholds.green_satisfaction)}"
        if not (figures.overdue_orders or figures.overdue_cases):
            reason += "；无超期工单和诉求"
    return "green", [reason]


def day_span(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local day as the UTC span it covers."""
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def subtrees(units: list[UnitRow]) -> dict[int, set[int]]:
    """Each unit's id → the ids of itself and every unit under it."""
    children: dict[int | None, list[int]] = {}
    for unit in units:
        children.setdefault(unit.parent_id, []).append(unit.id)
    found: dict[int, set[int]] = {}
    for unit in units:
        seen = {unit.id}
        stack = [unit.id]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        found[unit.id] = seen
    return found


async def unit_board(
    reader: Reads,
    *,
    day: date,
    scope_units: frozenset[int] | None,
    thresholds: Thresholds | None = None,
    tz: tzinfo = SHANGHAI,
    now: datetime | None = None,
) -> list[UnitColour]:
    """Every unit of :data:`BOARD_KINDS` the viewer may see (``scope_units``; None:
    all), coloured over the ``thresholds.window_days`` local days ending with ``day``;
    red first, then yellow, then green, each by unit code."""
    limits = thresholds or DEFAULT_THRESHOLDS
    queries = ReportQueries(reader)
    first = day - timedelta(days=limits.window_days - 1)
    since, _ = day_span(first, tz)
    _, until = day_span(day, tz)
    at = min(until, now or datetime.now(UTC))
    units = await queries.units()
    scores = await queries.scores_by_unit(since, until)
    orders = await queries.overdue_orders_by_unit(at)
    cases = await queries.overdue_cases_by_unit(at)
    own = {unit.id: own_figures(scores, orders, cases, unit.id) for unit in units}
    return board_of(units, own, limits, scope_units)


def own_figures(
    scores: Mapping[int, list[int]],
    orders: Mapping[int, int],
    cases: Mapping[int, int],
    unit_id: int,
) -> UnitFigures:
    """A unit's own figures (not its subtree's) from the store's per-unit counts."""
    s = scores.get(unit_id, [0, 0, 0])
    return UnitFigures(s[0], s[1], s[2], orders.get(unit_id, 0), cases.get(unit_id, 0))


def board_of(
    units: list[UnitRow],
    own: Mapping[int, UnitFigures],
    thresholds: Thresholds,
    scope_units: frozenset[int] | None,
) -> list[UnitColour]:
    """The board from each unit's own figures (rolled up its subtree), as :func:`unit_board`."""
    trees = subtrees(units)
    board = []
    for unit in units:
        if unit.kind not in BOARD_KINDS:
            continue
        if scope_units is not None and unit.id not in scope_units:
            continue
        total = UnitFigures()
        for member in trees[unit.id]:
            total = total + own.get(member, UnitFigures())
        colour, reasons = colour_of(total, thresholds)
        rate = total.satisfaction
        board.append(
            UnitColour(
                unit.id,
                unit.code,
                unit.name,
                colour,
                reasons,
                None if rate is None else round(rate * 100, 1),
                total.dissatisfied,
                total.overdue_orders,
                total.overdue_cases,
            )
        )
    rank = {"red": 0, "yellow": 1, "green": 2}
    return sorted(board, key=lambda u: (rank[u.colour], u.unit_code))
