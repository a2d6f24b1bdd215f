"""The demo's scripted day: an hour of hotline calls, then a day of callbacks.

Every caller and citizen is a script the simulated PBX plays over AMI; the chiefs
and the citizens who answer texts reply through the simulated Twilio. Seeded, so
two runs tell the same story.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.callbacks.service import ServedItemInput
from gateway.callbacks.web import CALLBACKS, SCHEDULER
from gateway.demo.stack import SENDER, Stack
from gateway.sim.ami import (
    Answer,
    Busy,
    CallerScript,
    HangUp,
    NoAnswer,
    Press,
    Silence,
    SimCall,
    Speak,
    Step,
    Unreachable,
    WaitForAgent,
    WaitForPrompt,
)

HOTLINE = "9600110"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志强海燕"
ORDER_REF = re.compile(r"ZG\d{8}-\d{4}")

Progress = Callable[[str], None]


def random_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


# Mobile prefixes of the three carriers, all valid in the numbering plan.
PREFIXES = (
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "158",
    "159",
    "177",
    "180",
    "186",
    "187",
    "188",
    "189",
)


def random_mobile(rng: random.Random, used: set[str]) -> str:
    while True:
        number = f"+86{rng.choice(PREFIXES)}{rng.randrange(10**8):08d}"
        if number not in used:
            used.add(number)
            return number


def _menu(key: str) -> list[Step]:
    return [WaitForPrompt("main_menu", timeout=60), Press(key)]


# The hotline's caller mix: (share, what the caller does). Every branch of the flow.
def _hotline_branches(
    rng: random.Random, known_cases: list[str]
) -> list[tuple[str, float, list[Step]]]:
    talk = rng.uniform(6, 25)
    known = rng.choice(known_cases) if known_cases else "202611300001"
    return [
        ("咨询后转人工", 0.20, [*_menu("1"), WaitForAgent(timeout=600)]),
        (
            "投诉留言",
            0.17,
            [
                *_menu("2"),
                WaitForPrompt(input=True, timeout=60),
                Speak(talk),
                Press("#"),
                WaitForPrompt("goodbye", timeout=120),
            ],
        ),
        (
            "建议留言",
            0.08,
            [
                *_menu("3"),
                WaitForPrompt(input=True, timeout=60),
                Speak(talk),
                Press("#"),
                WaitForPrompt("goodbye", timeout=120),
            ],
        ),
        (
            "查询办理进度",
            0.08,
            [
                *_menu("4"),
                WaitForPrompt(input=True, timeout=60),
                Press(re.sub(r"\D", "", known) + "#", gap=0.2),
                WaitForPrompt("status_next", timeout=120),
                Press("9"),
                Silence(20),
            ],
        ),
        (
            "查询不存在的编号",
            0.04,
            [
                *_menu("4"),
                WaitForPrompt(input=True, timeout=60),
                Press("209901019999#", gap=0.2),
                Silence(30),
            ],
        ),
        ("直接转人工", 0.12, [*_menu("0"), WaitForAgent(timeout=600)]),
        (
            "按错键后咨询",
            0.06,
            [
                *_menu("9"),
                WaitForPrompt("main_menu", timeout=60),
                Press("1"),
                WaitForAgent(timeout=600),
            ],
        ),
        ("一直不按键", 0.05, [Silence(45), WaitForAgent(timeout=600)]),
        ("菜单中挂机", 0.07, [WaitForPrompt("main_menu", timeout=60), Silence(2), HangUp()]),
        (
            "留言中挂机",
            0.04,
            [
                *_menu("2"),
                WaitForPrompt(input=True, timeout=60),
                Speak(rng.uniform(3, 8)),
                HangUp(),
            ],
        ),
        ("排队中放弃", 0.09, [*_menu("0"), WaitForAgent(timeout=rng.uniform(5, 40)), HangUp()]),
    ]


def hotline_script(
    rng: random.Random, used: set[str], known_cases: list[str]
) -> tuple[str, CallerScript]:
    branches = _hotline_branches(rng, known_cases)
    label, _share, steps = rng.choices(branches, weights=[b[1] for b in branches])[0]
    script = CallerScript(
        caller=random_mobile(rng, used),
        caller_name=random_name(rng),
        dialled=HOTLINE,
        steps=steps,
        language="zh",
    )
    return label, script


async def hotline_hour(
    stack: Stack,
    calls: int,
    rng: random.Random,
    progress: Progress,
    known: list[str],
    used: set[str] | None = None,
) -> list[tuple[str, SimCall]]:
    """About ``calls`` callers over one simulated hour; returns each with its branch.
    Callers asking a case's status key one of ``known`` (a list that may grow meanwhile);
    their numbers are not among ``used``."""
    used = set() if used is None else used
    placed: list[tuple[str, SimCall]] = []
    gap = 3600.0 / max(1, calls)
    last_report = stack.clock.now()
    for _ in range(calls):
        label, script = hotline_script(rng, used, known)
        placed.append((label, stack.pbx.place_call(script)))
        await stack.clock.sleep(rng.expovariate(1.0 / gap))
        if stack.clock.now() - last_report >= timedelta(minutes=10):
            last_report = stack.clock.now()
            done = sum(1 for _, c in placed if c.finished.done())
            progress(f"{_hhmm(stack)} 热线：已呼入 {len(placed)}/{calls}，已结束 {done}")
    # The last callers may still talk to an agent: give them half an hour.
    await asyncio.wait([c.finished for _, c in placed], timeout=30 * 60 / stack.clock.speed)
    done = sum(1 for _, c in placed if c.finished.done())
    progress(f"{_hhmm(stack)} 热线：{done}/{calls} 通电话已结束")
    if done < calls:
        progress(f"  注意：{calls - done} 通电话半小时后仍未结束，详见网关日志")
    return placed


# -- a day of callbacks -----------------------------------------------------------


@dataclass
class CallbackDay:
    items: int
    behaviours: Counter[str] = field(default_factory=Counter)
    reports: int = 0
    sms_replies: int = 0
    recall_mood: dict[str, Answer] = field(default_factory=dict)


def _survey(rng: random.Random, score: str) -> Answer:
    steps: list[Step] = [WaitForPrompt("rate", timeout=120)]
    if rng.random() < 0.05:
        steps += [Press("7"), WaitForPrompt("rate", timeout=60)]  # a wrong key first
    steps.append(Press(score))
    if score == "3":
        steps += [
            WaitForPrompt("reason", timeout=60),
            Press(rng.choice("12345")),
            WaitForPrompt("message_intro", timeout=60),
            Speak(rng.uniform(3, 12)),
            Press("#"),
        ]
    steps.append(WaitForPrompt(timeout=60))
    return Answer(steps, ring_seconds=rng.uniform(2, 12))


def citizen(rng: random.Random) -> tuple[str, object]:
    """How a citizen answers the callback: mostly picks up and rates, as in the bureau."""
    roll = rng.random()
    if roll < 0.74:
        score = rng.choices("123", weights=(86, 8, 6))[0]
        return f"rates {score}", _survey(rng, score)
    if roll < 0.77:
        return "hangs up", Answer([WaitForPrompt("rate", timeout=120), HangUp()])
    if roll < 0.87:
        return "busy", Busy()
    if roll < 0.97:
        return "no answer", NoAnswer()
    return "unreachable", Unreachable(no_such_number=rng.random() < 0.5)


async def serve_items(stack: Stack, count: int, rng: random.Random) -> CallbackDay:
    """``count`` served items from the police systems, due over the next hour and a half."""
    service = stack.app[CALLBACKS]
    catalogue = service.catalogue
    kinds = [k for k in catalogue.called_back()]
    stations = [u for u in await stack.store.units.units("station")]
    day = CallbackDay(count)
    used: set[str] = set()
    start = stack.clock.now()
    for index in range(count):
        kind = rng.choice(kinds)
        number = random_mobile(rng, used)
        label, behaviour = citizen(rng)
        day.behaviours[label] += 1
        stack.pbx.set_citizen(number, behaviour)  # type: ignore[arg-type]
        due = start + timedelta(minutes=rng.uniform(0, 90))
        served = due - kind.callback_delay
        await service.serve(
            ServedItemInput(
                reference=f"DEMO-{served:%Y%m%d}-{index + 1:05d}",
                kind=kind.code,
                unit=rng.choice(stations).code,
                citizen_number=number,
                served_at=served.isoformat(),
                citizen_name=random_name(rng),
                officer="",
            ),
            source="demo",
        )
    return day


async def people_reply(
    stack: Stack, day: CallbackDay, rng: random.Random, stop: asyncio.Event
) -> None:
    """Chiefs report rectifications by text; citizens answer rating requests by text."""
    seen = 0
    officers = {o.mobile: o for o in await stack.store.units.officers() if o.mobile}
    replies: list[tuple[datetime, str, str]] = []
    while not stop.is_set():
        messages = stack.twilio.messages
        for message in messages[seen:]:
            if message.to in officers:
                match = ORDER_REF.search(message.body)
                if match and rng.random() < 0.85:
                    delay = timedelta(minutes=rng.uniform(30, 150))
                    note = rng.choice(
                        (
                            "已上门向群众说明情况并道歉",
                            "已督促办案民警加快进度",
                            "已约谈当事民警并回访群众",
                            "已重新核查处理结果",
                        )
                    )
                    replies.append(
                        (stack.clock.now() + delay, message.to, f"整改 {match.group(0)} {note}")
                    )
            elif "回复1满意" in message.body and rng.random() < 0.6:
                delay = timedelta(minutes=rng.uniform(5, 90))
                score = rng.choices("123", weights=(80, 12, 8))[0]
                replies.append((stack.clock.now() + delay, message.to, score))
        seen = len(messages)
        now = stack.clock.now()
        due = [r for r in replies if r[0] <= now]
        replies = [r for r in replies if r[0] > now]
        for _, number, body in due:
            if body.startswith("整改"):
                day.reports += 1
                await _set_recall_mood(stack, body, rng)
            else:
                day.sms_replies += 1
            await stack.twilio.send_reply(number, SENDER, body, stack.inbound_url)
        await stack.clock.sleep(60)


async def _set_recall_mood(stack: Stack, report: str, rng: random.Random) -> None:
    """After a rectification most citizens are satisfied; some are still not."""
    match = ORDER_REF.search(report)
    if not match:
        return
    order = await stack.store.callbacks.order_by_ref(match.group(0))
    if order is None:
        return
    item = await stack.store.callbacks.item(order.item_id)
    if item is None:
        return
    score = "1" if rng.random() < 0.85 else "3"
    stack.pbx.set_citizen(item.citizen_number, _survey(rng, score))


async def callback_day(
    stack: Stack, items: int, rng: random.Random, progress: Progress, until_local: str = "20:30"
) -> CallbackDay:
    day = await serve_items(stack, items, rng)
    lines = sum(stack.config.lines_of(pbx) for pbx in stack.config.pbx)
    progress(f"{_hhmm(stack)} 回访：{items} 件已办结业务待回访，{lines} 条外呼线路")
    stop = asyncio.Event()
    end = datetime.combine(
        stack.clock.local().date(),
        datetime.strptime(until_local, "%H:%M").time(),
        tzinfo=stack.clock.tz,
    )
    async with asyncio.TaskGroup() as group:
        replier = group.create_task(people_reply(stack, day, rng, stop))
        last = ""
        while stack.clock.local() < end:
            await stack.clock.sleep(15 * 60)
            counts = await stack.store.callbacks.status_counts()
            open_orders = len(await stack.store.callbacks.orders(("open", "reported")))
            delivered = sum(1 for m in stack.twilio.messages if m.status == "delivered")
            line = (
                f"{_hhmm(stack)} 回访：已评价 {counts.get('rated', 0)}，待回访 "
                f"{counts.get('pending', 0)}，通话中 {counts.get('calling', 0)}，待短信回复 "
                f"{counts.get('sms', 0)}，联系不上 {counts.get('unreachable', 0)}；"
                f"整改中工单 {open_orders}；短信已送达 {delivered}"
            )
            if line.split(" ", 1)[1] != last:
                progress(line)
                last = line.split(" ", 1)[1]
            scheduler = stack.app.get(SCHEDULER)
            idle = scheduler is None or scheduler.active == 0
            # Done when nothing is left to call; texts still unanswered may stay so.
            if idle and counts.get("pending", 0) == 0 and counts.get("calling", 0) == 0:
                reported = await stack.store.callbacks.orders(("reported",))
                if not reported:
                    break
        stop.set()
        await replier
    return day


def _hhmm(stack: Stack) -> str:
    return stack.clock.local().strftime("%H:%M")
