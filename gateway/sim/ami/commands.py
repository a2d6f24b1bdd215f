"""``gateway sim ami``: the simulated Asterisk alone, for the gateway or any AMI tool."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import Config
from gateway.sim.ami.config import ManagerUser, SimConfig, parse_manager_conf
from gateway.sim.ami.population import generate_calls
from gateway.sim.ami.server import SimulatedPbx


def register(sim_sub: Any) -> None:
    ami = sim_sub.add_parser(
        "ami",
        help="a simulated Asterisk 22 speaking AMI (logins, AsyncAGI, queues, callers)",
        description="Run a simulated Asterisk 22 on a TCP port until Ctrl-C.",
    )
    ami.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ami.add_argument("--port", type=int, default=5038, help="TCP port (5038; 0 picks a free one)")
    ami.add_argument("--user", default="gateway", help="AMI username (gateway)")
    ami.add_argument("--secret", default="s3cret", help="AMI secret (s3cret)")
    ami.add_argument(
        "--manager-conf",
        type=Path,
        default=None,
        help="users from a manager.conf (read/write classes, eventfilter, writetimeout) "
        "instead of --user/--secret",
    )
    ami.add_argument("--agents", type=int, default=20, help="agent seats in the hotline queue (20)")
    ami.add_argument(
        "--time-scale", type=float, default=1.0, help="1 is real time, 0.01 is 100x faster (1)"
    )
    ami.add_argument(
        "--recordings", type=Path, default=None, help="folder of prompt WAV files and recordings"
    )
    ami.add_argument(
        "--callers", type=int, default=0, help="place this many random hotline calls (0: none)"
    )
    ami.add_argument(
        "--calls-per-minute", type=float, default=6.0, help="rate of random calls (6 a minute)"
    )
    ami.add_argument("--seed", type=int, default=1, help="seed of the random callers (1)")
    ami.add_argument(
        "--timezone", default="UTC", help="the PBX host's timezone, for Cdr/CEL times (UTC)"
    )
    ami.add_argument("--cel", action="store_true", help="send CEL events, like a cel.conf site")
    ami.add_argument(
        "--agi-url",
        default="agi:async",
        help="what the hotline and callback contexts run: agi:async, or FastAGI at "
        "agi://host:4573/main as the shipped dialplan (agi:async)",
    )
    ami.set_defaults(handler=_run)


async def _run(config: Config, args: argparse.Namespace) -> int:
    if args.recordings is not None and not args.recordings.is_dir():
        print(f"gateway sim ami: --recordings {args.recordings} is not a folder")
        return 2
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"gateway sim ami: --timezone {args.timezone!r} is not a timezone (e.g. UTC)")
        return 2
    try:
        users: tuple[ManagerUser, ...] = ()
        if args.manager_conf is not None:
            users = parse_manager_conf(args.manager_conf.read_text(encoding="utf-8"))
        sim_config = SimConfig(
            host=args.host,
            port=args.port,
            username=args.user,
            secret=args.secret,
            users=users,
            agents=args.agents,
            time_scale=args.time_scale,
            recordings_dir=args.recordings,
            seed=args.seed,
            timezone=args.timezone,
            cel=args.cel,
            agi_url=args.agi_url,
        )
    except (OSError, ValueError, re.error) as exc:
        print(f"gateway sim ami: {exc}")
        return 2
    async with SimulatedPbx(sim_config) as pbx:
        print(f"simulated Asterisk 22 AMI on {sim_config.host}:{pbx.port}", flush=True)
        if users:
            names = ", ".join(u.name for u in users)
            print(f"users from {args.manager_conf}: {names}", flush=True)
        else:
            print(
                f"login: Username: {sim_config.username}  Secret: {sim_config.secret}", flush=True
            )
        print(f"try: nc {sim_config.host} {pbx.port}   (Ctrl-C stops)", flush=True)
        if args.callers:
            await generate_calls(
                pbx, args.callers, per_minute=args.calls_per_minute, seed=args.seed
            )
            print(f"placed {args.callers} random calls", flush=True)
        await asyncio.Event().wait()  # until Ctrl-C cancels the run
    return 0
