"""``gateway cases merge NUMBER INTO``, ``gateway cases split NUMBER --submission ID``, and
the lifecycle: ``gateway cases assign NUMBER UNIT``, ``accept NUMBER``, ``answer NUMBER
--text …`` and ``close NUMBER``, each ``--actor CODE`` (an officer on file).

Registered under ``gateway cases`` (see :mod:`gateway.cases.commands`). A refusal
(a merge into itself or into a closed case, a split of a case of one submission, an
answer by an officer of another unit, a step out of order…) is one line on stderr and
exit status 1. The texts a step sends are queued in the store; the running gateway's
outbox sends them.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from gateway.appeals.lifecycle import CaseLifecycle
from gateway.appeals.service import CHANNEL_NAMES, AppealService, CaseFile
from gateway.callbacks.commands import build_service
from gateway.calllog.commands import store_missing
from gateway.clock import Clock
from gateway.config import Config
from gateway.store import Store
from gateway.store.cases import STATUS_NAMES, Case

Handler = Callable[[Config, argparse.Namespace], Awaitable[int]]


def register(cases_sub: Any) -> None:
    merge = cases_sub.add_parser("merge", help="merge a case into another (one matter, one case)")
    merge.add_argument("number", help="the case that goes, e.g. TS20261130-0008")
    merge.add_argument("into", help="the case it joins, e.g. TS20261130-0007")
    merge.add_argument("--actor", required=True, help="who merges (an officer's code)")
    merge.add_argument("--note", default="", help="why, for the history")
    merge.set_defaults(handler=_merge)
    split = cases_sub.add_parser("split", help="move some submissions of a case to a new case")
    split.add_argument("number", help="the case to split")
    split.add_argument(
        "--submission",
        type=int,
        action="append",
        required=True,
        metavar="ID",
        help="a submission to move (repeat for several; see `gateway cases show`)",
    )
    split.add_argument("--actor", required=True, help="who splits (an officer's code)")
    split.add_argument("--note", default="", help="why, for the history")
    split.set_defaults(handler=_split)
    assign = cases_sub.add_parser("assign", help="give a case its owner unit")
    assign.add_argument("number", help="the case, e.g. TS20261130-0007")
    assign.add_argument("unit", help="the owner unit's code, e.g. LZ-DC-01")
    _actor_arguments(assign, "assigns (of the supervision office or the unit's parent)")
    assign.set_defaults(handler=_assign)
    accept = cases_sub.add_parser(
        "accept", help="the owner unit accepts a case (texts the citizen)"
    )
    accept.add_argument("number", help="the case")
    _actor_arguments(accept, "accepts (of the owner unit)")
    accept.set_defaults(handler=_accept)
    answer = cases_sub.add_parser(
        "answer", help="the owner unit's one answer, texted to the citizen"
    )
    answer.add_argument("number", help="the case")
    answer.add_argument("--text", required=True, help="the answer (at most 200 characters)")
    answer.add_argument("--actor", required=True, help="who answers (of the owner unit)")
    answer.set_defaults(handler=_answer)
    close = cases_sub.add_parser("close", help="close an answered case")
    close.add_argument("number", help="the case")
    _actor_arguments(close, "closes (of the owner unit or the supervision office)")
    close.set_defaults(handler=_close)


def _actor_arguments(parser: Any, who: str) -> None:
    parser.add_argument("--actor", required=True, help=f"the officer's code: who {who}")
    parser.add_argument("--note", default="", help="a note for the history")


async def _merge(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    async with _service(config) as service:
        merged = await service.merge(args.number, args.into, actor=args.actor, note=args.note)
    print(f"{args.number} 已并入 {merged.case.number}。{_channels(merged)}")
    return 0


async def _split(config: Config, args: argparse.Namespace) -> int:
    if store_missing(config):
        return 1
    async with _service(config) as service:
        new = await service.split(args.number, args.submission, actor=args.actor, note=args.note)
    print(f"已从 {args.number} 拆出新案件 {new.case.number}。{_channels(new)}")
    return 0


Step = Callable[[CaseLifecycle, argparse.Namespace], Awaitable[Case]]


def _step(take: Step, said: Callable[[Case], str]) -> Handler:
    """A command that takes one lifecycle step and prints where the case stands."""

    async def handler(config: Config, args: argparse.Namespace) -> int:
        if store_missing(config):
            return 1
        async with _lifecycle(config) as lifecycle:
            case = await take(lifecycle, args)
        print(f"{case.number} {said(case)}。状态：{STATUS_NAMES[case.status]}")
        return 0

    return handler


_assign = _step(
    lambda lc, a: lc.assign(a.number, a.unit, actor=a.actor, note=a.note),
    lambda case: f"已分派给{case.owner_unit_name}（{case.owner_unit_code}）",
)
_accept = _step(
    lambda lc, a: lc.accept(a.number, actor=a.actor, note=a.note),
    lambda _: "已受理，受理短信已排队发送",
)
_answer = _step(
    lambda lc, a: lc.answer(a.number, a.text, actor=a.actor),
    lambda _: "已答复，答复短信已排队发送，稍后回访评价",
)
_close = _step(
    lambda lc, a: lc.close(a.number, actor=a.actor, note=a.note),
    lambda _: "已关闭",
)


@asynccontextmanager
async def _lifecycle(config: Config) -> AsyncIterator[CaseLifecycle]:
    """The lifecycle on the store, for one command: its texts go to the outbox table."""
    clock = Clock(ZoneInfo(config.gateway.timezone))
    async with Store.configured(config, clock) as store:
        callbacks = build_service(store, config, clock)
        yield CaseLifecycle(store, clock, callbacks=callbacks, texter=callbacks.texter)


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[AppealService]:
    """The appeals service on the store, for one command."""
    clock = Clock(ZoneInfo(config.gateway.timezone))
    async with Store.configured(config, clock) as store:
        yield AppealService(store, clock, config.appeals)


def _channels(found: CaseFile) -> str:
    return "来源：" + channel_names(found.channels, counts=True) if found.channels else ""


def channel_names(channels: Mapping[str, int], *, counts: bool = False) -> str:
    """``热线电话、12345转办`` (or with counts: ``网站 1 件、12345转办 2 件``)."""
    return "、".join(
        f"{CHANNEL_NAMES.get(name, name)} {count} 件" if counts else CHANNEL_NAMES.get(name, name)
        for name, count in channels.items()
    )
