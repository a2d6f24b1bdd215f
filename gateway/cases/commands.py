"""``gateway cases`` (a list) and ``gateway cases show NUMBER`` (one case and its history).

Tables are for people: Chinese labels, local times, citizens' numbers masked.
``--json`` is for tools: codes, UTC times, full numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo

from gateway.appeals import commands as appeals_commands
from gateway.appeals.lifecycle import answer_json
from gateway.appeals.service import CHANNEL_NAMES, AppealService, CaseFile
from gateway.calllog.commands import store_missing
from gateway.clock import Clock, utc_iso
from gateway.config import Config
from gateway.phone import mask
from gateway.store import Store
from gateway.store.cases import (
    CATEGORIES,
    CATEGORY_NAMES,
    STATUS_NAMES,
    STATUSES,
    Case,
    CaseEvent,
)
from gateway.tables import render, width

SUBJECT_WIDTH = 30  # columns of the subject shown in the list


def register(sub: Any) -> None:
    cases = sub.add_parser("cases", help="cases (appeals): list them, or show one with its history")
    cases.add_argument("--status", choices=STATUSES, help="only cases in this status")
    cases.add_argument("--category", choices=CATEGORIES, help="only cases of this category")
    cases.add_argument("--unit", metavar="CODE", help="only cases owned by this unit")
    cases.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cases.add_argument("--json", action="store_true", help="JSON for tools, full numbers")
    cases.set_defaults(handler=_list)
    cases_sub = cases.add_subparsers(dest="cases_command", metavar="ACTION")
    show = cases_sub.add_parser("show", help="one case and its history")
    show.add_argument("number", help="case number, e.g. TS20261130-0007 (or its 12 digits)")
    show.add_argument("--json", action="store_true", help="JSON for tools, full numbers")
    show.set_defaults(handler=_show)
    appeals_commands.register(cases_sub)


async def _list(config: Config, args: argparse.Namespace) -> int:
    if args.limit < 1:
        print(f"gateway: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    if store_missing(config):
        return 1
    tz = ZoneInfo(config.gateway.timezone)
    async with Store.configured(config, Clock(tz)) as store:
        if args.unit is not None and await store.units.unit_by_code(args.unit) is None:
            print(f"gateway: no unit {args.unit!r}", file=sys.stderr)
            return 1
        found = await store.cases.find(
            status=args.status, category=args.category, unit_code=args.unit, limit=args.limit
        )
        service = AppealService(store, store.clock, config.appeals)
        channels = await service.channels([c.id for c in found])
    if args.json:
        print(
            json.dumps(
                [{**case_json(c), "channels": channels[c.id]} for c in found],
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    if not found:
        print("没有符合条件的案件。")
        return 0
    headers = [
        "编号",
        "渠道",
        "类别",
        "状态",
        "群众",
        "电话",
        "责任单位",
        "办理期限",
        "受理时间",
        "事项",
    ]
    rows = [
        [
            c.number,
            appeals_commands.channel_names(channels[c.id]) or "—",  # merged: see its case
            CATEGORY_NAMES.get(c.category, c.category),
            _status(c),
            c.citizen_name or "",
            mask(c.citizen_number),
            c.owner_unit_name or "",
            c.deadline.astimezone(tz).strftime("%Y-%m-%d %H:%M") if c.deadline else "",
            c.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            _clip(c.subject, SUBJECT_WIDTH),
        ]
        for c in found
    ]
    print(render(headers, rows))
    return 0


async def _show(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    tz = ZoneInfo(config.gateway.timezone)
    async with Store.configured(config, Clock(tz)) as store:
        case = await store.cases.get(args.number)
        if case is None:
            print(f"gateway: no case {args.number!r}", file=sys.stderr)
            return 1
        history = await store.cases.history(case.id)
        found = await AppealService(store, store.clock, config.appeals).case_file(case.number)
        submissions = found.submissions
    if args.json:
        data = case_json(case)
        data["channels"] = dict(found.channels)
        data["history"] = [event_json(e) for e in history]
        data["answer"] = answer_json(found)
        data["submissions"] = [
            {
                "id": s.id,
                "channel": s.channel,
                "reference": s.reference,
                "received_at": utc_iso(s.received_at),
                "text": s.text,
            }
            for s in submissions
        ]
        print(json.dumps(data, ensure_ascii=False, indent=1))
        return 0

    def local(when: Any) -> str:
        return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if when else ""

    fields = [
        ("编号", case.number),
        ("渠道", appeals_commands.channel_names(found.channels, counts=True)),
        ("类别", CATEGORY_NAMES.get(case.category, case.category)),
        ("状态", _status(case)),
        ("群众", case.citizen_name or ""),
        ("电话", mask(case.citizen_number)),
        ("事项", case.subject),
        ("内容", case.content),
        ("录音", case.recording or ""),
        (
            "责任单位",
            f"{case.owner_unit_name}（{case.owner_unit_code}）" if case.owner_unit_code else "",
        ),
        ("办理期限", local(case.deadline)),
        ("受理时间", local(case.created_at)),
        ("更新时间", local(case.updated_at)),
        ("来电", case.call_linkedid or ""),
        ("答复", found.answer.answer if found.answer else ""),
        ("答复回访", _callback_text(found)),
    ]
    label_width = max(width(label) for label, _ in fields)
    for label, value in fields:
        if value:
            print(f"{label}{' ' * (label_width - width(label))}  {value}")
    print()
    if submissions:
        print("诉求（各渠道）")
        print(
            render(
                ["序号", "渠道", "渠道编号", "收到时间", "内容"],
                [
                    [
                        str(s.id),
                        CHANNEL_NAMES[s.channel],
                        s.reference,
                        local(s.received_at),
                        _clip(s.text, SUBJECT_WIDTH),
                    ]
                    for s in submissions
                ],
            )
        )
    print("办理记录")
    print(
        render(
            ["时间", "办理人", "动作", "说明"],
            [[local(e.at), e.actor, e.action, e.note] for e in history],
        )
    )
    return 0


RATING_NAMES = {1: "满意", 2: "基本满意", 3: "不满意"}
CALLBACK_NAMES = {
    "pending": "待回访",
    "calling": "回访中",
    "sms": "已发短信待评价",
    "rated": "已评价",
    "unreachable": "联系不上",
    "skipped": "不回访",
}


def _callback_text(found: CaseFile) -> str:
    """Where the callback on the case's answer stands, for people."""
    if found.callback is None:
        return ""
    text = CALLBACK_NAMES.get(found.callback.status, found.callback.status)
    if found.rating is not None:
        text += f"：{RATING_NAMES[found.rating.score]}"
    return f"{text}（{found.callback.reference}）"


def _status(case: Case) -> str:
    name = STATUS_NAMES.get(case.status, case.status)
    if case.merged_into_number:
        name += f"（并入{case.merged_into_number}）"
    return name


def _clip(text: str, columns: int) -> str:
    if width(text) <= columns:
        return text
    out = ""
    for ch in text:
        if width(out + ch) > columns - 1:
            break
        out += ch
    return out + "…"


def case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "channel": case.channel,
        "category": case.category,
        "status": case.status,
        "subject": case.subject,
        "content": case.content,
        "citizen_number": case.citizen_number,
        "citizen_name": case.citizen_name,
        "recording": case.recording,
        "owner_unit": case.owner_unit_code,
        "owner_unit_name": case.owner_unit_name,
        "deadline": utc_iso(case.deadline) if case.deadline else None,
        "merged_into": case.merged_into_number,
        "call_pbx": case.call_pbx,
        "call_linkedid": case.call_linkedid,
        "created_at": utc_iso(case.created_at),
        "updated_at": utc_iso(case.updated_at),
    }


def event_json(event: CaseEvent) -> dict[str, Any]:
    return {
        "at": utc_iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "note": event.note,
    }
