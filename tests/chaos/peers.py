"""The chaos run's peers in their own process: the simulated PBX(s) and Twilio, a control port.

    python tests/chaos/peers.py --seed 7 --secret S --token T --time-scale 0.1 --pbxes a,b

Prints one JSON line with the ports once everything listens, then serves until
killed. The control port (plain HTTP on loopback) lets the test cut an AMI link,
start Twilio 429 storms, 5xx and dropped responses, make citizens reply by text, and
read back what the peers saw: every Originate on every PBX (who, for which attempt,
from when to when), where each call still up stands (its channel's application,
AsyncAGI, queue), and every message created at Twilio. The peers only observe the
gateways; they never look into their store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from typing import Any

from aiohttp import web

from gateway.demo.traffic import citizen
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.ami.population import generate_calls
from gateway.sim.ami.world import normalise
from gateway.sim.twilio import SimulatedTwilio


class Observer:
    """Wraps the simulated PBX's Originate to note each call's span and variables."""

    def __init__(self, pbx: SimulatedPbx, name: str) -> None:
        self.name = name
        self.world = pbx.world
        self.calls: list[dict[str, Any]] = []
        original = self.world.originate

        async def originate(**kwargs: Any) -> bool:
            number = kwargs["number"]
            key = normalise(number)
            record: dict[str, Any] = {
                "pbx": self.name,
                "number": number,
                "variables": dict(kwargs["variables"]),
                "start": time.monotonic(),
                "end": None,
            }
            self.calls.append(record)
            before = len(self.world.outbound.get(key, []))
            try:
                return bool(await original(**kwargs))
            finally:
                placed = self.world.outbound.get(key, [])
                if len(placed) > before:
                    call = placed[before]
                    if id(call) not in self.spans:
                        self.time(call, since=record["start"])
                    if call.finished.done():
                        record["end"] = time.monotonic()
                    else:
                        call.finished.add_done_callback(
                            lambda _f: record.__setitem__("end", time.monotonic())
                        )
                else:
                    record["end"] = time.monotonic()

        self.world.originate = originate  # type: ignore[method-assign]
        self.spans: dict[int, list[float | None]] = {}  # id(SimCall) → [start, end]
        place = pbx.place_call

        def place_call(script: Any) -> Any:
            call = place(script)
            self.time(call)
            return call

        pbx.place_call = place_call  # type: ignore[method-assign]

    def time(self, call: Any, since: float | None = None) -> None:
        """Note when ``call`` began (``since``, or now) and, once it does, when it ended."""
        span: list[float | None] = [since if since is not None else time.monotonic(), None]
        self.spans[id(call)] = span
        call.finished.add_done_callback(lambda _f: span.__setitem__(1, time.monotonic()))

    def span(self, call: Any) -> list[float | None]:
        return self.spans.get(id(call), [None, None])


def _seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th PBX: the run's own for the first (one PBX behaves as
    before there were several), a seed of its own for each other."""
    return seed if index == 0 else seed * 100 + index


def _where(pbx: SimulatedPbx, call: Any) -> str | None:
    """Where an unfinished call stands on the PBX (its channel's application, state, and
    whether AsyncAGI or a queue holds it), for the reader of a failed run; None once over."""
    if call.finished.done():
        return None
    chan = pbx.world.channels.get(call.channel)
    if chan is None:
        return "no channel"
    queues = pbx.world.queues.values()
    queued = [q.name for q in queues if any(e.channel is chan for e in q.waiting)]
    return (
        f"{chan.name} {chan.app}({chan.appdata}) state={chan.state_desc} in_agi={chan.in_agi}"
        f" agi_commands={chan.agi_commands.qsize()} queue={','.join(queued) or '-'}"
        f" bridge={chan.bridge_id or '-'} prompts={len(call.outcome.prompts)}"
        f" keys={call.outcome.keys!r} agent={call.outcome.agent or '-'}"
    )


def control_app(
    pbxes: dict[str, SimulatedPbx],
    twilio: SimulatedTwilio,
    observers: dict[str, Observer],
    seed: int,
) -> web.Application:
    """The control port over the PBXs (by name, in the order given) and Twilio."""
    app = web.Application()
    first = next(iter(pbxes))

    async def citizens(request: web.Request) -> web.Response:
        numbers = await request.json()
        for number in numbers:
            _, behaviour = citizen(random.Random(f"{seed}:{number}"))
            for pbx in pbxes.values():  # a citizen answers the same whichever PBX calls
                pbx.set_citizen(number, behaviour)  # type: ignore[arg-type]
        return web.json_response({"citizens": len(numbers)})

    async def fault(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        n = int(request.query.get("n", "1"))
        if kind == "ami-cut":
            pbxes[request.query.get("pbx", first)].faults.drop_connections()
        elif kind == "twilio-429":
            twilio.faults.burst_429(n, retry_after=1.0)
        elif kind == "twilio-5xx":
            twilio.faults.fail_5xx(n, 503)
        elif kind == "twilio-drop":
            twilio.faults.drop(n, after_accept=True)
        elif kind == "clear":  # the storms are over: faults still queued are dropped
            twilio.faults.clear()
        else:
            raise web.HTTPNotFound(text=f"no fault {kind}")
        return web.json_response({"fault": kind, "n": n})

    async def reply(request: web.Request) -> web.Response:
        body = await request.json()
        status = await twilio.send_reply(body["from"], body["to"], body["body"], body["url"])
        return web.json_response({"status": status})

    hotline: dict[str, list[Any]] = {name: [] for name in pbxes}
    placing: set[str] = set()  # PBXs whose hotline callers are still being placed

    async def place_hotline(request: web.Request) -> web.Response:
        count = int(request.query.get("n", "20"))
        per_minute = float(request.query.get("per_minute", "60"))
        # The callers are shared out over the PBXs, each at its share of the rate.
        share = max(1, count // len(pbxes))

        async def place(name: str, pbx: SimulatedPbx, index: int) -> None:
            try:
                calls = await generate_calls(
                    pbx, share, per_minute=per_minute / len(pbxes), seed=_seed(seed, index)
                )
                hotline[name].extend(calls)
            finally:
                placing.discard(name)

        for index, (name, pbx) in enumerate(pbxes.items()):
            placing.add(name)
            pbx.world.tasks.spawn(place(name, pbx, index), f"chaos hotline callers of {name}")
        return web.json_response({"hotline": share * len(pbxes)})

    async def report(request: web.Request) -> web.Response:
        now = time.monotonic()
        pbx_calls: list[dict[str, Any]] = []
        for name, pbx in pbxes.items():
            outbound = [call for calls in pbx.world.outbound.values() for call in calls]
            pbx_calls.extend(
                {
                    "pbx": name,
                    "linkedid": call.linkedid,
                    "direction": call.outcome.direction,
                    "finished": call.finished.done(),
                    "span": observers[name].span(call),
                    "where": _where(pbx, call),
                    "first_prompts": call.outcome.prompts[:2],
                }
                for call in [*hotline[name], *outbound]
            )
        return web.json_response(
            {
                "now": now,
                "calls": [call for o in observers.values() for call in o.calls],
                "pbx_calls": pbx_calls,
                "live_channels": sum(len(p.active_channels) for p in pbxes.values()),
                "placing_hotline": bool(placing),
                # AMI connections open now, per PBX
                "sessions": {name: pbx.sessions for name, pbx in pbxes.items()},
                "messages": [{"sid": m.sid, "to": m.to, "body": m.body} for m in twilio.messages],
                "rejected_429": twilio.stats.rejected_429,
            }
        )

    async def counts(request: web.Request) -> web.Response:
        """What the peers saw, counted (cheap to poll, for the benchmark)."""
        return web.json_response(
            {
                "originates": sum(len(o.calls) for o in observers.values()),
                "originates_by_pbx": {name: len(o.calls) for name, o in observers.items()},
                "messages": len(twilio.messages),
                "live_channels": sum(len(p.active_channels) for p in pbxes.values()),
                "sessions": {name: pbx.sessions for name, pbx in pbxes.items()},
            }
        )

    app.router.add_get("/counts", counts)
    app.router.add_post("/hotline", place_hotline)
    app.router.add_post("/citizens", citizens)
    app.router.add_post("/fault/{kind}", fault)
    app.router.add_post("/reply", reply)
    app.router.add_get("/report", report)
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--pbxes", default="main", help="the PBXs' names, comma-separated (main)")
    parser.add_argument(
        "--agi",
        default="",
        help="name=agi://host:port/name,…: the PBXs whose dialplan reaches a gateway by"
        " FastAGI (the others by AsyncAGI)",
    )
    args = parser.parse_args()
    names = args.pbxes.split(",")
    agi = dict(pair.split("=", 1) for pair in args.agi.split(",") if pair)
    async with contextlib.AsyncExitStack() as stack:
        pbxes: dict[str, SimulatedPbx] = {}
        for index, name in enumerate(names):
            sim_config = SimConfig(
                host="127.0.0.1",
                port=0,
                username="gateway",
                secret=args.secret,
                agents=args.agents,
                time_scale=args.time_scale,
                seed=_seed(args.seed, index),
                agi_url=agi.get(name, "agi:async"),
            )
            pbxes[name] = await stack.enter_async_context(SimulatedPbx(sim_config))
        twilio = await stack.enter_async_context(
            SimulatedTwilio(args.account, args.token, time_scale=args.time_scale)
        )
        observers = {name: Observer(pbx, name) for name, pbx in pbxes.items()}
        runner = web.AppRunner(control_app(pbxes, twilio, observers, args.seed), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(
            json.dumps(
                {
                    "ami": {name: pbx.port for name, pbx in pbxes.items()},
                    "twilio": twilio.base_url,
                    "control": control_port,
                }
            ),
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
