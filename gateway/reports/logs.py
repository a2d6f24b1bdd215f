"""The daily appeals log (民生诉求日志) and the weekly report: what happened in a span of
local days, for the bureau's leaders.

:func:`build_log` reads the span's figures on the read connection: the hotline (calls,
answered, answered within 15 s, abandoned), appeals by channel, category and unit with
repeats merged (one matter, one case), callbacks made and satisfaction, every
dissatisfied rating with its reason, orders open and overdue, slow cases named with
their owner unit and its chief (story 1), the share of each category per unit
(story 4), and the board of the span's last day. :func:`log_document` lays it out;
:func:`render_daily_html` and :func:`render_weekly_html` give the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gateway.appeals.service import CHANNEL_NAMES as INTAKE_CHANNEL_NAMES
from gateway.callbacks.policy import Satisfaction
from gateway.callbacks.service import REASONS
from gateway.clock import Clock
from gateway.reports.board import (
    COLOUR_NAMES,
    Thresholds,
    UnitColour,
    board_of,
    day_span,
    own_figures,
    pct,
)
from gateway.reports.document import Document, Part, Table, render_html
from gateway.reports.periods import Span
from gateway.store.cases import CATEGORIES, CATEGORY_NAMES, CHANNEL_NAMES, STATUS_NAMES
from gateway.store.figures import FigureRepository, Reads
from gateway.store.reports import Dissatisfied, Hotline, OpenCase, ReportQueries, UnitRow

# Slow cases listed by name (all are counted).
SLOW_LISTED = 200
ORDER_STATUS_NAMES = {"open": "整改中", "reported": "已反馈待复访", "closed": "已办结"}


@dataclass(frozen=True)
class ActivityLog:
    """The figures of a daily log or a weekly report (see the module docstring)."""

    span: Span
    made_at: datetime
    as_of: datetime  # open and overdue are counted as they stand at this moment
    tz: tzinfo
    hotline: Hotline
    cases_new: int
    cases_merged: int
    by_channel: dict[str, int]
    submissions: dict[str, tuple[int, int]]
    by_category: dict[str, int]
    by_unit: dict[int | None, int]
    scores: Satisfaction  # first-callback ratings given in the span
    attempts: dict[str, int]
    dissatisfied: list[Dissatisfied]
    orders_open: int
    orders_overdue: int
    orders_reported: int
    slow_total: int
    slow: list[OpenCase]
    shares: dict[int | None, dict[str, int]]
    board: list[UnitColour]
    units: dict[int, UnitRow] = field(default_factory=dict)
    chiefs: dict[int, tuple[str, str]] = field(default_factory=dict)
    kind_names: dict[str, str] = field(default_factory=dict)

    @property
    def calls_placed(self) -> int:
        return sum(
            n for k, n in self.attempts.items() if k.startswith("call:") and k != "call:placed"
        )

    @property
    def calls_answered(self) -> int:
        return sum(
            self.attempts.get(k, 0) for k in ("call:answered", "call:rated", "call:no_rating")
        )

    @property
    def rating_texts(self) -> int:
        return self.attempts.get("sms:sent", 0)

    @property
    def red_units(self) -> list[UnitColour]:
        return [u for u in self.board if u.colour == "red"]

    def unit_name(self, unit_id: int | None) -> str:
        if unit_id is None:
            return "未分派"
        unit = self.units.get(unit_id)
        return unit.name if unit else f"#{unit_id}"

    def chief_of(self, unit_id: int | None) -> str:
        chief = self.chiefs.get(unit_id) if unit_id is not None else None
        return f"{chief[1]}（{chief[0]}）" if chief else "—"


async def build_log(
    reads: Reads,
    span: Span,
    *,
    now: datetime,
    tz: ZoneInfo,
    thresholds: Thresholds,
    kind_names: Mapping[str, str],
) -> ActivityLog:
    """The figures of ``span`` (see the module docstring), read on ``reads``."""
    queries = ReportQueries(reads)
    figures = FigureRepository(reads, Clock(tz))
    as_of = min(now, span.until)
    units = await queries.units()
    opened = await queries.cases_opened(span.since, span.until)
    by_channel: dict[str, int] = {}
    by_category: dict[str, int] = {}
    by_unit: dict[int | None, int] = {}
    for channel, category, unit_id, n in opened:
        by_channel[channel] = by_channel.get(channel, 0) + n
        by_category[category] = by_category.get(category, 0) + n
        by_unit[unit_id] = by_unit.get(unit_id, 0) + n
    unit_scores = await queries.scores_by_unit(span.since, span.until)
    total = [sum(s[i] for s in unit_scores.values()) for i in range(3)]
    orders_open, orders_overdue, orders_reported = await queries.open_order_counts(as_of)
    slow_total, slow = await queries.slow_cases(as_of, SLOW_LISTED)
    # The board of the span's last day, over the configured window.
    window = span_window(span, thresholds, tz)
    window_scores = await queries.scores_by_unit(*window)
    overdue_orders = await queries.overdue_orders_by_unit(as_of)
    overdue_cases = await queries.overdue_cases_by_unit(as_of)
    own = {u.id: own_figures(window_scores, overdue_orders, overdue_cases, u.id) for u in units}
    return ActivityLog(
        span=span,
        made_at=now,
        as_of=as_of,
        tz=tz,
        hotline=await queries.hotline(span.since, span.until),
        cases_new=sum(by_channel.values()),
        cases_merged=await queries.cases_merged(span.since, span.until),
        by_channel=by_channel,
        submissions=await queries.submissions(span.since, span.until),
        by_category=by_category,
        by_unit=by_unit,
        scores=Satisfaction(sum(total), total[0], total[1], total[2]),
        attempts=await figures.attempt_outcomes(span.since, span.until),
        dissatisfied=await queries.dissatisfied(span.since, span.until),
        orders_open=orders_open,
        orders_overdue=orders_overdue,
        orders_reported=orders_reported,
        slow_total=slow_total,
        slow=slow,
        shares=await queries.category_by_unit(span.since, span.until),
        board=board_of(units, own, thresholds, None),
        units={u.id: u for u in units},
        chiefs=await queries.chiefs(),
        kind_names=dict(kind_names),
    )


def span_window(span: Span, thresholds: Thresholds, tz: tzinfo) -> tuple[datetime, datetime]:
    """The board's rolling window ending with the span's last day."""
    since, _ = day_span(span.last - timedelta(days=thresholds.window_days - 1), tz)
    return since, span.until


# -- the document ---------------------------------------------------------------


def _rate(n: int, d: int) -> str:
    return pct(n / d) if d else "—"


def _age(delta_s: float) -> str:
    hours = max(0, int(delta_s // 3600))
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if days else f"{hours}小时"


def log_document(log: ActivityLog, title: str) -> Document:
    """The log laid out in parts (the HTML page and the PDF are both made from it)."""
    local = log.made_at.astimezone(log.tz)
    as_of = log.as_of.astimezone(log.tz)
    subtitle = (
        f"统计时段：{log.span.label}（北京时间）· 工单和诉求状态截至 {as_of:%Y-%m-%d %H:%M}"
        f" · 生成于 {local:%Y-%m-%d %H:%M}"
    )
    h = log.hotline
    parts = [
        Part(
            "一、热线接听",
            figures=[
                ("呼入总量（通）", str(h.total)),
                ("转人工（通）", str(h.queued)),
                ("人工接通（通）", str(h.answered)),
                ("15秒内接通（通）", str(h.answered_15s)),
                ("排队放弃（通）", str(h.abandoned)),
                ("接通率", _rate(h.answered, h.queued)),
                ("15秒接通率", _rate(h.answered_15s, h.queued)),
                ("放弃率", _rate(h.abandoned, h.queued)),
            ],
        ),
        _appeals_part(log),
        _callbacks_part(log),
        _dissatisfied_part(log),
        _orders_part(log),
        _slow_part(log),
        _shares_part(log),
        _board_part(log),
    ]
    return Document(title, subtitle, parts)


def _appeals_part(log: ActivityLog) -> Part:
    received = sum(r for r, _ in log.submissions.values())
    repeats = sum(p for _, p in log.submissions.values())
    channels = Table(
        ("渠道", "新立诉求（件）"),
        [(CHANNEL_NAMES.get(c, c), str(n)) for c, n in sorted(log.by_channel.items())],
        numeric=(1,),
    )
    intake = Table(
        ("受理渠道", "收到诉求（件）", "其中重复诉求并案（件）"),
        [
            (INTAKE_CHANNEL_NAMES.get(c, c), str(r), str(p))
            for c, (r, p) in sorted(log.submissions.items())
        ],
        numeric=(1, 2),
        empty="本时段网站、微信、信件、来访、12345 渠道无诉求",
    )
    categories = Table(
        ("类别", "件数"),
        [(CATEGORY_NAMES[c], str(log.by_category[c])) for c in CATEGORIES if c in log.by_category],
        numeric=(1,),
    )
    units = Table(
        ("承办单位", "件数"),
        [
            (log.unit_name(u), str(n))
            for u, n in sorted(log.by_unit.items(), key=lambda kv: (-kv[1], log.unit_name(kv[0])))
        ],
        numeric=(1,),
    )
    return Part(
        "二、群众诉求（重复诉求已合并）",
        figures=[
            ("新立诉求（件）", str(log.cases_new)),
            ("各渠道收到（件）", str(received)),
            ("重复诉求并入在办（件）", str(repeats)),
            ("人工并案（件）", str(log.cases_merged)),
        ],
        tables=[channels, intake, categories, units],
        notes=["一事一案：同一群众就同一事项在多个渠道反映的，合并为一件，不重复计数。"],
    )


def _callbacks_part(log: ActivityLog) -> Part:
    s = log.scores
    return Part(
        "三、回访评议",
        figures=[
            ("回访电话（次）", str(log.calls_placed)),
            ("电话接通（次）", str(log.calls_answered)),
            ("短信评价请求（条）", str(log.rating_texts)),
            ("首次回访评价（件）", str(s.rated)),
            ("满意", str(s.satisfied)),
            ("基本满意", str(s.basically)),
            ("不满意", str(s.dissatisfied)),
            ("满意率", "—" if s.rate is None else pct(s.rate)),
        ],
    )


def _dissatisfied_part(log: ActivityLog) -> Part:
    rows = []
    for d in log.dissatisfied:
        rows.append(
            (
                d.rated_at.astimezone(log.tz).strftime("%m-%d %H:%M"),
                log.unit_name(d.unit_id),
                log.kind_names.get(d.kind_code, d.kind_code),
                REASONS.get(d.reason or "", d.reason or "未说明"),
                "首次" if d.round == 1 else f"第{d.round}次",
                d.item_reference,
                d.order_ref or "—",
                "—" if d.order_status is None
                else f"{d.order_level}级 {ORDER_STATUS_NAMES.get(d.order_status, d.order_status)}",
            )
        )  # fmt: skip
    return Part(
        f"四、不满意件（{len(rows)} 件，逐件列出原因）",
        tables=[
            Table(
                (
                    "评价时间",
                    "单位",
                    "业务",
                    "不满意原因",
                    "回访",
                    "业务编号",
                    "整改工单",
                    "工单状态",
                ),
                rows,
                empty="本时段无不满意评价",
            )
        ],
    )


def _orders_part(log: ActivityLog) -> Part:
    return Part(
        "五、整改工单",
        figures=[
            ("在办（待单位反馈）", str(log.orders_open)),
            ("其中已超期", str(log.orders_overdue)),
            ("已反馈待复访", str(log.orders_reported)),
        ],
    )


def _slow_part(log: ActivityLog) -> Part:
    rows = []
    for c in log.slow:
        late = (log.as_of - c.deadline).total_seconds() if c.deadline else 0.0
        rows.append(
            (
                c.number,
                CATEGORY_NAMES.get(c.category, c.category),
                c.subject or "—",
                log.unit_name(c.owner_unit_id),
                log.chief_of(c.owner_unit_id),
                STATUS_NAMES.get(c.status, c.status),
                _age((log.as_of - c.created_at).total_seconds()),
                c.deadline.astimezone(log.tz).strftime("%m-%d %H:%M") if c.deadline else "—",
                _age(late) if late > 0 else "未受理超时",
            )
        )
    notes = []
    if log.slow_total > len(rows):
        notes.append(f"共 {log.slow_total} 件，按期限先后列出前 {len(rows)} 件。")
    return Part(
        f"六、办理缓慢的诉求（{log.slow_total} 件，点名到单位和负责人）",
        notes=notes,
        tables=[
            Table(
                (
                    "案号",
                    "类别",
                    "事项",
                    "承办单位",
                    "负责人",
                    "状态",
                    "已历时",
                    "办理时限",
                    "超期",
                ),
                rows,
                empty="无超期或超时未受理的诉求",
            )
        ],
    )


def _shares_part(log: ActivityLog) -> Part:
    present = [c for c in CATEGORIES if any(c in cats for cats in log.shares.values())]
    rows = []
    for unit_id, cats in sorted(
        log.shares.items(), key=lambda kv: (-sum(kv[1].values()), log.unit_name(kv[0]))
    ):
        total = sum(cats.values())
        rows.append(
            (
                log.unit_name(unit_id),
                str(total),
                *(f"{cats.get(c, 0)}（{_rate(cats.get(c, 0), total)}）" for c in present),
            )
        )
    headers = ("单位", "诉求总数", *(CATEGORY_NAMES[c] for c in present))
    return Part(
        "七、各单位诉求类别占比",
        tables=[Table(headers, rows, numeric=tuple(range(1, len(headers))), empty="本时段无诉求")],
    )


def _board_part(log: ActivityLog) -> Part:
    rows = [
        (
            u.unit_name,
            COLOUR_NAMES[u.colour],
            "—" if u.satisfaction_pct is None else f"{u.satisfaction_pct:.1f}%",
            str(u.dissatisfied),
            str(u.overdue_orders),
            str(u.overdue_cases),
            "；".join(u.reasons),
        )
        for u in log.board
    ]
    return Part(
        "八、三色预警",
        tables=[
            Table(
                ("单位", "预警", "满意率", "不满意", "超期工单", "超期诉求", "原因"),
                rows,
                numeric=(2, 3, 4, 5),
                marks=[u.colour for u in log.board],
            )
        ],
    )


def render_daily_html(log: ActivityLog) -> str:
    """The daily log's page."""
    return render_html(log_document(log, f"民生诉求日志 · {log.span.label}"))


def render_weekly_html(log: ActivityLog) -> str:
    """The weekly report's page."""
    return render_html(log_document(log, f"民生警务周报 · {log.span.key}（{log.span.label}）"))


def headline(log: ActivityLog) -> dict[str, str]:
    """The figures of the leaders' text."""
    h = log.hotline
    return {
        "answered": str(h.answered),
        "queued": str(h.queued),
        "cases": str(log.cases_new),
        "rated": str(log.scores.rated),
        "satisfaction": "—" if log.scores.rate is None else pct(log.scores.rate),
        "dissatisfied": str(len(log.dissatisfied)),
        "overdue": str(log.orders_overdue),
        "slow": str(log.slow_total),
        "red": str(len(log.red_units)),
    }
