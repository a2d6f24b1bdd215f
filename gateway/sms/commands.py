"""``gateway sms send|list|show|run``: texts from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import signal
import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web

from gateway.clock import Clock
from gateway.cluster.leader import visiting
from gateway.cluster.wiring import add_cluster
from gateway.config import Config
from gateway.phone import mask
from gateway.sms.exceptions import NoSuchMessage, SmsError
from gateway.sms.outbox import OutboxWorker
from gateway.sms.provider import TwilioProvider
from gateway.sms.service import SmsService
from gateway.store import Store
from gateway.store.lock import StoreInUse, single_gateway
from gateway.store.postgres import PostgresDatabase
from gateway.store.sms import OutboxMessage
from gateway.tables import render
from gateway.web.app import create_web_app
from gateway.web.sms import message_json, sms_feature


def register(sub: Any) -> None:
    sms = sub.add_parser("sms", help="texts: queue, list, show, run the outbox")
    sms_sub = sms.add_subparsers(dest="sms_command", metavar="ACTION", required=True)

    send = sms_sub.add_parser("send", help="queue a text from a template")
    send.add_argument("--to", required=True, help="mobile number (13912345678, +86…, 0086…)")
    send.add_argument("--template", required=True, help="template name (see templates.toml)")
    send.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template variable; repeatable",
    )
    send.add_argument("--key", default=None, help="idempotency key (default: a new one)")
    send.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait until the text is handed to the provider (at most SECONDS): through the"
        " running gateway's outbox, or, if none runs on this store, through one run here",
    )
    send.set_defaults(handler=_send)

    lst = sms_sub.add_parser("list", help="the latest texts")
    lst.add_argument("--status", default=None, help="only texts in this status")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true", help="JSON instead of a table")
    lst.set_defaults(handler=_list)

    show = sms_sub.add_parser("show", help="one text and its history")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    run = sms_sub.add_parser(
        "run", help="run the outbox worker and Twilio's webhooks until stopped"
    )
    run.set_defaults(handler=_run)


def _variables(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SmsError(f"--var {pair!r}: use NAME=VALUE")
        out[name.strip()] = value
    return out


async def _send(config: Config, args: argparse.Namespace) -> int:
    clock = Clock()
    async with Store.configured(config, clock) as store:
        service = SmsService.from_config(store.sms, config, clock)
        message = await service.enqueue(
            to=args.to,
            template=args.template,
            variables=_variables(args.var),
            idempotency_key=args.key or f"cli-{uuid.uuid4()}",
        )
        print(
            f"text #{message.id} {message.status}: {message.segments} part(s) to {mask(message.to)}"
        )
        if args.wait > 0 and message.status == "queued":
            try:
                # Send it here when no gateway serves this SQLite file; on PostgreSQL always:
                # outbox workers there share the queue by their leases.
                with single_gateway(config):
                    url = store.db.url if isinstance(store.db, PostgresDatabase) else None
                    skew = timedelta(seconds=config.store.max_clock_skew)
                    async with (
                        visiting(url, clock, skew) as member,
                        TwilioProvider.open(config.sms) as provider,
                        OutboxWorker(service, provider, cluster=member),
                    ):
                        if member is not None and not member.skew.ok:
                            print(f"not sent from here: {member.skew.problem()}; waiting")
                        await _handed_over(store, message.id, args.wait)
            except StoreInUse:
                # A gateway serves this store: its outbox sends the text; only wait for it.
                print("a running gateway sends it; waiting")
                await _handed_over(store, message.id, args.wait)
            row = await store.sms.get(message.id)
            assert row is not None
            print(
                f"text #{row.id} {row.status}"
                + (f" ({row.provider_sid})" if row.provider_sid else "")
                + (f": {row.error_message}" if row.error_message else "")
            )
            return 0 if row.status != "failed" else 1
    return 0


async def _handed_over(store: Store, message_id: int, seconds: float) -> None:
    """Wait up to ``seconds`` until the text has a provider sid or has failed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                row = await store.sms.get(message_id)
                if row is not None and (row.provider_sid or row.status == "failed"):
                    return
                await asyncio.sleep(0.05)


PURPOSE_NAMES = {
    "rectification_order": "整改通知",
    "rating_request": "评价请求",
    "booking": "预约确认",
    "overdue_reminder": "超期提醒",
    "report": "日志报告",
    "case": "诉求办理",
}
STATUS_NAMES = {
    "queued": "待发送",
    "sending": "发送中",
    "sent": "已发出",
    "delivered": "已送达",
    "undelivered": "未送达",
    "failed": "失败",
}


def _row(m: OutboxMessage) -> list[str]:
    return [
        str(m.id),
        Clock().local(m.created_at).strftime("%m-%d %H:%M"),
        PURPOSE_NAMES.get(m.purpose, m.purpose),
        mask(m.to),
        STATUS_NAMES.get(m.status, m.status),
        str(m.attempts),
        m.error_code or "",
    ]


async def _list(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        messages = await store.sms.recent(status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([message_json(m) for m in messages], ensure_ascii=False, indent=2))
        return 0
    if not messages:
        print("没有短信")
        return 0
    header = ["编号", "时间", "用途", "收件人", "状态", "发送次数", "错误码"]
    print(render(header, [_row(m) for m in messages], right=[0, 5]))
    return 0


async def _show(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        message = await store.sms.get(args.id)
        if message is None:
            raise NoSuchMessage(args.id)
        events = await store.sms.events(args.id)
    if args.json:
        print(
            json.dumps(
                {
                    "message": message_json(message),
                    "events": [
                        {
                            "kind": e.kind,
                            "status": e.status,
                            "detail": e.detail,
                            "at": e.at.isoformat(),
                        }
                        for e in events
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    clock = Clock()
    print(f"text #{message.id}  {message.purpose} → {mask(message.to)} ({message.audience})")
    print(
        f"  status {message.status}, {message.attempts} attempt(s), "
        f"{message.segments} part(s) {message.encoding}, sid {message.provider_sid or '-'}"
    )
    if message.error_code or message.error_message:
        print(f"  error {message.error_code or ''} {message.error_message or ''}".rstrip())
    print(f"  key {message.idempotency_key}")
    print(f"  {message.body}")
    for e in events:
        print(
            f"  {clock.local(e.at):%Y-%m-%d %H:%M:%S}  {e.kind:<11} {e.status or '':<11} {e.detail}"
        )
    return 0


async def _run(config: Config, args: argparse.Namespace) -> int:
    with single_gateway(config):  # the outbox and webhooks: one process per SQLite store
        return await _serve(config)


async def _serve(config: Config) -> int:
    # On PostgreSQL it works beside the gateways under its own [gateway] name (never
    # leading their jobs); on SQLite it is alone on the store.
    member = functools.partial(add_cluster, candidate=False)
    app = create_web_app(config, features=[member, sms_feature()])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.web.host, config.web.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
        print(
            f"outbox running; webhooks on http://{config.web.host}:{config.web.port}"
            f" (public {config.web.public_url}); Ctrl-C stops",
            flush=True,
        )
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
