"""``gateway sim twilio``: the simulated Twilio alone, for any Twilio client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from gateway.config import Config
from gateway.sim.twilio.server import SimulatedTwilio


def register(sim_sub: Any) -> None:
    p = sim_sub.add_parser(
        "twilio",
        help="serve Twilio's Messages API with signed status callbacks",
        description="Serve Twilio's Messages API on a local port. Point a Twilio client's "
        "API base URL at http://HOST:PORT; messages walk queued → sent → delivered with "
        "signed callbacks to their StatusCallback.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8099, help="port (default 8099; 0 picks one)")
    p.add_argument("--account-sid", default=None, help="account SID (default: sms.account_sid)")
    p.add_argument("--auth-token", default=None, help="auth token (default: sms.auth_token)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply the sent/delivered delays (default 1.0: 0.05 s and 0.2 s)",
    )
    p.add_argument(
        "--undelivered",
        action="append",
        default=[],
        metavar="NUMBER",
        help="texts to this E.164 number end undelivered (30003); repeatable",
    )
    p.set_defaults(handler=_serve)


async def _serve(config: Config, args: argparse.Namespace) -> int:
    account_sid = args.account_sid or config.sms.account_sid or "AC" + "0" * 32
    token = args.auth_token or config.sms.auth_token.reveal() or "simulated-token"
    async with SimulatedTwilio(
        account_sid, token, args.host, args.port, time_scale=args.time_scale
    ) as tw:
        for number in args.undelivered:
            tw.set_outcome(number, "undelivered")
        print(f"simulated Twilio on {tw.base_url} (account {account_sid}); Ctrl-C stops it")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        print(
            f"accepted {len(tw.messages)} message(s),"
            f" posted {tw.stats.callbacks_posted} callback(s)"
        )
    return 0
