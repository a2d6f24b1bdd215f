"""``gateway db migrate`` and ``gateway db seed``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.config import Config
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed, load_seed_file


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="the case store: migrations and seed data")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="create or upgrade the store's schema")
    migrate.set_defaults(handler=_migrate)
    seed = db_sub.add_parser("seed", help="load units and officers from a TOML seed file")
    seed.add_argument("file", nargs="?", type=Path, help="seed file (default: the demo city)")
    seed.set_defaults(handler=_seed)


async def _migrate(config: Config, args: argparse.Namespace) -> int:
    async with Store.open(config.store_path, Clock(), migrate=False) as store:
        applied = await store.db.migrate()
        version = await store.db.schema_version()
    if applied:
        print(f"{config.store_path}: applied {', '.join(applied)}; schema version {version}")
    else:
        print(f"{config.store_path}: up to date at schema version {version}")
    return 0


async def _seed(config: Config, args: argparse.Namespace) -> int:
    async with Store.open(config.store_path, Clock()) as store:
        if args.file is None:
            units, officers = await load_seed(store.units, demo_city(), "demo-city.toml")
        else:
            units, officers = await load_seed_file(store.units, args.file)
    print(f"{config.store_path}: loaded {units} units and {officers} officers")
    return 0
