"""Period reports: the six rates over any range of local days, by unit and by kind of
business, on screen and as an Excel file.

The rates, defined in the README ("How the rates are counted"):

* 接通率: calls a seat took / calls that entered the seats' queue;
* 15秒接通率: calls a seat took within 15 s in the queue / calls that entered it;
* 放弃率: calls that left the queue before a seat took them / calls that entered it;
* 回访率: items whose citizen rated / items whose callback ended (rated or unreachable);
* 满意率: first-callback "satisfied" and "basically satisfied" / first-callback ratings;
* 整改按期率: orders reported at level 1 by their deadline / orders due or reported.

The hotline's three rates are the centre's (calls have no unit); the other three come
by unit (each unit's own items and orders; a unit asked for with ``--unit`` counts its
subtree) and by kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO

import xlsxwriter

from gateway.reports.board import pct, subtrees
from gateway.reports.errors import ReportRefused
from gateway.reports.periods import Span
from gateway.store.figures import Reads
from gateway.store.reports import Hotline, ReportQueries, UnitRow
from gateway.tables import render

# What each rate is, for the Excel file's own sheet (the README says the same).
DEFINITIONS = (
    ("接通率", "人工接通的来电 ÷ 进入人工排队的来电", "回访外呼、未转人工即挂机的来电不计"),
    (
        "15秒接通率",
        "排队等待不超过15秒即人工接通的来电 ÷ 进入人工排队的来电",
        "同上",
    ),
    ("放弃率", "排队中挂机、未获人工接听的来电 ÷ 进入人工排队的来电", "同上"),
    (
        "回访率",
        "群众作出评价的服务事项 ÷ 回访已结束的服务事项（已评价＋联系不上）",
        "不需回访的业务、尚在回访中的事项不计；按服务日期计入时段",
    ),
    (
        "满意率",
        "首次回访中“满意”和“基本满意”的评价 ÷ 首次回访的全部评价",
        "整改后的再次回访不计；按评价时间计入时段",
    ),
    (
        "整改按期率",
        "在一级期限内反馈整改的工单 ÷ 已到期或已反馈的工单",
        "尚未到期且未反馈的工单不计；按工单生成时间计入时段",
    ),
)


@dataclass(frozen=True)
class RateRow:
    """The callback and rectification figures of one unit or kind."""

    key: str
    label: str
    rated_items: int = 0
    unreachable_items: int = 0
    satisfied: int = 0
    basically: int = 0
    dissatisfied: int = 0
    orders: int = 0
    orders_on_time: int = 0

    @property
    def callback_rate(self) -> float | None:
        settled = self.rated_items + self.unreachable_items
        return self.rated_items / settled if settled else None

    @property
    def satisfaction(self) -> float | None:
        rated = self.satisfied + self.basically + self.dissatisfied
        return (self.satisfied + self.basically) / rated if rated else None

    @property
    def on_time_rate(self) -> float | None:
        return self.orders_on_time / self.orders if self.orders else None


@dataclass(frozen=True)
class PeriodReport:
    span: Span
    made_at: datetime
    unit: UnitRow | None
    hotline: Hotline
    by_unit: list[RateRow]
    by_kind: list[RateRow]
    total: RateRow
    notes: list[str] = field(default_factory=list)

    @property
    def answer_rate(self) -> float | None:
        return _ratio(self.hotline.answered, self.hotline.queued)

    @property
    def answer_15s_rate(self) -> float | None:
        return _ratio(self.hotline.answered_15s, self.hotline.queued)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.hotline.abandoned, self.hotline.queued)


def _ratio(n: int, d: int) -> float | None:
    return n / d if d else None


def _add(rows: dict[str, list[int]], key: str, values: Sequence[int], at: int) -> None:
    row = rows.setdefault(key, [0] * 7)
    for offset, value in enumerate(values):
        row[at + offset] += value


async def build_period(
    reads: Reads,
    span: Span,
    *,
    now: datetime,
    unit_code: str | None,
    kind_names: Mapping[str, str],
) -> PeriodReport:
    """The rates of ``span``, of every unit or of ``unit_code``'s subtree."""
    queries = ReportQueries(reads)
    units = await queries.units()
    by_id = {u.id: u for u in units}
    unit: UnitRow | None = None
    members: set[int] | None = None
    if unit_code is not None:
        unit = next((u for u in units if u.code == unit_code), None)
        if unit is None:
            raise ReportRefused(f"no unit {unit_code!r}")
        members = subtrees(units)[unit.id]
    # Per unit and per kind: rated, unreachable, satisfied, basically, dissatisfied,
    # orders, on time.
    per_unit: dict[str, list[int]] = {}
    per_kind: dict[str, list[int]] = {}
    for unit_id, kind, rated, unreachable in await queries.items_settled(span.since, span.until):
        if members is None or unit_id in members:
            _add(per_unit, by_id[unit_id].code, (rated, unreachable), 0)
            _add(per_kind, kind, (rated, unreachable), 0)
    for unit_id, scores in (await queries.scores_by_unit(span.since, span.until)).items():
        if members is None or unit_id in members:
            _add(per_unit, by_id[unit_id].code, scores, 2)
    if members is None:
        kind_scores = await queries.scores_by_kind(span.since, span.until)
    else:
        kind_scores = await queries.scores_by_kind_of_units(span.since, span.until, members)
    for kind, scores in kind_scores.items():
        _add(per_kind, kind, scores, 2)
    for unit_id, kind, orders, on_time in await queries.orders_due(span.since, span.until, now):
        if members is None or unit_id in members:
            _add(per_unit, by_id[unit_id].code, (orders, on_time), 5)
            _add(per_kind, kind, (orders, on_time), 5)
    names = {u.code: u.name for u in units}
    by_unit = [RateRow(code, names[code], *values) for code, values in sorted(per_unit.items())]
    by_kind = [
        RateRow(code, kind_names.get(code, code), *values)
        for code, values in sorted(per_kind.items())
    ]
    totals = [sum(row[i] for row in per_unit.values()) for i in range(7)]
    notes = []
    if unit is not None:
        notes.append(f"单位：{unit.name}（含下属单位）；热线为全中心数据（来电不分单位）。")
    return PeriodReport(
        span=span,
        made_at=now,
        unit=unit,
        hotline=await queries.hotline(span.since, span.until),
        by_unit=by_unit,
        by_kind=by_kind,
        total=RateRow("all", "合计", *totals),
        notes=notes,
    )


def _shown(rate: float | None) -> str:
    return "—" if rate is None else pct(rate)


_HEADERS = ("回访结束", "已评价", "回访率", "首次评价", "满意率", "到期工单", "按期", "整改按期率")


def _cells(row: RateRow) -> list[object]:
    rated = row.satisfied + row.basically + row.dissatisfied
    return [
        row.rated_items + row.unreachable_items,
        row.rated_items,
        _shown(row.callback_rate),
        rated,
        _shown(row.satisfaction),
        row.orders,
        row.orders_on_time,
        _shown(row.on_time_rate),
    ]


def render_period_text(report: PeriodReport) -> str:
    """The report as the command line prints it."""
    h = report.hotline
    lines = [
        f"时段 {report.span.first} 至 {report.span.last}（{report.span.days} 天）",
        *report.notes,
        "",
        render(
            ("热线", "转人工", "人工接通", "15秒内接通", "放弃", "接通率", "15秒接通率", "放弃率"),
            [
                (
                    "全中心",
                    h.queued,
                    h.answered,
                    h.answered_15s,
                    h.abandoned,
                    _shown(report.answer_rate),
                    _shown(report.answer_15s_rate),
                    _shown(report.abandon_rate),
                )
            ],
            right=range(1, 8),
        ),
        "",
        render(
            ("单位", *_HEADERS),
            [[r.label, *_cells(r)] for r in [*report.by_unit, report.total]],
            right=range(1, 9),
        ),
        "",
        render(
            ("业务", *_HEADERS),
            [[r.label, *_cells(r)] for r in report.by_kind],
            right=range(1, 9),
        ),
    ]
    return "\n".join(lines)


def period_xlsx(report: PeriodReport) -> bytes:
    """The report as an Excel workbook: 汇总, 按单位, 按业务 and 口径说明 sheets; rates are
    numbers formatted as percentages (an empty cell where nothing was counted)."""
    out = BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    bold = book.add_format({"bold": True, "bg_color": "#EEEEEE", "border": 1})
    rate = book.add_format({"num_format": "0.0%"})

    def put_rate(sheet: xlsxwriter.worksheet.Worksheet, r: int, c: int, v: float | None) -> None:
        if v is None:
            sheet.write_blank(r, c, None)
        else:
            sheet.write_number(r, c, v, rate)

    summary = book.add_worksheet("汇总")
    summary.set_column(0, 0, 22)
    summary.set_column(1, 1, 16)
    summary.write_row(0, 0, ("时段", f"{report.span.first} 至 {report.span.last}"))
    summary.write_row(1, 0, ("单位", report.unit.name if report.unit else "全部单位"))
    h, t = report.hotline, report.total
    counts = (
        ("进入人工排队的来电", h.queued),
        ("人工接通", h.answered),
        ("15秒内人工接通", h.answered_15s),
        ("排队放弃", h.abandoned),
    )
    for index, (label, count) in enumerate(counts):
        summary.write_string(3 + index, 0, label)
        summary.write_number(3 + index, 1, count)
    rates = (
        ("接通率", report.answer_rate),
        ("15秒接通率", report.answer_15s_rate),
        ("放弃率", report.abandon_rate),
        ("回访率", t.callback_rate),
        ("满意率", t.satisfaction),
        ("整改按期率", t.on_time_rate),
    )
    for index, (label, value) in enumerate(rates):
        summary.write_string(8 + index, 0, label, bold)
        put_rate(summary, 8 + index, 1, value)

    for title, first, rows in (
        ("按单位", "单位", [*report.by_unit, report.total]),
        ("按业务", "业务", report.by_kind),
    ):
        sheet = book.add_worksheet(title)
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, 8, 12)
        sheet.write_row(0, 0, (first, "代码", *_HEADERS), bold)
        for r, row in enumerate(rows, start=1):
            sheet.write_string(r, 0, row.label)
            sheet.write_string(r, 1, row.key)
            sheet.write_number(r, 2, row.rated_items + row.unreachable_items)
            sheet.write_number(r, 3, row.rated_items)
            put_rate(sheet, r, 4, row.callback_rate)
            sheet.write_number(r, 5, row.satisfied + row.basically + row.dissatisfied)
            put_rate(sheet, r, 6, row.satisfaction)
            sheet.write_number(r, 7, row.orders)
            sheet.write_number(r, 8, row.orders_on_time)
            put_rate(sheet, r, 9, row.on_time_rate)
        sheet.freeze_panes(1, 1)

    defs = book.add_worksheet("口径说明")
    defs.set_column(0, 0, 12)
    defs.set_column(1, 2, 60)
    defs.write_row(0, 0, ("指标", "计算方法", "不计入"), bold)
    for r, definition in enumerate(DEFINITIONS, start=1):
        defs.write_row(r, 0, definition)
    book.close()
    return out.getvalue()
