"""Callbacks over two simulated PBXs (two AMI servers on loopback), counted at the
simulators: calls spread by free lines, never more up on a PBX than its lines, a PBX
that goes down mid-run gets no new calls while its calls in flight settle as "unknown"
and the rest of the work goes to the other, and it gets calls again when it is back.
Also two gateways sharing the lines of one PBX."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import aiohttp

from gateway.app import PBX
from gateway.callbacks.web import SCHEDULER
from gateway.demo.stack import Stack
from gateway.sim.ami import Answer, Press, SimulatedPbx, WaitForPrompt
from gateway.sim.ami.script import CitizenBehaviour
from tests.polling import until
from tests.test_callbacks_e2e import start_stack


def citizen(n: int) -> str:
    return f"+86139{n:08d}"


def rates_one(ring_seconds: float = 2.0) -> Answer:
    """Answers after ``ring_seconds`` (simulated) and rates 1."""
    return Answer(
        [WaitForPrompt("rate"), Press("1"), WaitForPrompt(timeout=60)], ring_seconds=ring_seconds
    )


def set_citizens(pbxes: Mapping[str, SimulatedPbx], numbers: range, how: CitizenBehaviour) -> None:
    for pbx in pbxes.values():
        for n in numbers:
            pbx.set_citizen(citizen(n), how)


async def serve(stack: Stack, numbers: range, *, url: str | None = None) -> None:
    """Report one served item per citizen through the API (of ``url``'s gateway)."""
    served_at = (stack.clock.now() - timedelta(days=4)).isoformat()
    batch = [
        {
            "reference": f"PBX-{n}",
            "kind": "minor_injury_case",
            "unit": "LZ-DC-01",
            "citizen_number": citizen(n),
            "served_at": served_at,
        }
        for n in numbers
    ]
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{url or stack.url}/api/served-items",
            json=batch,
            headers={"Authorization": f"Bearer {stack.api_token}"},
        )
        assert response.status in (200, 201), await response.text()


async def all_rated(stack: Stack, numbers: range) -> bool:
    for n in numbers:
        item = await stack.store.callbacks.item_by_reference(f"PBX-{n}")
        if item is None or await stack.store.callbacks.rating(item.id, 1) is None:
            return False
    return True


def originates(pbx: SimulatedPbx) -> int:
    """Originates the simulated PBX received (each is an outbound call)."""
    return sum(len(calls) for calls in pbx.world.outbound.values())


def calls_up(pbx: SimulatedPbx, numbers: range | None = None) -> int:
    """Outbound calls ringing or up at the simulated PBX now (to ``numbers``' citizens)."""
    wanted = None if numbers is None else {citizen(n)[3:] for n in numbers}
    return sum(
        not c.finished.done()
        for number, calls in pbx.world.outbound.items()
        if wanted is None or number in wanted
        for c in calls
    )


@contextlib.asynccontextmanager
async def peak_calls(pbxes: Mapping[str, SimulatedPbx]) -> AsyncIterator[dict[str, int]]:
    """The most outbound calls up at once at each PBX (by name; ``pbxes`` may change its
    instances, as when a PBX is started again), sampled every 5 ms."""
    peaks = dict.fromkeys(pbxes, 0)

    async def sample() -> None:
        while True:
            for name, pbx in pbxes.items():
                peaks[name] = max(peaks[name], calls_up(pbx))
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield peaks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def attempts(stack: Stack) -> list[tuple[int, str, str]]:
    """Every call attempt as (id, pbx, outcome), oldest first."""
    rows = await stack.store.db.fetchall(
        "SELECT id, pbx, outcome FROM callback_attempts WHERE channel = 'call' ORDER BY id"
    )
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


async def no_call_up(stack: Stack) -> bool:
    """No callback attempt is still open: every line is free."""
    row = await stack.store.db.fetchone(
        "SELECT COUNT(*) FROM callback_attempts WHERE channel = 'call' AND ended_at IS NULL"
    )
    return row is not None and int(row[0]) == 0


async def test_callbacks_spread_over_two_pbxs_and_survive_one_going_down(tmp_path: Path) -> None:
    """Two PBXs of 2 lines each: ten callbacks are spread over both, never more than 2 up
    at once on either. North stops mid-run: it gets no new calls, its calls in flight
    settle as "unknown", south does the rest; started again, north gets calls again."""
    async with start_stack(
        tmp_path,
        "pbx.north.lines=2",
        "pbx.south.lines=2",
        "callbacks.ring_timeout_seconds=120",
        pbx_names=("north", "south"),
    ) as stack:
        pbxes = dict(stack.pbxes)
        async with peak_calls(pbxes) as peaks:
            # 1. Both up: the calls are spread by free lines.
            set_citizens(pbxes, range(10), rates_one())
            await serve(stack, range(10))
            await until(lambda: all_rated(stack, range(10)), 60)
            placed = {name: originates(pbx) for name, pbx in pbxes.items()}
            assert placed["north"] >= 3 and placed["south"] >= 3
            assert sum(placed.values()) == 10
            by_pbx = [pbx for _, pbx, _ in await attempts(stack)]
            assert {n: by_pbx.count(n) for n in pbxes} == placed  # each on its attempt's PBX
            assert max(peaks.values()) == 2  # both lines were used, never more

            # 2. North goes down while its calls ring (100 simulated seconds each).
            first_day = (await attempts(stack))[-1][0]
            set_citizens(pbxes, range(10, 20), rates_one(ring_seconds=100))
            await serve(stack, range(10, 20))
            await until(lambda: calls_up(pbxes["north"], range(10, 20)) == 2)
            north = pbxes["north"]
            session = stack.app[PBX]["north"]
            await north.stop()
            await until(lambda: not session.connected)
            before = await attempts(stack)
            cut = before[-1][0]
            in_flight = [a for a, pbx, _ in before if a > first_day and pbx == "north"]
            assert len(in_flight) == 2
            await until(lambda: all_rated(stack, range(10, 20)), 90)
            after = await attempts(stack)
            assert [a for a, pbx, _ in after if a > cut and pbx == "north"] == []
            assert {outcome for a, _, outcome in after if a in in_flight} == {"unknown"}
            assert peaks["south"] <= 2

            # 3. North back on its port: it gets calls again.
            pbxes["north"] = SimulatedPbx(dataclasses.replace(north.config, port=north.port))
            await pbxes["north"].start()
            try:
                peaks["north"] = 0
                set_citizens(pbxes, range(20, 26), rates_one())
                await until(lambda: session.connected, 30)
                await serve(stack, range(20, 26))
                await until(lambda: all_rated(stack, range(20, 26)), 60)
                assert originates(pbxes["north"]) >= 1
                assert [a for a, pbx, _ in await attempts(stack) if a > cut and pbx == "north"]
                assert max(peaks.values()) <= 2
            finally:
                await pbxes["north"].stop()


async def test_two_gateways_share_the_lines_of_one_pbx(tmp_path: Path) -> None:
    """Two gateways (each its own scheduler, callback service and AMI session) on one
    store and one PBX of 2 lines: both place calls, and never more than 2 are up on the
    PBX at once. (Answered calls come back by FastAGI to the gateway the dialplan names.)"""
    # Rounds come only when a gateway is woken (by its API or its own call ending), not
    # every 0.3 s: who claims what is then decided by who was told, not by a race.
    async with start_stack(
        tmp_path, "pbx.main.lines=2", "callbacks.poll_seconds=3600", agi="fastagi"
    ) as stack:
        second = dataclasses.replace(
            stack.config, agi=dataclasses.replace(stack.config.agi, listen_port=0)
        )
        app, runner = await stack.another_gateway(second)
        try:
            await until(lambda: app[PBX]["main"].connected)
            host, port = next(iter(runner.addresses))[:2]
            other_url = f"http://{host}:{port}"
            pbxes = {"main": stack.pbx}
            async with peak_calls(pbxes) as peaks:
                set_citizens(pbxes, range(14), rates_one(ring_seconds=5))
                # With every line free, the gateway told of new items (it is woken by
                # them) claims them before the other's next round.
                await serve(stack, range(2), url=other_url)
                await until(lambda: all_rated(stack, range(2)), 60)
                await until(lambda: no_call_up(stack), 60)
                # The second learns of its calls' end from the store; its next round,
                # which that end wakes, must be over before the first is told.
                await until(lambda: app[SCHEDULER].idle and stack.app[SCHEDULER].idle, 30)
                await serve(stack, range(2, 4))
                await until(lambda: all_rated(stack, range(2, 4)), 60)
                assert stack.app[SCHEDULER].placed >= 1 and app[SCHEDULER].placed >= 1
                # Then both at once, each told of half the items.
                await asyncio.gather(
                    serve(stack, range(4, 9)), serve(stack, range(9, 14), url=other_url)
                )
                await until(lambda: all_rated(stack, range(14)), 90)
            placed = stack.app[SCHEDULER].placed + app[SCHEDULER].placed
            assert placed == originates(stack.pbx) >= 14
            assert peaks["main"] == 2
            # The second gateway learns from the store that the surveys of its calls,
            # which the first one ran, are over (long before their 660 s bound).
            await until(lambda: app[SCHEDULER].active == 0, 15)
        finally:
            await runner.cleanup()
