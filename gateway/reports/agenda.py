"""The agenda of a sub-bureau's (or county bureau's) dispatch meeting, held on
Tuesdays, Thursdays and Saturdays: its unresolved cases and its dissatisfied items,
each with the unit and chief who own it, its age and its history, so that chiefs can
be named at the meeting.

The agenda covers the unit and every unit under it (its stations), as things stand
when it is made (the evening before, or on demand).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from gateway.callbacks.service import REASONS
from gateway.reports.board import subtrees
from gateway.reports.document import Document, Part, Table, render_html
from gateway.reports.errors import ReportRefused
from gateway.reports.logs import ORDER_STATUS_NAMES
from gateway.store.cases import CATEGORY_NAMES, STATUS_NAMES
from gateway.store.figures import Reads
from gateway.store.reports import HistoryLine, OpenCase, OpenOrder, ReportQueries, UnitRow

# Units that hold the meetings.
MEETING_KINDS = ("sub_bureau", "county_bureau")
ACTION_NAMES = {
    "opened": "立案",
    "assigned": "分派",
    "accepted": "受理",
    "answered": "答复群众",
    "reopened": "重新办理",
    "split": "拆分",
    "status": "状态变更",
    "merged": "并案",
    "repeat": "重复诉求并入",
    "note": "备注",
    "created": "生成工单",
    "notified": "短信通知",
    "skipped_no_mobile": "无手机号未通知",
    "reported": "单位反馈整改",
    "escalated": "升级督办",
    "recalled": "再次回访",
    "closed": "办结",
}
WEEKDAYS = "一二三四五六日"
CASE_HEADERS = ("案号", "类别", "事项", "承办单位", "负责人", "状态", "已历时", "办理时限")
ORDER_HEADERS = (
    "工单号", "单位", "负责人", "业务", "不满意原因", "级别与状态", "已历时", "整改期限"
)  # fmt: skip


@dataclass(frozen=True)
class Agenda:
    unit: UnitRow
    day: date
    made_at: datetime
    tz: tzinfo
    cases: list[OpenCase]
    case_history: dict[int, list[HistoryLine]]
    orders: list[OpenOrder]
    order_history: dict[int, list[HistoryLine]]
    units: dict[int, UnitRow]
    chiefs: dict[int, tuple[str, str]]
    kind_names: dict[str, str]


async def meeting_unit(reads: Reads, code: str) -> UnitRow:
    """The unit that holds the meeting; :class:`ReportRefused` for an unknown unit or
    one that holds none."""
    for unit in await ReportQueries(reads).units():
        if unit.code == code:
            if unit.kind not in MEETING_KINDS:
                raise ReportRefused(
                    f"unit {code} is a {unit.kind}: meetings are held by sub-bureaus and"
                    " county bureaus"
                )
            return unit
    raise ReportRefused(f"no unit {code!r} (see `gateway cases` or the seed for unit codes)")


async def build_agenda(
    reads: Reads,
    unit: UnitRow,
    day: date,
    *,
    now: datetime,
    tz: tzinfo,
    kind_names: dict[str, str],
) -> Agenda:
    queries = ReportQueries(reads)
    units = await queries.units()
    members = subtrees(units)[unit.id]
    cases = await queries.unresolved_cases(members)
    orders = await queries.open_orders(members)
    return Agenda(
        unit=unit,
        day=day,
        made_at=now,
        tz=tz,
        cases=cases,
        case_history=await queries.case_histories([c.id for c in cases]),
        orders=orders,
        order_history=await queries.order_histories([o.id for o in orders]),
        units={u.id: u for u in units},
        chiefs=await queries.chiefs(),
        kind_names=kind_names,
    )


def _age(delta: timedelta) -> str:
    hours = max(0, int(delta.total_seconds() // 3600))
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if days else f"{hours}小时"


def _lines(agenda: Agenda, history: list[HistoryLine]) -> list[str]:
    return [
        f"{h.at.astimezone(agenda.tz):%m-%d %H:%M} {ACTION_NAMES.get(h.action, h.action)}"
        f"（{h.actor}）" + (f"：{h.note}" if h.note else "")
        for h in history
    ]


def agenda_document(agenda: Agenda) -> Document:
    made = agenda.made_at.astimezone(agenda.tz)
    now = agenda.made_at

    def owner(unit_id: int | None) -> tuple[str, str]:
        if unit_id is None:
            return "未分派", "—"
        unit = agenda.units.get(unit_id)
        chief = agenda.chiefs.get(unit_id)
        return (unit.name if unit else f"#{unit_id}", f"{chief[1]}（{chief[0]}）" if chief else "—")

    case_rows = []
    for c in agenda.cases:
        unit_name, chief = owner(c.owner_unit_id)
        late = c.deadline is not None and c.deadline < now
        case_rows.append(
            (
                c.number,
                CATEGORY_NAMES.get(c.category, c.category),
                c.subject or "—",
                unit_name,
                chief,
                STATUS_NAMES.get(c.status, c.status),
                _age(now - c.created_at),
                (c.deadline.astimezone(agenda.tz).strftime("%m-%d %H:%M") if c.deadline else "—")
                + ("（已超期）" if late else ""),
            )
        )
    order_rows = []
    for o in agenda.orders:
        unit_name, chief = owner(o.unit_id)
        late = o.status == "open" and o.deadline_at < now
        order_rows.append(
            (
                o.ref,
                unit_name,
                chief,
                agenda.kind_names.get(o.kind_code, o.kind_code),
                REASONS.get(o.reason or "", o.reason or "未说明"),
                f"{o.level}级 {ORDER_STATUS_NAMES.get(o.status, o.status)}",
                _age(now - o.created_at),
                o.deadline_at.astimezone(agenda.tz).strftime("%m-%d %H:%M")
                + ("（已超期）" if late else ""),
            )
        )
    overdue_cases = sum(1 for c in agenda.cases if c.deadline is not None and c.deadline < now)
    overdue_orders = sum(1 for o in agenda.orders if o.status == "open" and o.deadline_at < now)
    parts = [
        Part(
            "概况",
            figures=[
                ("未办结诉求（件）", str(len(agenda.cases))),
                ("其中已超期（件）", str(overdue_cases)),
                ("在办不满意件（件）", str(len(agenda.orders))),
                ("其中整改超期（件）", str(overdue_orders)),
            ],
        ),
        Part(
            "一、未办结诉求",
            tables=[
                Table(
                    CASE_HEADERS,
                    case_rows,
                    details=[
                        _lines(agenda, agenda.case_history.get(c.id, [])) for c in agenda.cases
                    ],
                    empty="无未办结诉求",
                )
            ],
        ),
        Part(
            "二、群众不满意件（整改未办结）",
            tables=[
                Table(
                    ORDER_HEADERS,
                    order_rows,
                    details=[
                        _lines(agenda, agenda.order_history.get(o.id, [])) for o in agenda.orders
                    ],
                    empty="无在办不满意件",
                )
            ],
        ),
    ]
    weekday = WEEKDAYS[agenda.day.isoweekday() - 1]
    title = (
        f"{agenda.unit.name}调度会议程 · {agenda.day.year}年{agenda.day.month}月"
        f"{agenda.day.day}日（星期{weekday}）"
    )
    return Document(title, f"数据截至 {made:%Y-%m-%d %H:%M}（北京时间）", parts)


def render_agenda_html(agenda: Agenda) -> str:
    """The agenda's page."""
    return render_html(agenda_document(agenda))
