"""Small write transactions on PostgreSQL through the store, against asyncpg's uncached
statements and against SQLite, in the same run.

Each transaction is what the repositories do most: the store's write transaction (its
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), an ``UPDATE`` whose row count
is read, a ``SELECT`` of one row, ``COMMIT``. Measured for ``--rounds`` rounds of
``--transactions`` each (best round):

* ``cached_tps``: the store's connection (``PgConnection.execute``: asyncpg's statement
  cache, one round trip per statement once known);
* ``uncached_tps``: the same statements each through ``Connection.prepare()`` and the
  prepared statement's ``fetch`` (asyncpg's public way to have rows and the status: a
  second round trip per statement), the baseline;
* ``sqlite_tps``: the same transactions on a SQLite store file.

The last line is, exactly (one line)::

    store_engines: cached_tps=<N> uncached_tps=<N> speedup=<x> sqlite_tps=<N>

    python bench/store_engines.py [--url postgresql://…] [--transactions 1500] [--rounds 3]

Without ``--url`` a throwaway PostgreSQL is started on loopback (as the tests do; it needs
PostgreSQL's server programs) and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gateway.clock import Clock  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.store.postgres import PgConnection, PgCursor, translate  # noqa: E402
from gateway.store.seed import demo_city, load_seed  # noqa: E402

UPDATE = "UPDATE units SET name = name WHERE id = ?"
SELECT = "SELECT id, code, name FROM units WHERE id = ?"


class UncachedConnection(PgConnection):
    """The baseline: each statement prepared anew (``Connection.prepare`` is not cached)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        statement = await self.raw.prepare(translate(sql))
        rows = await statement.fetch(*params)
        status = statement.get_statusmsg() or ""
        return PgCursor(rows, int(status.split()[-1]) if status[-1:].isdigit() else -1)


async def _transactions(store: Store, count: int, uncached: bool) -> float:
    """Transactions per second of ``count`` small write transactions."""
    units = 20
    started = time.perf_counter()
    for i in range(count):
        async with store.db.transaction() as conn:
            if uncached:
                conn = UncachedConnection(conn.raw, conn.label)
            cursor = await conn.execute(UPDATE, (1 + i % units,))
            if cursor.rowcount != 1:
                raise AssertionError(f"rowcount {cursor.rowcount}")
            cursor = await conn.execute(SELECT, (1 + i % units,))
            if await cursor.fetchone() is None:
                raise AssertionError("no row")
    return count / (time.perf_counter() - started)


async def _best(location: Path | str, count: int, rounds: int, uncached: bool) -> float:
    async with Store.open(location, Clock()) as store:
        if not await store.units.units():
            await load_seed(store.units, demo_city(), "demo-city.toml")
        await _transactions(store, count // 10, uncached)  # warm the pool and the caches
        return max([await _transactions(store, count, uncached) for _ in range(rounds)])


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from postgres_cluster import start_cluster, stop_cluster

    cluster = start_cluster()
    try:
        yield cluster.url()
    finally:
        stop_cluster(cluster)


async def main(args: argparse.Namespace) -> None:
    with _database(args.url) as url, tempfile.TemporaryDirectory() as folder:
        uncached = await _best(url, args.transactions, args.rounds, uncached=True)
        cached = await _best(url, args.transactions, args.rounds, uncached=False)
        sqlite = await _best(Path(folder) / "s.sqlite3", args.transactions, args.rounds, False)
    print(
        f"store_engines: cached_tps={cached:.0f} uncached_tps={uncached:.0f}"
        f" speedup={cached / uncached:.2f} sqlite_tps={sqlite:.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL database to use (its units are updated)")
    parser.add_argument("--transactions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
