"""Charts drawn on the server as inline SVG: no script, no font or file from outside.

    bar_chart([Bar("09时", 12)], title="各小时来电", unit="通")
    line_chart([Point("11-30", 0.94)], title="满意率", percent=True)
    stacked_bars([Stack("城关派出所", {"complaint": 3})], series, title="诉求类别")

Each function is pure: data in, markup out, every label escaped. The numbers are
also written as ``data-value`` on their shapes and in a ``<title>`` a reader can
hover, so the chart can be read without seeing it (and tested).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
HEIGHT = 240
# Margins: left for the scale, bottom for the labels.
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 24, 40
MAX_BAR = 48.0
BAR_COLOUR = "#3b6fb6"
LINE_COLOUR = "#2f9e44"
GRID_COLOUR = "#dde3ea"
TEXT_COLOUR = "#4a5563"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


@dataclass(frozen=True)
class Point:
    label: str
    value: float | None  # None: nothing to show that day (a gap in the line)


@dataclass(frozen=True)
class Stack:
    label: str
    values: Mapping[str, float]  # by series key


@dataclass(frozen=True)
class Series:
    key: str
    name: str
    colour: str


def nice_top(value: float) -> float:
    """The top of a four-step scale at or above ``value`` whose steps are whole, round
    numbers (1, 2 or 5 times a power of ten, or 25, 250 ...): 7 → 8, 12 → 20, 96 → 100."""
    if value <= 0 or not math.isfinite(value):
        return 4.0
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step == 2.5 and power < 10:
            continue  # 2.5 is a whole step only from 25 up
        if step * power >= raw - 1e-9:
            return float(4 * step * power)
    return float(40 * power)  # pragma: no cover - the loop always returns


def _bar_width(slot: float) -> float:
    """A bar fills most of its slot, but a lone bar is not a wall."""
    return min(slot * 0.7, MAX_BAR)


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _frame(title: str, body: str, kind: str, width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(kind)}"'
        f' viewBox="0 0 {width} {height}" width="100%" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
    )


def _scale(top: float, width: int, height: int, percent: bool, bottom: float = 0.0) -> str:
    """Five grid lines from ``bottom`` to ``top`` with their values on the left."""
    parts = []
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        value = bottom + (top - bottom) * i / 4
        y = TOP + plot_h - plot_h * i / 4
        text = f"{value * 100:.0f}%" if percent else _number(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"'
            f' stroke="{GRID_COLOUR}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11"'
            f' fill="{TEXT_COLOUR}">{text}</text>'
        )
    return "".join(parts)


def _labels(labels: Sequence[str], width: int, height: int) -> str:
    """Labels under the slots, thinned so that they do not overlap."""
    if not labels:
        return ""
    slot = (width - LEFT - RIGHT) / len(labels)
    widest = max(28, 11 * max(len(label) for label in labels) + 6)
    every = max(1, math.ceil(len(labels) * widest / (width - LEFT - RIGHT)))
    parts = []
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + slot * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" font-size="11"'
            f' fill="{TEXT_COLOUR}">{escape(label)}</text>'
        )
    return "".join(parts)


def _empty(title: str, kind: str, width: int, height: int) -> str:
    return _frame(
        title,
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="14"'
        f' fill="{TEXT_COLOUR}" class="empty">暂无数据</text>',
        kind,
        width,
        height,
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
    colour: str = BAR_COLOUR,
) -> str:
    """One bar per item; all zero (or none) is drawn as "暂无数据"."""
    if not any(b.value for b in bars):
        return _empty(title, "bar", width, height)
    top = nice_top(max(b.value for b in bars))
    plot_h = height - TOP - BOTTOM
    slot = (width - LEFT - RIGHT) / len(bars)
    parts = [_scale(top, width, height, False)]
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / top
        x = LEFT + slot * i + (slot - _bar_width(slot)) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{_bar_width(slot):.1f}"'
            f' height="{h:.1f}" fill="{colour}" data-label="{escape(bar.label)}"'
            f' data-value="{_number(bar.value)}"><title>{escape(bar.label)}：'
            f"{_number(bar.value)}{escape(unit)}</title></rect>"
        )
    parts.append(_labels([b.label for b in bars], width, height))
    return _frame(title, "".join(parts), "bar", width, height)


def line_chart(
    points: Sequence[Point],
    *,
    title: str,
    percent: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
    colour: str = LINE_COLOUR,
    floor: float | None = None,
) -> str:
    """A line through the points with a dot on each; a point without a value breaks the
    line. ``percent``: values are shares (0..1), the scale reads 0%..100% unless
    ``floor`` raises its bottom (e.g. 0.8 to see 90% against 94%)."""
    values = [p.value for p in points if p.value is not None]
    if not values:
        return _empty(title, "line", width, height)
    if percent:
        bottom = floor if floor is not None and min(values) >= floor else 0.0
        top = 1.0
    else:
        bottom, top = 0.0, nice_top(max(values))
    plot_h = height - TOP - BOTTOM
    slot = (width - LEFT - RIGHT) / len(points)
    span = top - bottom

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * (value - bottom) / span

    parts = [_scale(top, width, height, percent, bottom)]
    runs: list[list[str]] = [[]]
    dots = []
    for i, point in enumerate(points):
        if point.value is None:
            runs.append([])
            continue
        x, y = LEFT + slot * (i + 0.5), y_of(point.value)
        runs[-1].append(f"{x:.1f},{y:.1f}")
        shown = f"{point.value * 100:.1f}%" if percent else _number(point.value)
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"'
            f' data-label="{escape(point.label)}" data-value="{shown}">'
            f"<title>{escape(point.label)}：{shown}</title></circle>"
        )
    for run in runs:
        if len(run) > 1:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}"'
                ' stroke-width="2"/>'
            )
    parts.extend(dots)
    parts.append(_labels([p.label for p in points], width, height))
    return _frame(title, "".join(parts), "line", width, height)


def stacked_bars(
    stacks: Sequence[Stack],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One bar per item, split by series in the order given, with a legend."""
    totals = [sum(s.values.get(k.key, 0) for k in series) for s in stacks]
    if not any(totals):
        return _empty(title, "stacked", width, height)
    top = nice_top(max(totals))
    legend_h = 18
    plot_h = height - TOP - BOTTOM
    slot = (width - LEFT - RIGHT) / len(stacks)
    parts = [_scale(top, width, height, False)]
    for i, stack in enumerate(stacks):
        x = LEFT + slot * i + (slot - _bar_width(slot)) / 2
        base = float(TOP + plot_h)
        for s in series:
            value = stack.values.get(s.key, 0)
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{_bar_width(slot):.1f}" height="{h:.1f}"'
                f' fill="{s.colour}" data-label="{escape(stack.label)}"'
                f' data-series="{escape(s.key)}" data-value="{_number(value)}">'
                f"<title>{escape(stack.label)} · {escape(s.name)}：{_number(value)}"
                f"{escape(unit)}</title></rect>"
            )
    parts.append(_labels([s.label for s in stacks], width, height))
    used = [s for s in series if any(st.values.get(s.key, 0) for st in stacks)]
    x = float(LEFT)
    for s in used:
        parts.append(
            f'<rect x="{x:.0f}" y="{height - legend_h + 4}" width="10" height="10"'
            f' fill="{s.colour}"/><text x="{x + 14:.0f}" y="{height - legend_h + 13}"'
            f' font-size="11" fill="{TEXT_COLOUR}">{escape(s.name)}</text>'
        )
        x += 22 + 12 * len(s.name)
    return _frame(title, "".join(parts), "stacked", width, height)
