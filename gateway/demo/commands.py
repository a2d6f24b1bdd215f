"""``gateway demo``: the whole gateway on embedded defaults, a scripted day, a summary.

It starts the simulated PBX and the simulated Twilio on free loopback ports, the
real gateway against them over TCP, SQLite in the data folder with the demo city
loaded; plays an hour of hotline traffic and a day of callbacks in compressed
time; prints progress and a summary. ``gateway calls``, ``gateway cases``,
``gateway callbacks``, ``gateway orders`` and ``gateway sms list`` run in the same
folder afterwards show what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import statistics
import sys
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from gateway import logs
from gateway.accounts.demo import DEMO_PEOPLE
from gateway.appeals.commands import channel_names
from gateway.appeals.service import CHANNEL_NAMES
from gateway.appeals.web import APPEALS
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import LEVEL_NAMES
from gateway.callbacks.report import (
    OUTCOME_NAMES,
    STATUS_NAMES,
    percent,
    render_satisfaction,
    satisfaction_table,
)
from gateway.clock import LOCAL_TZ, ScaledClock
from gateway.config import Config
from gateway.demo.appeals import (
    BACKLOG,
    INTAKE_ORDER,
    AppealsDay,
    appeals_backlog,
    appeals_during_hour,
    appeals_morning,
    demo_citizens,
    hotline_followups,
)
from gateway.demo.bookings import BookingsDay, bookings_day
from gateway.demo.stack import AGI_TRANSPORTS, Stack, running_stack
from gateway.demo.traffic import callback_day, hotline_hour
from gateway.phone import mask
from gateway.site import SHIPPED_FLOWS, SHIPPED_PROMPTS, SHIPPED_RECORDINGS
from gateway.store.cases import CATEGORY_NAMES
from gateway.tables import render

MARKER = "DEMO-DATA"


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="the whole gateway against a simulated PBX and Twilio, with a scripted day",
    )
    demo.add_argument("--calls", type=int, default=200, help="hotline calls in the hour (200)")
    demo.add_argument("--items", type=int, default=2000, help="served items to call back (2000)")
    demo.add_argument(
        "--bookings", type=int, default=12, help="citizens booking a counter slot (12)"
    )
    demo.add_argument(
        "--appeals",
        type=int,
        default=36,
        help="citizens writing appeals on the web, WeChat, letters, visits and 12345 (36)",
    )
    demo.add_argument(
        "--speed", type=float, default=180.0, help="simulated seconds per real second (180)"
    )
    demo.add_argument("--lines", type=int, default=40, help="outbound lines for callbacks (40)")
    demo.add_argument(
        "--agents",
        type=int,
        default=4,
        help="hotline seats staffed during the hour (4 of the 20), so queues form",
    )
    demo.add_argument(
        "--agi",
        choices=AGI_TRANSPORTS,
        default="fastagi",
        help="how the simulated PBX hands calls over: fastagi (as the shipped dialplan) or async",
    )
    demo.add_argument("--seed", type=int, default=2026, help="random seed of the scripted day")
    demo.add_argument(
        "--stay",
        action="store_true",
        help="after the summary keep the gateway up, to look at the dashboard (Ctrl-C ends)",
    )
    demo.set_defaults(handler=run_demo)


def _command_name() -> str:
    """How the user reaches this command from here (``.venv/bin/gateway`` after scripts/demo)."""
    program = Path(sys.argv[0])
    if program.name != "gateway":
        return "gateway"
    try:
        return str(program.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(program)


def _say(text: str) -> None:
    print(text, flush=True)


def _prepare(data_dir: Path) -> None:
    """Start from an empty data folder; only ever wipe one the demo made itself."""
    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
        what = "a store" if (data_dir / "gateway.sqlite3").exists() else "files"
        raise SystemExit(
            f"gateway demo: {data_dir} holds {what} that are not the demo's; "
            "pass --data-dir with another folder"
        )
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("made by `gateway demo`; it is wiped by the next demo\n")


def _demo_start() -> datetime:
    """09:00 in Shanghai on the most recent working day (the hotline is staffed)."""
    day = datetime.now(LOCAL_TZ).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=LOCAL_TZ).astimezone(UTC)


async def run_demo(config: Config, args: argparse.Namespace) -> int:
    data_dir = config.gateway.data_dir
    await asyncio.to_thread(_prepare, data_dir)
    log_file = data_dir / "gateway.log"
    logs.to_file(log_file, config.gateway.log_level)
    rng = random.Random(args.seed)
    clock = ScaledClock(_demo_start(), args.speed)
    # The shipped flows and prompts, wherever the gateway is installed and run from.
    recordings = SHIPPED_RECORDINGS / "zh"
    started = asyncio.get_running_loop().time()
    _say(f"gateway demo: {clock.local():%Y-%m-%d %H:%M} (simulated, {args.speed:g}× real time)")
    async with running_stack(
        data_dir,
        clock,
        agents=args.agents,
        agi=args.agi,
        intake_channels=INTAKE_ORDER,
        bookings=True,
        recordings_dir=recordings if recordings.is_dir() else None,
        people=True,
        overrides=[
            f"ivr.flows_dir={SHIPPED_FLOWS.absolute()}",
            f"ivr.prompts={SHIPPED_PROMPTS.absolute()}",
            f"callbacks.max_concurrent_calls={args.lines}",
            "callbacks.recall_delay_hours=1",
            "callbacks.retry_spacing_minutes=20",
            "callbacks.poll_seconds=60",
        ],
    ) as stack:
        _say(
            f"  simulated PBX (AMI) on 127.0.0.1:{stack.pbx.port}, simulated Twilio on "
            f"{stack.twilio.base_url}"
        )
        agi_port = stack.config.agi.listen_port
        _say(
            f"  hotline calls reach the gateway by FastAGI on 127.0.0.1:{agi_port}"
            if agi_port
            else "  hotline calls reach the gateway by AsyncAGI over the AMI link"
        )
        _say(
            f"  gateway web on {stack.url}: dashboard {stack.url}/dashboard, API token "
            f"{stack.api_token}"
        )
        _say(f"  dashboard logins (shown once): {_logins(stack)}")
        _say(f"  data folder: {data_dir}  (log: {log_file})")
        _say("")
        # Appeals have their own random stream: they run beside the calls.
        appeals_rng = random.Random(rng.random())
        used: set[str] = set()
        citizens = demo_citizens(appeals_rng, used, args.appeals)
        waiting = await appeals_backlog(
            stack, appeals_rng, demo_citizens(appeals_rng, used, len(BACKLOG))
        )
        _say(f"  上周受理、承办单位至今未办理的诉求 {len(waiting)} 件：{'、'.join(waiting)}")
        booking = demo_citizens(appeals_rng, used, args.bookings)
        appeals, later = await appeals_morning(stack, appeals_rng, citizens, _say)

        async def appeals_hour() -> None:
            await appeals_during_hour(stack, appeals, later, appeals_rng, _say)
            await hotline_followups(stack, appeals, appeals_rng, _say)

        async with asyncio.TaskGroup() as group:
            calls = group.create_task(
                hotline_hour(stack, args.calls, rng, _say, known=appeals.cases, used=used)
            )
            group.create_task(appeals_hour())
            booked = group.create_task(bookings_day(stack, appeals_rng, booking, _say))
        placed = calls.result()
        await _settle(stack)
        await _hotline_summary(stack, placed)
        await _appeals_summary(stack, appeals)
        _say("")
        day = await callback_day(stack, args.items, rng, _say)
        await _settle(stack)
        await _callback_summary(stack, day)
        if sum(booked.result().booked.values()):
            await _until_evening_reminders(stack)
        await _bookings_and_chasing_summary(stack, booked.result())
        if args.stay:
            _say(f"\n领导驾驶舱：{stack.url}/dashboard （{_logins(stack)}），Ctrl-C 结束")
            await _until_interrupted()
    elapsed = asyncio.get_running_loop().time() - started
    _say(
        f"\n用时 {elapsed:.0f} 秒（模拟 {args.speed:g} 倍速）。数据在 {data_dir}/ ，在本目录查看："
    )
    command = _command_name()
    for what in ("calls", "cases", "callbacks", "orders --all", "sms list", "bookings list"):
        _say(f"  {command} {what}")
    _say("  （加 --json 供程序读取）")
    return 0


def _logins(stack: Stack) -> str:
    """The demo's people as ``name / password (role unit)``, for the summary."""
    return "; ".join(
        f"{name} / {password} ({DEMO_PEOPLE[name][0]} {DEMO_PEOPLE[name][1]})"
        for name, password in stack.people.items()
    )


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _settle(stack: Stack) -> None:
    """Let the call log flush and the texts reach their final status."""
    await stack.clock.sleep(120)
    await stack.twilio.callbacks_idle()


async def _hotline_summary(stack: Stack, placed: list[tuple[str, Any]]) -> None:
    calls = await stack.store.calls.find(direction="inbound", limit=100000)
    records = [c.record for c in calls]
    cases = await stack.store.cases.find(limit=100000)
    hotline_cases = [c for c in cases if c.call_linkedid]  # the IVR's, not 12345 transfers
    waits = [r.queue_wait_s for r in records if r.queue_wait_s is not None]
    outcomes = Counter(label for label, _ in placed)
    answered_by_agent = sum(1 for r in records if r.agent)
    abandoned = sum(1 for r in records if r.disposition == "ABANDONED")
    _say("热线一小时小结")
    _say(
        render(
            ["", "数量"],
            [
                ["呼入电话", len(placed)],
                ["通话记录（完整）", sum(1 for r in records if r.complete)],
                ["人工坐席接听", answered_by_agent],
                ["排队中放弃", abandoned],
                ["平均排队（秒）", f"{statistics.mean(waits):.0f}" if waits else "—"],
                ["最长排队（秒）", f"{max(waits):.0f}" if waits else "—"],
            ],
            right=[1],
        )
    )
    by_category = Counter(CATEGORY_NAMES.get(c.category, c.category) for c in hotline_cases)
    _say("\n热线受理诉求")
    _say(render(["类别", "件数"], [[k, v] for k, v in by_category.most_common()], right=[1]))
    _say("\n来电脚本（演示中主叫的行为）")
    _say(render(["行为", "通数"], [[k, v] for k, v in outcomes.most_common()], right=[1]))


async def _appeals_summary(stack: Stack, day: AppealsDay) -> None:
    """Submissions per channel, the cases they made, repeats joined and merged: read
    back from the store, beside what the channels were told."""
    today = stack.clock.local().date()
    cases = [
        c
        for c in await stack.store.cases.find(limit=100000)
        if c.merged_into is None and stack.clock.local(c.created_at).date() == today
    ]  # today's: not last week's backlog
    channels = await stack.app[APPEALS].channels([c.id for c in cases])
    came = Counter[str]()
    for counted in channels.values():
        came.update(counted)
    rows = [
        [CHANNEL_NAMES[name], came[name], day.opened[name], day.joined[name], day.by_hand[name]]
        for name in INTAKE_ORDER
    ]
    rows.append(["热线电话（IVR 立案）", came["hotline"], came["hotline"], 0, 0])
    total = sum(came.values())
    joined, by_hand = sum(day.joined.values()), day.merged_by_hand
    rows.append(["合计", total, len(cases), joined, by_hand])
    _say("\n诉求受理（五个渠道，一事一案）")
    _say(render(["渠道", "诉求", "立案", "自动并案", "人工合并"], rows, right=[1, 2, 3, 4]))
    several = [c for c in cases if len(channels[c.id]) > 1]
    _say(
        f"诉求 {total} 件成案 {len(cases)} 件：同一群众同一事项换渠道再诉"
        f" {day.intended_repeats} 件，系统自动并入原案 {joined} 件，"
        f"督办室听热线录音后人工合并 {by_hand} 件；"
        f"12345 重发工单 {day.replays} 件，未重复受理"
    )
    if day.refused:
        _say(f"注意：接口拒收 {len(day.refused)} 件，例如 {day.refused[0]}")
    _say(f"来自两个以上渠道的案件 {len(several)} 件，例如：")
    several.sort(key=lambda c: (-sum(channels[c.id].values()), c.number))
    for case in several[:3]:
        who = f"{case.citizen_name} " if case.citizen_name else ""
        _say(
            f"  {case.number} {who}{mask(case.citizen_number)}："
            f"{channel_names(channels[case.id], counts=True)}；{case.subject}"
        )


async def _until_evening_reminders(stack: Stack, at: time = time(19, 5)) -> None:
    """A short day ends before the bookings' evening reminders (19:00): wait for them."""
    evening = datetime.combine(stack.clock.local().date(), at, stack.clock.tz)
    wait = (evening - stack.clock.now()).total_seconds()
    if wait > 0:
        _say(f"\n（等到 {at:%H:%M}，预约的前一晚提醒短信发出）")
        await stack.clock.sleep(wait)
        await _settle(stack)


async def _bookings_and_chasing_summary(stack: Stack, bookings: BookingsDay) -> None:
    """Bookings and the texts they made; the cases chased and the chiefs' texts."""
    texts = await stack.store.sms.recent(limit=1_000_000)
    by_template = Counter(t.template for t in texts)
    confirmed, cancelled, reminded = (
        by_template[name]
        for name in ("booking_confirmation", "booking_cancelled", "booking_reminder")
    )
    _say(
        f"\n预约 {sum(bookings.booked.values())} 件，取消 {bookings.cancelled} 件；短信：预约确认"
        f" {confirmed} 条，取消通知 {cancelled} 条，前一晚提醒 {reminded} 条"
    )
    if bookings.refused:
        _say(f"注意：预约接口拒收 {len(bookings.refused)} 件，例如 {bookings.refused[0]}")
    overdue = [t for t in texts if t.template == "case_overdue"]
    near = [t for t in texts if t.template == "case_deadline_near"]
    chased = {t.variables.get("case_ref") for t in overdue}
    levels = Counter(t.variables.get("level") for t in overdue)
    _say(
        f"诉求督办：超期案件 {len(chased)} 件逐级督办，督办短信 {len(overdue)} 条（"
        + "，".join(f"第{level}级 {n} 条" for level, n in sorted(levels.items()))
        + f"）；临期提醒承办单位 {len(near)} 条"
    )
    for text in sorted(overdue, key=lambda t: t.id)[:2]:
        _say(f"  → {mask(text.to)}：{text.body}")


async def _callback_summary(stack: Stack, day: Any) -> None:
    clock = stack.clock
    ratings = await stack.store.callbacks.first_round_ratings()
    table = satisfaction_table(ratings, "unit", clock)
    overall = satisfaction_table(ratings, "all", clock)
    _say("\n首次回访满意率（按单位）")
    _say(render_satisfaction(table + overall, "单位"))
    statuses = await stack.store.callbacks.status_counts()
    outcomes = await stack.store.callbacks.attempt_outcomes()
    _say("\n回访件状态：" + "，".join(f"{STATUS_NAMES.get(k, k)} {v}" for k, v in statuses.items()))
    _say("回访结果：" + "，".join(f"{OUTCOME_NAMES.get(k, k)} {v}" for k, v in outcomes.items()))
    orders = await stack.store.callbacks.orders()
    by_status = Counter(o.status for o in orders)
    by_level = Counter(o.level for o in orders)
    _say(
        f"\n整改工单 {len(orders)} 件：已办结 {by_status['closed']}，已报整改待回访 "
        f"{by_status['reported']}，整改中 {by_status['open']}；"
        + "，".join(f"{LEVEL_NAMES[k]} {v}" for k, v in sorted(by_level.items()))
    )
    _say(f"所长短信报整改 {day.reports} 次；群众短信评价 {day.sms_replies} 条")
    officers = {o.mobile: o for o in await stack.store.units.officers() if o.mobile}
    order_texts = [m for m in stack.twilio.messages if m.to in officers and "责令整改" in m.body]
    _say(f"\n领导和所长收到的整改短信：{len(order_texts)} 条，例如：")
    for message in order_texts[:3]:
        officer = officers[message.to]
        unit = await stack.store.units.unit(officer.unit_id)
        _say(
            f"  → {unit.name if unit else ''} {officer.name}（{mask(message.to)}）：{message.body}"
        )
    delivered = Counter(m.status for m in stack.twilio.messages)
    _say("\n短信（模拟 Twilio 所见）：" + "，".join(f"{k} {v}" for k, v in delivered.most_common()))
    catalogue = load_catalogue()
    names = {k.code: k.name for k in catalogue}
    kinds = satisfaction_table(ratings, "kind", clock, names)
    worst = sorted((r for r in kinds if r.figures.rated >= 10), key=lambda r: r.figures.rate or 1)
    if worst:
        _say(
            "满意率最低的业务："
            + "，".join(f"{r.label} {percent(r.figures.rate)}" for r in worst[:3])
        )
    sys.stdout.flush()
