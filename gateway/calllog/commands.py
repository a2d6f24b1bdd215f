"""``gateway calls``: the call log, as a table for people or JSON for tools.

The table shows times in the centre's timezone and callers' numbers masked; the
JSON has full numbers (the operators' own data) and UTC times.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.calllog.builder import (
    DIRECTIONS,
    NOTE_CLOSED_AT_RESYNC,
    NOTE_ENDED_OFFLINE,
    CallRecord,
)
from gateway.clock import Clock, utc_iso
from gateway.config import Config
from gateway.phone import InvalidPhoneNumber, mask, to_e164
from gateway.store import Store
from gateway.store.calls import StoredCall
from gateway.tables import render

DIRECTION_NAMES = {"inbound": "呼入", "outbound": "外呼", "internal": "内部"}
ENDED_BY_NAMES = {
    "gateway": "系统挂断",
    "caller": "来电方挂断",
    "seat": "坐席挂断",
    "pbx": "交换机挂断",
}
DISPOSITION_NAMES = {
    "ANSWERED": "已接通",
    "NO ANSWER": "未接听",
    "BUSY": "忙",
    "FAILED": "失败",
    "ABANDONED": "排队放弃",
}


def register(sub: Any) -> None:
    calls = sub.add_parser("calls", help="the call log: one line per call, newest first")
    calls.add_argument(
        "--since", metavar="DATE", help="calls started on or after this local date or time"
    )
    calls.add_argument("--direction", choices=DIRECTIONS, help="only calls in this direction")
    calls.add_argument("--caller", metavar="NUMBER", help="only calls from this number")
    calls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    calls.add_argument("--json", action="store_true", help="JSON for tools, full numbers")
    calls.set_defaults(handler=_calls)


def parse_since(text: str, tz: ZoneInfo) -> datetime:
    """``2026-11-30`` (the start of that local day) or ``2026-11-30T09:30`` (local time,
    unless it carries an offset)."""
    try:
        if len(text.strip()) == 10:
            day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
            return datetime.combine(day, time(0), tz)
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since: {text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=tz)


def store_missing(config: Config) -> bool:
    """Say so (and return True) when the configured SQLite store does not exist yet. A
    PostgreSQL database is never "missing" here: opening it migrates it if new, or says in
    one line why it cannot be reached."""
    if not config.on_sqlite:
        return False
    path: Path = config.store_path
    if path.exists():
        return False
    print(
        f"gateway: no store at {path}: run `gateway db migrate` or `gateway demo` first",
        file=sys.stderr,
    )
    return True


async def _calls(config: Config, args: argparse.Namespace) -> int:
    tz = ZoneInfo(config.gateway.timezone)
    try:
        since = parse_since(args.since, tz) if args.since else None
    except argparse.ArgumentTypeError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if args.limit < 1:
        print(f"gateway: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    caller = None
    if args.caller:
        try:
            caller = to_e164(args.caller)
        except InvalidPhoneNumber:
            caller = args.caller.strip()  # stored as received when it was not a phone number
    if store_missing(config):
        return 1
    async with Store.configured(config, Clock(tz)) as store:
        rows = await store.calls.find(
            since=since, direction=args.direction, caller=caller, limit=args.limit
        )
        case_numbers = {}
        for case_id in {r.record.case_id for r in rows if r.record.case_id is not None}:
            case = await store.cases.by_id(case_id)
            if case is not None:
                case_numbers[case_id] = case.number
    if args.json:
        print(json.dumps([call_json(r, case_numbers) for r in rows], ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("没有符合条件的通话记录。")
        return 0
    print(calls_table([r.record for r in rows], tz, case_numbers))
    return 0


def call_json(row: StoredCall, case_numbers: dict[int, str]) -> dict[str, Any]:
    r = row.record
    return {
        "id": row.id,
        "pbx": r.pbx,
        "linkedid": r.linkedid,
        "uniqueid": r.uniqueid,
        "direction": r.direction,
        "caller_number": r.caller_number,
        "caller_name": r.caller_name,
        "dialled_number": r.dialled_number,
        "started_at": utc_iso(r.started_at),
        "answered_at": utc_iso(r.answered_at) if r.answered_at else None,
        "ended_at": utc_iso(r.ended_at) if r.ended_at else None,
        "duration_s": r.duration_s,
        "billable_s": r.billable_s,
        "disposition": r.disposition,
        "hangup_cause": r.hangup_cause,
        "hangup_cause_text": r.hangup_cause_text,
        "ivr_path": list(r.ivr_path),
        "dtmf": r.dtmf,
        "queue": r.queue,
        "queue_wait_s": r.queue_wait_s,
        "agent": r.agent,
        "recording": r.recording,
        "case_id": r.case_id,
        "case_number": case_numbers.get(r.case_id) if r.case_id is not None else None,
        "talk_s": r.talk_s,
        "ended_by": r.ended_by,
        "originate_id": r.originate_id,
        "complete": r.complete,
        "partial": r.partial,
        "note": r.note,
        "updated_at": utc_iso(row.updated_at),
    }


def calls_table(records: list[CallRecord], tz: ZoneInfo, case_numbers: dict[int, str]) -> str:
    headers = [
        "开始时间",
        "交换机",
        "方向",
        "主叫",
        "姓名",
        "被叫",
        "时长(秒)",
        "结果",
        "队列",
        "等待(秒)",
        "坐席",
        "案件",
        "备注",
    ]
    rows = []
    for r in records:
        if r.complete:
            outcome = DISPOSITION_NAMES.get(r.disposition or "", r.disposition or "")
        else:
            outcome = "通话中"
        rows.append(
            [
                r.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                r.pbx,
                DIRECTION_NAMES.get(r.direction, r.direction),
                mask(r.caller_number) if r.caller_number else "",
                r.caller_name or "",
                r.dialled_number or "",
                "" if r.duration_s is None else f"{r.duration_s:.0f}",
                outcome,
                r.queue or "",
                "" if r.queue_wait_s is None else f"{r.queue_wait_s:.0f}",
                r.agent or "",
                case_numbers.get(r.case_id, "") if r.case_id is not None else "",
                _note(r),
            ]
        )
    return render(headers, rows, right=(6, 9))


def _note(record: CallRecord) -> str:
    notes = []
    if record.note and (NOTE_ENDED_OFFLINE in record.note or NOTE_CLOSED_AT_RESYNC in record.note):
        notes.append("断线期间结束，结束时间为估计")
    elif record.partial:
        notes.append("连接前已开始，开始时间为估计")
    if record.ended_by in ENDED_BY_NAMES:
        notes.append(ENDED_BY_NAMES[record.ended_by])
    return "；".join(notes)
