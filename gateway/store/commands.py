"""``gateway db migrate``, ``gateway db seed``, ``gateway db fake`` and ``gateway db copy``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.config import Config
from gateway.store import Store
from gateway.store.copy import (
    CopyMismatch,
    TableCount,
    check_empty,
    copy_store,
    sqlite_schema_version,
)
from gateway.store.db import Database, StoreError
from gateway.store.fake import FakeCounts, FakePlan, build_fake_store, parse_scale
from gateway.store.lock import StoreLock
from gateway.store.postgres import PostgresDatabase
from gateway.store.seed import demo_city, load_seed, load_seed_file
from gateway.tables import render


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="the case store: migrations and seed data")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="create or upgrade the store's schema")
    migrate.set_defaults(handler=_migrate)
    seed = db_sub.add_parser("seed", help="load units and officers from a TOML seed file")
    seed.add_argument("file", nargs="?", type=Path, help="seed file (default: the demo city)")
    seed.set_defaults(handler=_seed)
    fake = db_sub.add_parser(
        "fake", help="fill a new store with synthetic traffic of the bureau (benchmarks)"
    )
    fake.add_argument("--scale", default="1w", help="days of traffic: 1w, 30d, 6m, 2y (1w)")
    fake.add_argument("--seed", type=int, default=2026, help="random seed (2026)")
    fake.add_argument(
        "--volume", type=float, default=1.0, help="times the bureau's daily volume (1.0)"
    )
    fake.set_defaults(handler=_fake)
    copy = db_sub.add_parser(
        "copy",
        help="copy a SQLite store into the PostgreSQL database of store.url (new and empty)",
    )
    copy.add_argument(
        "--from", dest="source", type=Path, required=True, help="the SQLite store file"
    )
    copy.set_defaults(handler=_copy)


async def _migrate(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock(), migrate=False) as store:
        applied = await store.db.migrate()
        version = await store.db.schema_version()
        name = store.name
    if applied:
        print(f"{name}: applied {', '.join(applied)}; schema version {version}")
    else:
        print(f"{name}: up to date at schema version {version}")
    return 0


async def _seed(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        if args.file is None:
            units, officers = await load_seed(store.units, demo_city(), "demo-city.toml")
        else:
            units, officers = await load_seed_file(store.units, args.file)
        name = store.name
    print(f"{name}: loaded {units} units and {officers} officers")
    return 0


async def _fake(config: Config, args: argparse.Namespace) -> int:
    try:
        days = parse_scale(args.scale)
    except ValueError as exc:
        print(f"gateway db fake: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.volume <= 100:
        print("gateway db fake: --volume must be above 0 and at most 100", file=sys.stderr)
        return 2
    end = Clock().now().date()  # up to last midnight (UTC): nothing in the future
    plan = FakePlan(days=days, seed=args.seed, end=end, volume=args.volume)
    try:
        if config.on_sqlite:
            counts = await build_fake_store(config.store_path, plan)
            name = str(config.store_path)
        else:
            counts, name = await _fake_postgres(config, plan)
    except StoreError as exc:
        print(f"gateway db fake: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: {days} days of synthetic traffic: {counts.line()}")
    return 0


async def _fake_postgres(config: Config, plan: FakePlan) -> tuple[FakeCounts, str]:
    """The same synthetic store on PostgreSQL: made in a SQLite file in the data folder (the
    filler's fast path), then copied into the database, which must be new and empty."""
    async with Store.configured(config, Clock()) as store:
        assert isinstance(store.db, PostgresDatabase)
        await check_empty(store.db)  # before minutes of work, not after
        data = config.gateway.data_dir
        await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="fake-", dir=data) as folder:
            path = Path(folder) / "fake.sqlite3"
            counts = await build_fake_store(path, plan)
            async with Database.open(path) as source:
                await copy_store(source, store.db)
        return counts, store.name


async def _copy(config: Config, args: argparse.Namespace) -> int:
    if config.on_sqlite:
        print(
            "gateway db copy: set store.url (GATEWAY_STORE_URL) to the PostgreSQL database"
            " to copy into",
            file=sys.stderr,
        )
        return 2
    source: Path = args.source
    version = await asyncio.to_thread(sqlite_schema_version, source)
    # No gateway may write the file meanwhile (StoreInUse: one line, exit 1).
    with StoreLock(source):
        # The database first: a wrong URL or password leaves the file as it was.
        async with (
            Store.configured(config, Clock()) as store,
            Database.open(source) as sqlite_db,
        ):
            assert isinstance(store.db, PostgresDatabase)
            try:
                counts = await copy_store(sqlite_db, store.db)
            except CopyMismatch as exc:
                print(_count_table(exc.counts))
                print(f"gateway db copy: {exc}", file=sys.stderr)
                return 1
            migrated = await sqlite_db.schema_version()
            label = store.name
    print(_count_table(counts))
    rows = sum(c.postgres for c in counts)
    newer = f" (migrated from version {version})" if migrated != version else ""
    print(
        f"{source} → {label}: {rows} rows in {len(counts)} tables, schema version {migrated}{newer}"
    )
    return 0


def _count_table(counts: list[TableCount]) -> str:
    rows = [[c.table, c.sqlite, c.postgres, "" if c.matches else "DIFFERS"] for c in counts]
    return render(["table", "SQLite", "PostgreSQL", ""], rows, right=[1, 2])
