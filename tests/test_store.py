"""The case store: migrations, units, officers, the demo seed."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.store import Store, StoreError
from gateway.store.db import (
    Migration,
    bundled_migrations,
    check_sequence,
    is_store_failure,
    store_problem,
)
from gateway.store.seed import demo_city, load_seed


async def test_migrations_apply_once(tmp_path: Path, clock: ManualClock) -> None:
    """A new file gets every migration; opening it again applies none."""
    path = tmp_path / "s.sqlite3"
    async with Store.open(path, clock, migrate=False) as store:
        first = await store.db.migrate()
        assert first and first[0].startswith("0001_")
    async with Store.open(path, clock, migrate=False) as store:
        assert await store.db.migrate() == []
        assert await store.db.schema_version() == int(first[-1][:4])


async def test_demo_city_has_the_promised_shape(store: Store) -> None:
    """The demo city has 15 stations under 3 sub-bureaus and 2 county bureaus, each with a chief."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    stations = await store.units.units("station")
    assert len(stations) == 15
    assert len(await store.units.units("sub_bureau")) == 3
    assert len(await store.units.units("county_bureau")) == 2
    for station in stations:
        parents = await store.units.ancestors(station.id)
        assert parents[0].kind in ("sub_bureau", "county_bureau")
        assert parents[-1].kind == "city"
        assert await store.units.chief(station.id) is not None
    chiefs = await store.units.officers(role="chief")
    assert all(c.mobile is None or c.mobile.startswith("+86") for c in chiefs)


async def test_seed_is_idempotent(store: Store) -> None:
    """Loading the same seed twice updates rows instead of duplicating them."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    await load_seed(store.units, demo_city(), "demo-city.toml")
    assert len(await store.units.units("station")) == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[unit]]\ncode='A'\nname='x'\nkind='planet'\n", "unknown kind 'planet'"),
        ("[[unit]]\ncode='A'\nname='x'\nkind='station'\nparent='NOPE'\n", "parent 'NOPE'"),
        ("[[officer]]\ncode='J1'\nname='x'\nunit='A'\nrole='chief'\n", "unit 'A' does not exist"),
        (
            "[[unit]]\ncode='A'\nname='x'\nkind='station'\n"
            "[[officer]]\ncode='J1'\nname='x'\nunit='A'\nrole='chief'\nmobile='010 1234 5678'\n",
            "officer[0] (J1): mobile: a fixed line cannot receive texts",
        ),
        ("[[unit]]\nname='x'\n", "unit[0]: 'code' is missing"),
        ("[[unit]\n", "not valid TOML"),
        ("[[station]]\ncode='A'\n", "unknown tables ['station']"),
    ],
)
async def test_bad_seed_names_what_is_wrong(store: Store, text: str, message: str) -> None:
    """A bad seed file is refused with a message naming the item and the problem."""
    with pytest.raises(StoreError, match=re.escape(message)):
        await load_seed(store.units, text, "bad.toml")


async def test_failed_transaction_rolls_back(store: Store) -> None:
    """An exception inside a transaction leaves nothing behind."""
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO units (code, name, kind, created_at) VALUES ('X', 'x', 'city', 'now')"
            )
            raise RuntimeError("boom")
    assert await store.units.unit_by_code("X") is None


async def test_gap_in_migration_numbers_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    """Migrations that skip a number are refused before any runs; 0003 is a known, recorded gap."""
    sql = "CREATE TABLE t{n} (id INTEGER PRIMARY KEY);"
    numbers = (1, 2, 4, 5, 6, 8)
    listed = [Migration(n, f"{n:04d}_t.sql", sql.format(n=n)) for n in numbers]
    async with Store.open(tmp_path / "gap.sqlite3", clock, migrate=False) as store:
        with pytest.raises(StoreError, match="the migrations skip 0007: a migration file"):
            await store.db.migrate(listed)
        assert await store.db.schema_version() == 0
        assert await store.db.migrate(listed[:-1]) == [m.name for m in listed[:-1]]


def test_bundled_migrations_have_no_unexplained_gap() -> None:
    """The bundled migrations pass the gap check (0003 is recorded as never released)."""
    versions = [m.version for m in bundled_migrations()]
    assert 3 not in versions and versions[:2] == [1, 2]
    check_sequence(bundled_migrations())


def test_store_failures_are_told_from_statement_errors(tmp_path: Path) -> None:
    """A full or damaged file is a store failure (503); a broken constraint is not."""
    with sqlite3.connect(tmp_path / "t.sqlite3") as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as constraint:
            conn.execute("INSERT INTO t VALUES (1)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.OperationalError) as full:
            conn.execute("CREATE TABLE big (payload BLOB)")
            conn.execute("INSERT INTO big VALUES (zeroblob(100000))")
    assert not is_store_failure(constraint.value)
    assert is_store_failure(full.value)
    assert (
        store_problem(tmp_path / "t.sqlite3", full.value) == "the disk is full (no room to write)"
    )


async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_no_transaction_open(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A write cancelled while its BEGIN waits on another process's lock (a shutdown, a
    timeout) leaves the connection clean: once the lock is gone the next write goes in."""
    path = tmp_path / "gateway.sqlite3"
    async with Store.open(path, clock) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")

            async def write() -> None:
                async with store.db.transaction() as conn:
                    await conn.execute("DELETE FROM store_probe")

            waiting = asyncio.create_task(write())
            await asyncio.sleep(0.3)  # its BEGIN now waits on the busy timeout
            waiting.cancel()
            await asyncio.sleep(0.1)
            await asyncio.to_thread(other.execute, "COMMIT")  # now its BEGIN gets the lock
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            other.close()
        assert not store.db.conn.in_transaction
        await store.ping_write()


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
