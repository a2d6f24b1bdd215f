"""``gateway cases merge NUMBER INTO`` and ``gateway cases split NUMBER --submission ID``.

Registered under ``gateway cases`` (see :mod:`gateway.cases.commands`). A refusal
(a merge into itself or into a closed case, a split of a case of one submission…)
is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from gateway.appeals.service import CHANNEL_NAMES, AppealService, CaseFile
from gateway.calllog.commands import store_missing
from gateway.clock import Clock
from gateway.config import Config
from gateway.store import Store


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


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[AppealService]:
    """The appeals service on the store, for one command."""
    clock = Clock(ZoneInfo(config.gateway.timezone))
    async with Store.open(config.store_path, clock) as store:
        yield AppealService(store, clock, config.appeals)


def _channels(found: CaseFile) -> str:
    return "来源：" + channel_names(found.channels, counts=True) if found.channels else ""


def channel_names(channels: Mapping[str, int], *, counts: bool = False) -> str:
    """``热线电话、12345转办`` (or with counts: ``网站 1 件、12345转办 2 件``)."""
    return "、".join(
        f"{CHANNEL_NAMES.get(name, name)} {count} 件" if counts else CHANNEL_NAMES.get(name, name)
        for name, count in channels.items()
    )
