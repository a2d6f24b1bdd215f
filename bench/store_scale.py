"""The dashboard and the callback summary on the bureau's two years, against an empty store.

Builds (or reuses) a synthetic store of ``--scale`` days of the bureau's volume
(``gateway.store.fake``: through the project's migrations, the demo city, seeded),
then serves the gateway's web application (dashboard, callbacks, texts) over
loopback and measures, for ``--rounds`` rounds:

* ``refresh_ms``: one ``GET /dashboard/data.json`` (what each open tab asks every
  10 s), the shared figure cache emptied first so every round computes (p50);
* ``summary_ms``: one ``GET /api/callbacks/summary`` (p50);
* ``loop_stall_ms``: the worst lag of the event loop while those run, measured
  in-process by a task that asks to sleep 1 ms;
* ``loop_busy_ms`` (printed above the last line): the same stall counted in the loop
  thread's CPU time, which the machine's other load does not inflate;
* ``lookup_during_refresh_ms``: an IVR case lookup (``store.cases.get``) issued
  while a refresh runs (max);
* ``station_refresh_ms`` (printed above the last line): the dashboard's figures
  of a station chief (``LZ-DC-01`` only), computed in-process, cache emptied (p50).

The same is measured on an empty store (migrated and seeded only) in the same run,
printed above. The last line is, exactly (one line)::

    store_scale: ratings=<N> refresh_ms=<p50> summary_ms=<p50> loop_stall_ms=<max>
    lookup_during_refresh_ms=<max>

    python bench/store_scale.py [--scale 2y] [--store PATH] [--rounds 15] [--seed 2026]

``--store`` keeps the built store for later runs (a store that exists is reused);
without it the store is built in a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from gateway import config as config_module  # noqa: E402
from gateway.app import add_callbacks  # noqa: E402
from gateway.clock import Clock  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.store.fake import FakePlan, build_fake_store, parse_scale  # noqa: E402
from gateway.store.seed import demo_city, load_seed  # noqa: E402
from gateway.web.app import create_web_app  # noqa: E402
from gateway.web.dashboard import WINDOW_DAYS, add_dashboard, dashboard_figures  # noqa: E402
from gateway.web.scope import Scope  # noqa: E402
from gateway.web.sms import sms_feature  # noqa: E402

TOKEN = "bench-token-3c1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Figures:
    ratings: int
    refresh_ms: float
    summary_ms: float
    loop_stall_ms: float
    lookup_ms: float
    loop_busy_ms: float
    station_refresh_ms: float

    def line(self, label: str) -> str:
        return (
            f"{label}: ratings={self.ratings} refresh_ms={self.refresh_ms:.1f}"
            f" summary_ms={self.summary_ms:.1f} loop_stall_ms={self.loop_stall_ms:.1f}"
            f" lookup_during_refresh_ms={self.lookup_ms:.1f}"
        )


class LoopLag:
    """The event loop's lag: how late a 1 ms sleep wakes, worst case while armed.

    ``worst`` is wall time, so it also counts the time the machine gave the process
    no CPU; ``worst_cpu`` is the loop thread's own CPU time between two wake-ups
    (``time.thread_time``): how long our code kept the loop busy, whatever the load.
    """

    def __init__(self) -> None:
        self.armed = False
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            lag = time.perf_counter() - start - 0.001
            if self.armed:
                self.worst = max(self.worst, lag)
                self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _clear_caches(store: Store) -> None:
    """Forget the figures viewers share, so that each round computes them (the code
    before the shared cache has none)."""
    figures = getattr(store, "figures", None)
    if figures is not None:
        figures.clear_cache()


async def _timed_get(http: TestClient[Any, Any], path: str) -> float:
    start = time.perf_counter()
    response = await http.get(path, headers=AUTH)
    await response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {await response.text()}")
    return (time.perf_counter() - start) * 1000


async def measure(path: Path, rounds: int) -> Figures:
    config = config_module.load(
        env={
            "GATEWAY_WEB_API_TOKEN": TOKEN,
            # Texts are never sent here (no outbox): the service only needs a provider.
            "GATEWAY_SMS_ACCOUNT_SID": "AC" + "5c" * 16,
            "GATEWAY_SMS_AUTH_TOKEN": "bench-sms-token",
            "GATEWAY_SMS_FROM_NUMBER": "+8610690000001",
            "GATEWAY_SMS_API_BASE_URL": "http://127.0.0.1:9",
        }
    )
    clock = Clock()
    async with Store.open(path, clock) as store:
        row = await store.db.fetchone("SELECT COUNT(*) FROM ratings")
        ratings = int(row[0]) if row else 0
        row = await store.db.fetchone("SELECT number FROM cases ORDER BY id DESC LIMIT 1")
        case_number = str(row[0]) if row else "TS20261130-0001"
        app = create_web_app(
            config,
            clock=clock,
            store=store,
            features=[sms_feature(run_outbox=False), add_callbacks, add_dashboard],
        )
        async with TestClient(TestServer(app)) as http:
            await _timed_get(http, "/dashboard/data.json")  # warm the page cache
            await _timed_get(http, "/api/callbacks/summary")
            refresh, summary, lookups = [], [], []
            with LoopLag() as lag:
                for _ in range(rounds):
                    _clear_caches(store)
                    lag.armed = True
                    refresh.append(await _timed_get(http, "/dashboard/data.json"))
                    _clear_caches(store)
                    summary.append(await _timed_get(http, "/api/callbacks/summary"))
                    _clear_caches(store)
                    during = asyncio.create_task(_timed_get(http, "/dashboard/data.json"))
                    await asyncio.sleep(0.002)  # the refresh is under way
                    start = time.perf_counter()
                    await store.cases.get(case_number)
                    lookups.append((time.perf_counter() - start) * 1000)
                    await during
                    lag.armed = False
                    await asyncio.sleep(0.05)
            station = await _station_scope(store)
            scoped = []
            for _ in range(rounds):
                _clear_caches(store)
                start = time.perf_counter()
                await dashboard_figures(store, clock, WINDOW_DAYS, station)
                scoped.append((time.perf_counter() - start) * 1000)
            return Figures(
                ratings,
                statistics.median(refresh),
                statistics.median(summary),
                lag.worst * 1000,
                max(lookups),
                lag.worst_cpu * 1000,
                statistics.median(scoped),
            )


async def _station_scope(store: Store) -> Scope:
    """What the chief of 东关派出所 sees (the demo city is in every store measured)."""
    unit = await store.units.unit_by_code("LZ-DC-01")
    if unit is None:
        raise SystemExit("the store has no unit LZ-DC-01: it was not seeded with the demo city")
    return Scope("station", "bench", frozenset({unit.id}), False)


async def empty_store(path: Path) -> None:
    async with Store.open(path, Clock()) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="2y", help="days of data: 1w, 30d, 6m, 2y, 3y ...")
    parser.add_argument("--store", type=Path, help="keep (or reuse) the big store here")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    try:
        days = parse_scale(args.scale)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="store-scale-") as tmp:
        empty = Path(tmp) / "empty.db"
        await empty_store(empty)
        base = await measure(empty, args.rounds)
        print(base.line("empty store (baseline)"), flush=True)
        big = args.store or Path(tmp) / "big.db"
        if not big.exists():
            end = datetime.now(UTC).date()  # up to last midnight (UTC)
            start = time.perf_counter()
            counts = await build_fake_store(big, FakePlan(days=days, seed=args.seed, end=end))
            took = time.perf_counter() - start
            print(f"built {days} days in {took:.0f} s: {counts.line()}", flush=True)
        else:
            print(f"reusing {big.name}", flush=True)
        figures = await measure(big, args.rounds)
    for name, value, baseline in (
        ("refresh_ms", figures.refresh_ms, base.refresh_ms),
        ("summary_ms", figures.summary_ms, base.summary_ms),
        ("loop_stall_ms", figures.loop_stall_ms, base.loop_stall_ms),
        ("lookup_during_refresh_ms", figures.lookup_ms, base.lookup_ms),
        (
            "loop_busy_ms (loop thread CPU between wake-ups)",
            figures.loop_busy_ms,
            base.loop_busy_ms,
        ),
        (
            "station_refresh_ms (a station chief's figures, in-process)",
            figures.station_refresh_ms,
            base.station_refresh_ms,
        ),
    ):
        print(f"  {name}: {value:.1f} against {baseline:.1f} on the empty store")
    print(figures.line("store_scale"))


if __name__ == "__main__":
    asyncio.run(main())
