"""``gateway run``: the gateway against the configured PBX(s) and SMS provider.

On SQLite, one gateway per store: ``run`` holds the store's lock
(:mod:`gateway.store.lock`) from before it opens anything until it exits, so a second
``run`` (or ``sms run``) on the same file refuses at start with one line; commands that
only read do not take it and run beside it. On PostgreSQL several gateways may serve one
database, so there is no such lock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pwd
import signal
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.app import PBX, create_app
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.pbx.exceptions import AmiError, AmiLoginError
from gateway.site.access import PBX_USER, user_groups, write_problem
from gateway.store.lock import single_gateway
from gateway.web.app import HEALTH_CHECKS, STORE

log = logging.getLogger("gateway.run")


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run the gateway against the configured PBX and SMS provider until stopped"
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="start, report whether every peer answers, and stop (for a first set-up)",
    )
    run.set_defaults(handler=run_gateway)


def _warnings(config: Config) -> list[str]:
    found = []
    for pbx in config.pbx:
        if not pbx.secret:
            found.append(f"PBX {pbx.name}: no secret (set GATEWAY_PBX_{pbx.name.upper()}_SECRET)")
    if not config.sms.account_sid or not config.sms.auth_token:
        found.append("SMS: no Twilio account (sms.account_sid, GATEWAY_SMS_AUTH_TOKEN)")
    if not config.web.api_token:
        found.append(
            "web: no API token (GATEWAY_WEB_API_TOKEN): the API stays shut to machine clients"
        )
    return found


async def run_gateway(config: Config, args: argparse.Namespace) -> int:
    with single_gateway(config):  # StoreInUse: one line from the CLI, exit 1
        return await _serve(config, args)


async def _serve(config: Config, args: argparse.Namespace) -> int:
    for warning in _warnings(config):
        log.warning("%s", warning)
    app = create_app(config, run_reports=True)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()  # opens every resource; a failure closes those already open
        site = web.TCPSite(runner, config.web.host, config.web.port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.web.host}:{config.web.port}"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise GatewayError(
                f"web: cannot listen on {where} (web.host, web.port): {reason}"
            ) from None
        log.info(
            "web on http://%s:%d (public URL %s)",
            config.web.host,
            config.web.port,
            config.web.public_url,
        )
        ok = await _check_peers(app, config)
        if args.check:
            print("all peers answer" if ok else "some peers do not answer; see the log above")
            return 0 if ok else 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        await runner.cleanup()


async def _check_peers(app: web.Application, config: Config) -> bool:
    """Wait for each PBX login, then ask every health check (store, SMS, PBX)."""
    ok = True
    for pbx_config in config.pbx:
        session = app[PBX][pbx_config.name]
        try:
            await session.wait_connected(within=pbx_config.connect_timeout * 2)
            rtt = await session.ping()
            versions = await session.command("core show version")
            log.info(
                "PBX %s: logged in, ping %.0f ms, %s",
                pbx_config.name,
                rtt * 1000,
                versions[0] if versions else "version unknown",
            )
        except AmiLoginError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            ok = False
        except AmiError as exc:
            log.error("PBX %s: %s (still retrying)", pbx_config.name, exc)
            ok = False
    for name, check in app[HEALTH_CHECKS].items():
        try:
            await check(app)
        except Exception as exc:
            log.error("health: %s does not answer: %s", name, exc)
            ok = False
        else:
            log.info("health: %s answers", name)
    if not await asyncio.to_thread(_check_messages_folder, config):
        ok = False
    if not any(user.active for user in await app[STORE].accounts.users()):
        # Not a failure: the gateway serves callers without anyone on the dashboard.
        log.warning(
            "web: no active accounts, nobody can log in to the dashboard: add one"
            " with `gateway users add NAME --role leader --unit CODE`"
        )
    if not config.agi.listen_port:
        # Not a failure: a site may keep AGI(agi:async). But the shipped dialplan uses
        # FastAGI, and with no listener every caller would skip the menu.
        log.warning(
            "agi.listen_port is 0: no FastAGI listener, so the shipped dialplan's"
            " AGI(agi://…) sends every caller straight to the queue; set [agi] listen_port"
            " (e.g. 4573) or put AGI(agi:async) back in extensions.conf"
        )
    return ok


def _umask() -> int:
    """This process's umask, read without changing it (other threads make files)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022  # the usual default where /proc does not say


def _check_messages_folder(
    config: Config, *, user_name: str = PBX_USER, today: date | None = None
) -> bool:
    """On the PBX's host (its user exists here), whether it can write callers' voice
    messages where the gateway sends them. Blocking: run in a thread."""
    folder = (config.gateway.data_dir / config.ivr.messages_dir).absolute()
    try:
        user = pwd.getpwnam(user_name)
    except KeyError:
        log.warning(
            "messages: no %r user on this host, so whether the PBX can write %s is not "
            "checked; it must see that folder at the same path",
            user_name,
            folder,
        )
        return True
    if today is None:
        today = datetime.now(ZoneInfo(config.gateway.timezone)).date()
    problem = write_problem(
        folder,
        (f"{today.year:04d}", f"{today.month:02d}", f"{today.day:02d}"),
        user.pw_uid,
        user_groups(user),
        euid=os.geteuid(),
        egid=os.getegid(),
        umask=_umask(),
        user_name=user_name,
    )
    if problem:
        log.error("messages: %s; callers' voice messages would be lost", problem)
        return False
    log.info("messages: %s can write %s", user_name, folder)
    return True
