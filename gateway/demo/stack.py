"""The gateway and its simulated peers on loopback ports, wired as in production.

``gateway demo`` runs on it, and so do the end-to-end tests: the real gateway
application (``gateway.app.create_app``) logs in to ``gateway.sim.ami`` over TCP
and sends texts to ``gateway.sim.twilio`` with the real twilio client; the
simulated Twilio posts signed webhooks back to the gateway's web port.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway import config as config_module
from gateway.accounts.demo import add_demo_people
from gateway.clock import ScaledClock
from gateway.config import Config
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.ami.config import shipped_gateway_user
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.webhooks import INBOUND_PATH
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed

ACCOUNT_SID = "AC" + "d3" * 16
SENDER = "+8610690000001"
PBX_USER = "gateway"
#: How the simulated PBX hands its hotline calls to the gateway.
AGI_TRANSPORTS = ("fastagi", "async")


@dataclass
class Stack:
    config: Config
    clock: ScaledClock
    store: Store
    pbx: SimulatedPbx
    twilio: SimulatedTwilio
    app: web.Application
    url: str
    api_token: str
    runner: web.AppRunner
    run_scheduler: bool = True
    run_outbox: bool = True
    # Each open intake channel's own credential (X-Channel-Token), by channel.
    channel_tokens: dict[str, str] = field(default_factory=dict)
    # The bookings clients' credential (X-Channel-Token on /api/bookings), when open.
    bookings_token: str = ""
    # The demo's people (gateway.accounts.demo): password by username.
    people: dict[str, str] = field(default_factory=dict)
    # Every simulated PBX by its [[pbx]] name (``pbx`` is the first).
    pbxes: dict[str, SimulatedPbx] = field(default_factory=dict)

    @property
    def inbound_url(self) -> str:
        return self.url + INBOUND_PATH

    async def restart(self) -> None:
        """Stop the gateway as a shutdown would, and start a new one on the same store,
        port and peers (a restart mid-campaign)."""
        port = int(self.url.rsplit(":", 1)[1])
        await self.runner.cleanup()
        self.app, self.runner = await _start_gateway(
            self.config,
            self.clock,
            self.store,
            _bound_socket(port),
            self.run_scheduler,
            run_outbox=self.run_outbox,
        )

    async def another_gateway(self, config: Config) -> tuple[web.Application, web.AppRunner]:
        """A second gateway beside this one, on the same store and peers, with its own
        ``config`` and a free web port (clean its runner up when done)."""
        return await _start_gateway(
            config, self.clock, self.store, _bound_socket(), self.run_scheduler
        )


def _bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def _start_gateway(
    config: Config,
    clock: ScaledClock,
    store: Store,
    sock: socket.socket,
    run_scheduler: bool,
    *,
    run_outbox: bool = True,
) -> tuple[web.Application, web.AppRunner]:
    from gateway.app import create_app  # the app imports every feature; keep this module light

    app = create_app(
        config, clock=clock, store=store, run_scheduler=run_scheduler, run_outbox=run_outbox
    )
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    # The server owns the socket now and closes it when the runner is cleaned up.
    return app, runner


def _pbx_tables(data_dir: Path, names: Sequence[str]) -> Path:
    """A configuration file of one [[pbx]] table per name (only a file holds several),
    and nothing else: every other setting comes from the stack's overrides."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "pbxes.toml"
    path.write_text("".join(f'[[pbx]]\nname = "{name}"\n' for name in names), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def running_stack(
    data_dir: Path,
    clock: ScaledClock,
    *,
    agents: int = 20,
    recordings_dir: Path | None = None,
    overrides: Sequence[str] = (),
    run_scheduler: bool = True,
    run_outbox: bool = True,
    agi: str = "async",
    intake_channels: Sequence[str] = (),
    bookings: bool = False,
    people: bool = False,
    pbx_names: Sequence[str] = ("main",),
) -> AsyncIterator[Stack]:
    """Start the simulated peers, then the gateway against them; stop in reverse.

    The simulated PBX admits only the least-privilege AMI user of the shipped
    manager.conf. ``agi`` is how it hands hotline calls over: "fastagi"
    (AGI(agi://…), as the shipped dialplan) or "async" (AGI(agi:async)).
    ``intake_channels`` (web, wechat, letter, visit, 12345) are opened, each with a
    fresh credential of its own (``Stack.channel_tokens``); ``bookings`` opens
    ``/api/bookings`` with one (``Stack.bookings_token``). ``people``: add the demo's
    accounts (a leader, a station chief) with fresh passwords. ``pbx_names``: one
    simulated PBX per name, each a [[pbx]] table of the gateway's configuration (an
    override names it: ``pbx.<name>.lines=2``)."""
    if agi not in AGI_TRANSPORTS:
        raise ValueError(f"agi must be one of {AGI_TRANSPORTS}, got {agi!r}")
    if not pbx_names or len(set(pbx_names)) != len(pbx_names):
        raise ValueError(f"pbx_names must be distinct names, got {pbx_names!r}")
    pbx_secrets = {name: secrets.token_urlsafe(12) for name in pbx_names}
    agi_overrides: list[str] = []
    agi_base = ""
    if agi == "fastagi":
        with _bound_socket() as probe:  # a free port for the gateway's FastAGI listener
            agi_port = probe.getsockname()[1]
        agi_overrides = ["agi.listen_host=127.0.0.1", f"agi.listen_port={agi_port}"]
        agi_base = f"agi://127.0.0.1:{agi_port}/"
    twilio_token = secrets.token_urlsafe(16)
    api_token = secrets.token_urlsafe(16)
    channel_tokens = {name: secrets.token_urlsafe(18) for name in intake_channels}
    bookings_token = secrets.token_urlsafe(18) if bookings else ""
    sim_configs = {
        name: SimConfig(
            host="127.0.0.1",
            port=0,
            users=(shipped_gateway_user(pbx_secrets[name], PBX_USER),),
            agi_url=f"{agi_base}{name}" if agi_base else "agi:async",
            agents=agents,
            time_scale=1.0 / clock.speed,
            recordings_dir=recordings_dir,
            epoch=clock.now().timestamp(),
            timezone=str(clock.tz),
        )
        for name in pbx_names
    }
    sock = _bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with contextlib.AsyncExitStack() as peers:
        pbxes = {
            name: await peers.enter_async_context(SimulatedPbx(sim_configs[name]))
            for name in pbx_names
        }
        twilio = await peers.enter_async_context(
            SimulatedTwilio(ACCOUNT_SID, twilio_token, time_scale=1.0 / clock.speed)
        )
        config_file = None
        if tuple(pbx_names) != ("main",):
            config_file = await asyncio.to_thread(_pbx_tables, data_dir, pbx_names)
        config = config_module.load(
            config_file,
            env={
                **{f"GATEWAY_PBX_{n.upper()}_SECRET": pbx_secrets[n] for n in pbx_names},
                "GATEWAY_SMS_AUTH_TOKEN": twilio_token,
                "GATEWAY_WEB_API_TOKEN": api_token,
            },
            overrides=[
                f"gateway.data_dir={data_dir}",
                *(f"pbx.{name}.port={pbxes[name].port}" for name in pbx_names),
                *(f"pbx.{name}.username={PBX_USER}" for name in pbx_names),
                f"sms.api_base_url={twilio.base_url}",
                f"sms.account_sid={ACCOUNT_SID}",
                f"sms.from_number={SENDER}",
                f"web.public_url={url}",
                *agi_overrides,
                *(f"appeals.channels_{name}_token={t}" for name, t in channel_tokens.items()),
                *([f"bookings.token={bookings_token}"] if bookings else []),
                *overrides,
            ],
        )
        async with Store.configured(config, clock) as store:
            await load_seed(store.units, demo_city(), "demo-city.toml")
            passwords = await add_demo_people(store, config.web) if people else {}
            app, runner = await _start_gateway(
                config, clock, store, sock, run_scheduler, run_outbox=run_outbox
            )
            stack = Stack(
                config,
                clock,
                store,
                pbxes[pbx_names[0]],
                twilio,
                app,
                url,
                api_token,
                runner,
                run_scheduler,
                run_outbox,
                channel_tokens,
                bookings_token,
                passwords,
                pbxes,
            )
            try:
                yield stack
            finally:
                await stack.runner.cleanup()
