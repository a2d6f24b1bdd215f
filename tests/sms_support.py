"""Shared set-up of the SMS tests: the simulated Twilio and the gateway's web app on
loopback ports, wired the way production wires them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.clock import Clock
from gateway.config import Config, Secret, SmsSection, WebSection
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.outbox import OutboxWorker
from gateway.sms.service import SmsService
from gateway.sms.templates import load_templates
from gateway.store import Store
from gateway.store.lock import StoreLock
from gateway.web.app import create_web_app
from gateway.web.sms import OUTBOX, SMS, sms_feature
from tests import polling

ACCOUNT = "AC" + "a1" * 16
TOKEN = "sim-auth-token"
FROM = "+8610690000001"
CHIEF = "+8613912345678"
CITIZEN = "+8613800138000"
API_TOKEN = "api-token-for-tests"

ORDER_VARS = {
    "unit": "城关派出所",
    "business": "轻微伤害案件办理",
    "case_ref": "LZ2026-000123",
    "reason": "案件进展慢，无人联系",
    "citizen": CITIZEN,
    "deadline": "12月3日18时",
}


async def until(check: Callable[[], object], seconds: float = 20.0) -> Any:
    """Poll ``check`` often (the SMS tests wait for sub-second events) until it is truthy.

    The limit only matters when something is wrong; a loaded machine needs room."""
    return await polling.until(check, seconds, every=0.01)


def sms_config(api_base_url: str, public_url: str, **sms: Any) -> Config:
    defaults: dict[str, Any] = {
        "api_base_url": api_base_url,
        "account_sid": ACCOUNT,
        "auth_token": Secret(TOKEN),
        "from_number": FROM,
        "rate_per_second": 1000.0,
        "http_timeout": 2.0,
        "backoff_min": 0.01,
        "backoff_max": 0.05,
        "lookup_delay": 0.05,
        "poll_interval": 0.05,
        "quiet_start": "00:00",
        "quiet_end": "00:00",
    }
    defaults.update(sms)
    return Config(
        sms=SmsSection(**defaults),
        web=WebSection(public_url=public_url, api_token=Secret(API_TOKEN)),
    )


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@dataclass
class Gateway:
    app: web.Application
    url: str
    config: Config

    @property
    def sms(self) -> SmsService:
        return self.app[SMS]

    @property
    def worker(self) -> OutboxWorker:
        return self.app[OUTBOX]


@contextlib.asynccontextmanager
async def running_gateway(
    store: Store,
    tw: SimulatedTwilio,
    *,
    clock: Clock | None = None,
    run_outbox: bool = True,
    port: int = 0,
    **sms: Any,
) -> AsyncIterator[Gateway]:
    """The web app (SMS feature, outbox worker) on a loopback port, against ``tw``; with
    the outbox it holds the store's lock, as ``gateway run`` does."""
    # The single-process lock is a file beside a SQLite store; a PostgreSQL store has none.
    lock = StoreLock(store.db.file) if run_outbox and store.db.file is not None else None
    if lock is not None:
        lock.acquire()
    sock = free_socket(port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = sms_config(tw.base_url, url, **sms)
    app = create_web_app(
        config,
        clock=clock or store.clock,
        store=store,
        features=[sms_feature(run_outbox=run_outbox)],
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield Gateway(app, url, config)
    finally:
        await runner.cleanup()
        sock.close()
        if lock is not None:
            lock.release()


def replace_sms(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, sms=dataclasses.replace(config.sms, **changes))


ROOT = Path(__file__).resolve().parent.parent


async def gateway_process(
    *args: str,
    output: int | None = None,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """``python -m gateway ARGS`` of the source tree, run in ``cwd`` with ``env`` added to
    the environment; ``output``: where stdout/stderr go (default: pipes)."""
    sink = asyncio.subprocess.PIPE if output is None else output
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=cwd,
        stdout=sink,
        stderr=sink,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
    )


def process_settings(tw: SimulatedTwilio, **values: str) -> tuple[list[str], int]:
    """``--set`` arguments of a gateway process against ``tw`` (texts at any hour, a quick
    outbox, the shipped flows), with ``values`` added ("section.key": value); and the free
    web port it will listen on."""
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()  # the process under test binds it
    settings = {
        "sms.api_base_url": tw.base_url,
        "sms.account_sid": ACCOUNT,
        "sms.auth_token": TOKEN,
        "sms.from_number": FROM,
        "sms.quiet_start": "00:00",
        "sms.quiet_end": "00:00",
        "sms.poll_interval": "0.05",
        "web.port": str(port),
        "web.public_url": f"http://127.0.0.1:{port}",
        "ivr.flows_dir": str(ROOT / "flows"),
        "ivr.prompts": str(ROOT / "recordings" / "prompts.yaml"),
        **values,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")], port


async def healthy_process(port: int, proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The /health answer of the gateway process ``proc`` (web on ``port``) once every check
    is ok; fails with its last answer and its errors if it exits or is not healthy in 60 s."""
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.returncode is not None:
                break
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as response:
                    body = await response.json()
                    if response.status == 200:
                        return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode() if proc.returncode is not None else ""
    raise AssertionError(f"not healthy: {body} (exit {proc.returncode}) {err}")


async def stop_process(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> bytes:
    """Stop a gateway process with ``sig`` (if still running) and wait for it: its stderr."""
    if proc.returncode is None:
        proc.send_signal(sig)
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    return err or b""


def outbox_service(store: Store, clock: Clock, sms: SmsSection) -> SmsService:
    """The text service over a store's outbox, with the shipped templates (no worker)."""
    return SmsService(
        store.sms, load_templates(), clock, sms, sender=FROM, status_callback_url=None
    )
