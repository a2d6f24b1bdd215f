"""The leaders' reports on the bureau's two years, against an empty store in the same run.

Builds (or reuses) a synthetic store of ``--scale`` days of the bureau's volume
(``gateway.store.fake``: the project's migrations, the demo city, seeded), then reads
through the store's read-only connection, for ``--rounds`` rounds each (p50 printed):

* ``board_ms``: the three colours of every unit (``unit_board``, 30-day window);
* ``daily_ms``: the figures of the daily log of the last whole day (``build_log``);
* ``weekly_ms``: the same for the last whole ISO week;
* ``agenda_ms``: a sub-bureau's agenda (its open cases and orders with their history);
* ``period_30d_ms``, ``period_365d_ms``: the six rates by unit and by kind over 30 and
  365 days; ``period_unit_365d_ms`` for one sub-bureau over 365 days;
* ``loop_stall_ms``: the worst lag of the event loop while a daily log is built;

and once: ``daily_pdf_ms``, ``xlsx_365d_ms`` (making the files). The same is measured
on an empty store (migrated and seeded only) first. The last line is, exactly::

    reports_scale: calls=<N> daily_ms=<p50> board_ms=<p50> period_365d_ms=<p50> ...

    python bench/reports_scale.py [--scale 2y] [--store PATH] [--rounds 5] [--seed 2026]

``--store`` keeps the built store for later runs (a store that exists is reused).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.clock import ManualClock  # noqa: E402
from gateway.reports.agenda import build_agenda, meeting_unit  # noqa: E402
from gateway.reports.board import DEFAULT_THRESHOLDS, unit_board  # noqa: E402
from gateway.reports.logs import build_log, log_document  # noqa: E402
from gateway.reports.making import catalogue_names  # noqa: E402
from gateway.reports.pdf import find_font, render_pdf  # noqa: E402
from gateway.reports.period import build_period, period_xlsx  # noqa: E402
from gateway.reports.periods import daily_span, range_span, weekly_span  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.store.fake import FakePlan, build_fake_store, parse_scale  # noqa: E402
from gateway.store.reader import ReadConnection  # noqa: E402
from gateway.store.seed import demo_city, load_seed  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
END = date(2026, 12, 1)  # the fake store's first day without traffic (UTC)
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 local on 2026-12-01
TODAY = date(2026, 12, 1)


async def _timed(rounds: int, work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _stall(work: Callable[[], Awaitable[Any]]) -> float:
    """The worst lag of a 1 ms ticker while ``work`` runs, in ms."""
    worst = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - started) * 1000 - 1)

    ticker = asyncio.create_task(tick())
    try:
        await work()
    finally:
        done.set()
        await ticker
    return worst


async def measure(path: Path, rounds: int, files: bool) -> dict[str, float]:
    kinds = catalogue_names()
    day = TODAY - timedelta(days=1)
    monday = TODAY - timedelta(days=TODAY.isoweekday() - 1 + 7)
    out: dict[str, float] = {}
    async with ReadConnection.open(path) as reads:

        async def daily() -> Any:
            span = daily_span(day, TODAY, TZ)
            return await build_log(
                reads, span, now=NOW, tz=TZ, thresholds=DEFAULT_THRESHOLDS, kind_names=kinds
            )

        async def weekly() -> Any:
            span = weekly_span(monday, TODAY, TZ)
            return await build_log(
                reads, span, now=NOW, tz=TZ, thresholds=DEFAULT_THRESHOLDS, kind_names=kinds
            )

        async def agenda() -> Any:
            unit = await meeting_unit(reads, "LZ-DC")
            return await build_agenda(reads, unit, TODAY, now=NOW, tz=TZ, kind_names=kinds)

        def period(days: int, unit: str | None = None) -> Callable[[], Awaitable[Any]]:
            async def run() -> Any:
                span = range_span(day - timedelta(days=days - 1), day, TODAY, TZ)
                return await build_period(reads, span, now=NOW, unit_code=unit, kind_names=kinds)

            return run

        out["board_ms"] = await _timed(
            rounds, lambda: unit_board(reads, day=day, scope_units=None, now=NOW)
        )
        out["daily_ms"] = await _timed(rounds, daily)
        out["weekly_ms"] = await _timed(rounds, weekly)
        out["agenda_ms"] = await _timed(rounds, agenda)
        out["period_30d_ms"] = await _timed(rounds, period(30))
        out["period_365d_ms"] = await _timed(rounds, period(365))
        out["period_unit_365d_ms"] = await _timed(rounds, period(365, "LZ-DC"))
        out["loop_stall_ms"] = await _stall(daily)
        if files:
            log = await daily()
            font = find_font()
            started = time.perf_counter()
            await asyncio.to_thread(render_pdf, log_document(log, "民生诉求日志"), font)
            out["daily_pdf_ms"] = (time.perf_counter() - started) * 1000
            report = await period(365)()
            started = time.perf_counter()
            period_xlsx(report)
            out["xlsx_365d_ms"] = (time.perf_counter() - started) * 1000
        row = await reads.fetchone("SELECT COUNT(*) FROM call_records")
        out["calls"] = float(row[0]) if row else 0.0
    return out


async def empty_store(path: Path) -> None:
    async with Store.open(path, ManualClock(NOW)) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")


def _line(figures: dict[str, float]) -> str:
    return " ".join(f"{k}={int(v)}" if k == "calls" else f"{k}={v:.1f}" for k, v in figures.items())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="2y")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "empty.sqlite3"
        await empty_store(base)
        print("empty store:", _line(await measure(base, args.rounds, files=True)), flush=True)
        path = args.store or Path(folder) / "big.sqlite3"
        if not path.exists():
            days = parse_scale(args.scale)
            started = time.perf_counter()
            counts = await build_fake_store(path, FakePlan(days=days, seed=args.seed, end=END))
            print(f"built {path} in {time.perf_counter() - started:.0f} s: {counts.line()}")
        print("reports_scale:", _line(await measure(path, args.rounds, files=True)))


if __name__ == "__main__":
    asyncio.run(main())
