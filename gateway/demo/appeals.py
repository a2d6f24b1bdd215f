"""The demo's appeals: citizens on five channels, posted to the real ``POST /api/cases``.

The web portal and WeChat forward the night's appeals at nine, a clerk enters the
letters; during the hotline hour people come to the counter (visits) and the city's
12345 line transfers its work orders; some citizens raise their matter again on a
second channel (a repeat the gateway joins to their open case), and 12345 sends a
work order twice (idempotent: one submission). After the hour a few callers who left
a voice message on the hotline also write on WeChat; the appeals desk hears the
message and merges the two cases by hand (``POST /api/cases/{ref}/merge``). Each
channel posts over loopback with its own ``X-Channel-Token``, as the real portal,
WeChat account, clerks' desk and 12345 platform would.

Before the day, :func:`appeals_backlog` leaves last week's appeals unhandled at their
owner units, so the gateway's chasing has overdue cases to text their chiefs about.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

import aiohttp

from gateway.appeals.service import AppealService, SubmissionInput
from gateway.clock import ManualClock
from gateway.demo.stack import Stack
from gateway.demo.traffic import random_mobile, random_name
from gateway.store import Store

Progress = Callable[[str], None]

#: The appeals desk's officer who merges by hand (the supervision office's chief).
DESK_OFFICER = "J00002"


@dataclass(frozen=True)
class Matter:
    """One citizen's matter as they tell it: first telling, and a retelling on another channel."""

    category: str
    place: str
    unit_hint: str  # the station the citizen names, or "" (the desk finds the owner)
    first: str
    again: str


# Each retelling shares the matter's key words (place, object, wrong done), as people
# retell; ``tests/test_demo_appeals.py`` checks each pair is similar enough to join.
MATTERS: tuple[Matter, ...] = (
    Matter(
        "complaint",
        "东关街道幸福路12号",
        "LZ-DC-01",
        "幸福路12号楼下的烧烤摊每天营业到凌晨两点，油烟和噪音很大，老人孩子无法休息，请派出所管一管。",
        "幸福路12号楼下烧烤摊天天营业到凌晨两点，噪音和油烟太大，家里老人孩子没法休息，希望派出所处理。",
    ),
    Matter(
        "complaint",
        "望湖小区3号楼车棚",
        "LZ-XC-01",
        "我的电动车上周在望湖小区3号楼车棚被盗，报案后一直没有消息，想问问侦破进展。",
        "上周望湖小区3号楼车棚里我的电动车被偷了，报了案到现在没有任何消息，请告知侦破进展。",
    ),
    Matter(
        "consultation",
        "",
        "",
        "孩子在外地出生，想把户口迁到鲁州市东城区，需要准备哪些材料，在哪个窗口办理？",
        "想咨询孩子外地出生户口迁到鲁州市东城区需要准备什么材料，去哪个窗口办理？",
    ),
    Matter(
        "help",
        "出入境管理支队办证大厅",
        "LZ-CRJ",
        "三周前在出入境办证大厅办的护照到现在还没拿到，下月要出国工作，请帮忙催一下。",
        "在出入境办证大厅办护照已经三周了还没拿到，下个月出国工作等着用，麻烦帮忙催办。",
    ),
    Matter(
        "report",
        "春风花园小区东门",
        "LZ-XC-02",
        "春风花园小区东门外每天晚上有车辆违停，把消防通道堵死了，存在很大安全隐患。",
        "举报春风花园小区东门外晚上车辆违停，消防通道被堵死，安全隐患很大，请尽快处理。",
    ),
    Matter(
        "complaint",
        "南门派出所户籍窗口",
        "LZ-DC-03",
        "今天上午在南门派出所户籍窗口办身份证，窗口民警态度生硬，问两句就不耐烦。",
        "投诉南门派出所户籍窗口民警态度生硬，今天上午办身份证时问两句就很不耐烦。",
    ),
    Matter(
        "suggestion",
        "金桥小学门口",
        "LZ-XC-03",
        "建议在金桥小学门口上下学时段设置护学岗，门口车多人多，孩子过马路很危险。",
        "金桥小学门口上下学时段车多人多，孩子过马路危险，建议设置护学岗。",
    ),
    Matter(
        "praise",
        "滨河公园",
        "LZ-KFQ-03",
        "感谢滨河派出所民警帮我们在滨河公园找回走失的老父亲，民警连夜寻找，非常负责。",
        "表扬滨河派出所民警，连夜在滨河公园帮我们找回了走失的老父亲，非常负责。",
    ),
    Matter(
        "help",
        "",
        "",
        "我被冒充客服的电信诈骗骗走了两万元，已经报案，请问被骗的钱能追回吗，进展如何？",
        "被冒充客服的电信诈骗骗了两万元，报案后想知道被骗的钱能不能追回，现在进展如何？",
    ),
    Matter(
        "complaint",
        "高新区广场",
        "LZ-KFQ-01",
        "高新区广场每晚广场舞音响开得太大，一直跳到十点多，周边居民无法休息。",
        "高新区广场的广场舞音响每晚开得很大，跳到十点多，周边居民都没法休息。",
    ),
    Matter(
        "report",
        "科技城公寓5栋",
        "LZ-KFQ-02",
        "科技城公寓5栋有房东把一套房隔成十几间群租，电线乱拉，消防隐患严重。",
        "举报科技城公寓5栋群租，一套房隔成十几间，电线乱拉乱接，消防隐患严重。",
    ),
    Matter(
        "consultation",
        "",
        "",
        "驾驶证到期换证能不能在网上办，需要体检证明吗，本人在外地怎么办理？",
        "驾驶证到期换证可以网上办吗，需不需要体检证明，本人在外地的话怎么办理？",
    ),
    Matter(
        "complaint",
        "西关派出所",
        "LZ-DC-02",
        "上个月在西关派出所报警说家门口快递柜被撬，到现在没人联系我，也不知道处理结果。",
        "西关派出所上个月接报我家门口快递柜被撬，至今没人联系，处理结果也不知道。",
    ),
    Matter(
        "help",
        "东关派出所",
        "LZ-DC-01",
        "身份证丢了急着坐火车去外地看病，临时身份证怎么办，能不能加急？",
        "身份证丢了，急着坐火车去外地看病，请问临时身份证怎么办理，能加急吗？",
    ),
)

# What citizens who left a voice message on the hotline then write on WeChat: the
# desk cannot join these by the text (the hotline case holds a recording), so it
# listens to the message and merges by hand.
AFTER_CALL_TEXTS = (
    "刚才打热线留了言，再补充一下：小区门口夜市摊位占道经营，每晚堵到十一点，车进不去。",
    "上午在热线电话里留言投诉过，补充说明：派出所办居住证让我跑了三趟还没办好。",
    "热线留言说的事再说一下：邻居家狗不拴绳在楼道里咬伤了我家孩子，报警后没人处理。",
    "之前打热线留过言，补充材料：出租车司机绕路多收费，我有行程截图，希望有人处理。",
)

# How each channel names its own reference.
_REFERENCE = {
    "web": "WZ{day}-{n:04d}",
    "wechat": "WX{day}{n:05d}",
    "letter": "XJ{day}-{n:03d}",
    "visit": "LF{day}-{n:03d}",
    "12345": "GD{day}{n:06d}",
}
#: The order people read the channels in (the hotline's own IVR cases are not posted).
INTAKE_ORDER = ("web", "wechat", "letter", "visit", "12345")


@dataclass(frozen=True)
class Appeal:
    """One submission a channel will post, and whether it retells a matter."""

    submission: SubmissionInput
    repeat: bool  # the same citizen raised this matter before on another channel

    @property
    def channel(self) -> str:
        return self.submission.channel

    def body(self) -> dict[str, str]:
        return asdict(self.submission)


@dataclass
class AppealsDay:
    """What the channels sent and what the gateway answered."""

    posted: Counter[str] = field(default_factory=Counter)  # channel → submissions
    opened: Counter[str] = field(default_factory=Counter)  # channel → new cases
    joined: Counter[str] = field(default_factory=Counter)  # channel → repeats joined
    by_hand: Counter[str] = field(default_factory=Counter)  # channel → cases merged by hand
    replays: int = 0  # a reference sent again: answered, not taken twice
    refused: list[str] = field(default_factory=list)  # what the API refused, and why
    intended_repeats: int = 0
    merged_by_hand: int = 0
    cases: list[str] = field(default_factory=list)  # case numbers opened, in order


class Channels:
    """Each intake channel's client: the API's bearer token and the channel's own."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession) -> None:
        self._stack = stack
        self._http = http

    async def _call(
        self, method: str, path: str, body: Any, channel_token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self._stack.api_token}"}
        if channel_token is not None:
            headers["X-Channel-Token"] = channel_token
        async with self._http.request(
            method, self._stack.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def submit(self, appeal: Appeal, day: AppealsDay) -> str | None:
        """Post one submission as its channel; the case number it reached, None if refused."""
        token = self._stack.channel_tokens[appeal.channel]
        status, answer = await self._call("POST", "/api/cases", appeal.body(), token)
        if status not in (200, 201):
            reference = appeal.submission.reference
            day.refused.append(f"{appeal.channel} {reference}: {status} {answer}")
            return None
        number = str(answer["case"]["number"])
        if answer["replay"]:
            day.replays += 1
            return number
        day.posted[appeal.channel] += 1
        if answer["repeat"]:
            day.joined[appeal.channel] += 1
        else:
            day.opened[appeal.channel] += 1
            day.cases.append(number)
        return number

    async def merge(self, number: str, into: str, note: str, day: AppealsDay) -> bool:
        """The desk merges case ``number`` into case ``into`` (one matter, one case)."""
        status, answer = await self._call(
            "POST",
            f"/api/cases/{number}/merge",
            {"into": into, "actor": DESK_OFFICER, "note": note},
        )
        if status != 200:
            day.refused.append(f"merge {number} into {into}: {status} {answer}")
            return False
        day.merged_by_hand += 1
        return True


class _References:
    def __init__(self, day: str) -> None:
        self._day = day
        self._next: Counter[str] = Counter()

    def __call__(self, channel: str) -> str:
        self._next[channel] += 1
        return _REFERENCE[channel].format(day=self._day, n=self._next[channel])


def appeals_script(
    rng: random.Random,
    day: str,
    citizens: Sequence[tuple[str, str]],
    repeat_share: float = 0.45,
) -> tuple[list[Appeal], list[Appeal]]:
    """The morning's submissions and the hour's, for ``citizens`` (number, name): each
    tells one matter on one channel; ``repeat_share`` of them tell it again on another."""
    references = _References(day)
    morning: list[Appeal] = []
    hour: list[Appeal] = []
    for index, (number, name) in enumerate(citizens):
        matter = MATTERS[index % len(MATTERS)]

        told = SubmissionInput("", "", number, matter.category, matter.first, name, matter.place)
        first = rng.choices(INTAKE_ORDER, weights=(30, 26, 10, 14, 20))[0]
        # A channel's form names the station the citizen named, or not.
        hint = matter.unit_hint if rng.random() < 0.7 else ""
        appeal = replace(told, channel=first, reference=references(first), unit_hint=hint)
        # The night's portal and WeChat appeals and the letters come in the morning;
        # visits and 12345 transfers during the day.
        in_morning = first in ("web", "wechat", "letter")
        (morning if in_morning else hour).append(Appeal(appeal, repeat=False))
        if rng.random() < repeat_share:
            second = rng.choice([c for c in ("wechat", "web", "12345", "visit") if c != first])
            hint = matter.unit_hint if rng.random() < 0.5 else ""
            again = replace(
                told,
                channel=second,
                reference=references(second),
                text=matter.again,
                unit_hint=hint,
            )
            hour.append(Appeal(again, repeat=True))
    rng.shuffle(hour)
    return morning, hour


async def appeals_morning(
    stack: Stack,
    rng: random.Random,
    citizens: Sequence[tuple[str, str]],
    progress: Progress,
) -> tuple[AppealsDay, list[Appeal]]:
    """The night's web and WeChat appeals and the clerk's letters, posted at nine; the
    day's visits and transfers come back to be posted by :func:`appeals_during_hour`."""
    today = stack.clock.local().strftime("%Y%m%d")
    morning, hour = appeals_script(rng, today, citizens)
    day = AppealsDay(intended_repeats=sum(1 for a in hour if a.repeat))
    async with aiohttp.ClientSession() as http:
        channels = Channels(stack, http)
        for appeal in morning:
            await channels.submit(appeal, day)
    posted = sum(day.posted.values())
    progress(f"{_hhmm(stack)} 诉求：网站、微信转来夜间诉求，窗口录入信件，共 {posted} 件")
    return day, hour


async def appeals_during_hour(
    stack: Stack, day: AppealsDay, hour: Sequence[Appeal], rng: random.Random, progress: Progress
) -> None:
    """Visits and 12345 transfers over the hour, repeats among them; 12345 resends some."""
    # Each at its own minute of the hour, however long the gateway takes to answer.
    start = stack.clock.now()
    due = sorted(start + timedelta(minutes=rng.uniform(1, 55)) for _ in hour)
    async with aiohttp.ClientSession() as http:
        channels = Channels(stack, http)
        sent: list[Appeal] = []
        for at, appeal in zip(due, hour, strict=True):
            wait = (at - stack.clock.now()).total_seconds()
            if wait > 0:
                await stack.clock.sleep(wait)
            await channels.submit(appeal, day)
            sent.append(appeal)
        # The 12345 platform resends work orders it did not see acknowledged.
        transfers = [a for a in sent if a.channel == "12345"]
        for appeal in rng.sample(transfers, min(2, len(transfers))):
            await channels.submit(appeal, day)
    progress(
        f"{_hhmm(stack)} 诉求：来访、12345转办 {len(hour)} 件，其中同一群众换渠道再诉 "
        f"{day.intended_repeats} 件"
    )


async def hotline_followups(
    stack: Stack, day: AppealsDay, rng: random.Random, progress: Progress
) -> None:
    """Callers who left a hotline message write on WeChat too; the desk merges by hand."""
    cases = await stack.store.cases.find(status=None, limit=100000)
    called = [c for c in cases if c.call_linkedid and c.recording and c.citizen_number]
    chosen = rng.sample(called, min(len(AFTER_CALL_TEXTS), len(called)))
    today = stack.clock.local().strftime("%Y%m%d")
    async with aiohttp.ClientSession() as http:
        channels = Channels(stack, http)
        for index, (case, text) in enumerate(zip(chosen, AFTER_CALL_TEXTS, strict=False)):
            assert case.citizen_number is not None
            submission = SubmissionInput(
                "wechat",
                f"WX{today}9{index + 1:04d}",
                case.citizen_number,
                case.category,
                text,
                case.citizen_name or "",
            )
            appeal = Appeal(submission, repeat=True)
            day.intended_repeats += 1
            number = await channels.submit(appeal, day)
            await stack.clock.sleep(rng.uniform(1, 3) * 60)  # the desk hears the message
            if number is not None and number != case.number:
                note = "听取热线录音，与微信诉求为同一事项"
                if await channels.merge(number, case.number, note, day):
                    day.cases.remove(number)
                    day.opened[appeal.channel] -= 1
                    day.by_hand[appeal.channel] += 1
    progress(f"{_hhmm(stack)} 诉求：督办室听取热线留言，人工合并 {day.merged_by_hand} 件")


def demo_citizens(rng: random.Random, used: set[str], count: int) -> list[tuple[str, str]]:
    """``count`` citizens (mobile number, name), their numbers added to ``used``."""
    return [(random_mobile(rng, used), random_name(rng)) for _ in range(count)]


def _hhmm(stack: Stack) -> str:
    return stack.clock.local().strftime("%H:%M")


# -- last week's backlog, for chasing -----------------------------------------------------

# Appeals from the days before the demo that their owner units let lie: each has an
# owner (the station the citizen named), so chasing texts its chief.
BACKLOG: tuple[tuple[int, str, str, str], ...] = (
    # (working days ago, category, station, text)
    (6, "complaint", "LZ-DC-02", "小区地下车库连续三次有车窗被砸，报警后一直没有民警回复。"),
    (5, "help", "LZ-XC-01", "老人走失后找到了，但身份证和医保卡丢了，补办时需要派出所出证明。"),
    (5, "report", "LZ-KFQ-02", "科技城商业街有人在夜里非法收购二手手机，怀疑是赃物。"),
    (4, "complaint", "LZ-QS-01", "青山镇集市每逢赶集日车辆乱停，交警和派出所都说不归自己管。"),
    (3, "suggestion", "LZ-DC-01", "建议东关派出所户籍窗口中午不休息，上班族只有中午有时间办事。"),
    (3, "help", "LZ-XC-03", "家门口的监控拍到有人撬锁未遂，希望派出所加强夜间巡逻。"),
)


async def appeals_backlog(
    stack: Stack, rng: random.Random, citizens: Sequence[tuple[str, str]]
) -> list[str]:
    """Last week's appeals still waiting at their owner units: written through the appeals
    service as it ran on their days (a store handle on a clock set back to each day), so
    their numbers, terms and history are those days'. The case numbers."""
    today = stack.clock.local().date()
    settings = stack.config.appeals
    numbers: list[str] = []
    for (days_ago, category, station, text), (number, name) in zip(BACKLOG, citizens, strict=False):
        day = today
        for _ in range(days_ago):
            day -= timedelta(days=1)
            while day.weekday() >= 5:
                day -= timedelta(days=1)
        at = datetime.combine(day, time(9), stack.clock.tz) + timedelta(
            minutes=rng.randrange(0, 8 * 60)
        )
        then = ManualClock(at, stack.clock.tz)
        async with Store.open(stack.config.store_location, then) as store:
            service = AppealService(store, then, settings)
            reference = f"WZ{day:%Y%m%d}-{9000 + len(numbers) + 1:04d}"
            submission = SubmissionInput("web", reference, number, category, text, name)
            intake = await service.submit(replace(submission, unit_hint=station))
        numbers.append(intake.case.number)
    return numbers
