"""The dashboard's pages on the bureau's history, against an empty store in the same run.

Builds (or reuses) a synthetic store of ``--scale`` days (``gateway.store.fake``),
serves the dashboard and its pages over loopback with the API token (every unit)
and measures the median of ``--rounds`` requests of each:

* ``charts_ms``: ``GET /dashboard/charts.json`` (satisfaction by day, calls by
  hour, categories by unit of the latest day);
* ``page_ms``: ``GET /dashboard`` (the figures, the three charts drawn as SVG);
* ``board_ms``: ``GET /dashboard/board.json`` (every unit's colour and reasons);
* ``unit_ms``: ``GET /dashboard/units/LZ-DC-01/data.json``;
* ``timeline_ms``: ``GET /dashboard/cases/<the latest case>/timeline.json``.

The shared figure cache is emptied before each request. The last line is, exactly::

    dashboard_pages: charts_ms=<p50> page_ms=<p50> board_ms=<p50> unit_ms=<p50>
    timeline_ms=<p50>

    python bench/dashboard_pages.py [--scale 90d] [--store PATH] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.clock import Clock
from gateway.store import Store
from gateway.store.fake import FakePlan, build_fake_store, parse_scale
from gateway.store.seed import demo_city, load_seed
from gateway.web.app import create_web_app
from gateway.web.dashboard import add_dashboard
from gateway.web.pages.routes import add_pages

TOKEN = "bench-pages-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ("charts_ms", "page_ms", "board_ms", "unit_ms", "timeline_ms")


async def _timed(http: TestClient[Any, Any], path: str) -> float:
    start = time.perf_counter()
    response = await http.get(path, headers=AUTH)
    await response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {await response.text()}")
    return (time.perf_counter() - start) * 1000


async def measure(path: Path, rounds: int, data_dir: Path) -> dict[str, float]:
    config = config_module.load(
        env={"GATEWAY_WEB_API_TOKEN": TOKEN}, overrides=[f"gateway.data_dir={data_dir}"]
    )
    clock = Clock()
    async with Store.open(path, clock) as store:
        row = await store.db.fetchone("SELECT number FROM cases ORDER BY id DESC LIMIT 1")
        case = str(row[0]) if row else None
        app = create_web_app(config, clock=clock, store=store, features=[add_dashboard, add_pages])
        paths = [
            "/dashboard/charts.json",
            "/dashboard",
            "/dashboard/board.json",
            "/dashboard/units/LZ-DC-01/data.json",
        ]
        async with TestClient(TestServer(app)) as http:
            for p in paths:
                await _timed(http, p)  # warm up
            times: dict[str, list[float]] = {name: [] for name in NAMES}
            for _ in range(rounds):
                for name, p in zip(NAMES, paths, strict=False):
                    store.figures.clear_cache()
                    times[name].append(await _timed(http, p))
                if case is not None:
                    times["timeline_ms"].append(
                        await _timed(http, f"/dashboard/cases/{case}/timeline.json")
                    )
        return {name: statistics.median(t) if t else 0.0 for name, t in times.items()}


def line(label: str, figures: dict[str, float]) -> str:
    return f"{label}: " + " ".join(f"{name}={figures[name]:.1f}" for name in NAMES)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="90d", help="days of data: 1w, 30d, 6m, 2y ...")
    parser.add_argument("--store", type=Path, help="keep (or reuse) the big store here")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    try:
        days = parse_scale(args.scale)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="dashboard-pages-") as tmp:
        empty = Path(tmp) / "empty.db"
        async with Store.open(empty, Clock()) as store:
            await load_seed(store.units, demo_city(), "demo-city.toml")
        base = await measure(empty, args.rounds, Path(tmp))
        print(line("empty store (baseline)", base), flush=True)
        big = args.store or Path(tmp) / "big.db"
        if not big.exists():
            start = time.perf_counter()
            plan = FakePlan(days=days, seed=args.seed, end=datetime.now(UTC).date())
            counts = await build_fake_store(big, plan)
            print(f"built {days} days in {time.perf_counter() - start:.0f} s: {counts.line()}")
        figures = await measure(big, args.rounds, Path(tmp))
    for name in NAMES:
        print(f"  {name}: {figures[name]:.1f} against {base[name]:.1f} on the empty store")
    print(line("dashboard_pages", figures))


if __name__ == "__main__":
    asyncio.run(main())
