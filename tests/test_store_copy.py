"""`gateway db copy --from FILE`: a SQLite store with real content moved into PostgreSQL,
verified by counts, giving the same answers there; bad input refused in one line."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from postgres_cluster import Cluster

from gateway import cli
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.fake import FakePlan, build_fake_store
from gateway.store.lock import StoreLock
from gateway.store.seed import demo_city, load_seed

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("restore_logging")]

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
QUIET = ["--set", "gateway.log_level=WARNING"]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Path:
    """A SQLite store with three weeks of the bureau's traffic (calls, cases, items,
    callbacks, ratings and their counts, orders, texts), and a case merged into a newer
    one (a row naming a later row of its own table)."""
    path = tmp_path / "city.sqlite3"
    plan = FakePlan(days=21, seed=7, end=date(2026, 11, 30), volume=0.03)
    asyncio.run(build_fake_store(path, plan))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE cases SET merged_into = (SELECT MAX(id) FROM cases)"
            " WHERE id = (SELECT MIN(id) FROM cases)"
        )
    return path


def _copy(
    tmp_path: Path, url: str, source: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = cli.main(
        [
            *QUIET,
            "--data-dir",
            str(tmp_path),
            "--set",
            f"store.url={url}",
            "db",
            "copy",
            "--from",
            str(source),
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def _rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=repr)


async def test_a_copied_store_gives_the_same_rows_and_answers(
    tmp_path: Path,
    postgres_url: str,
    sqlite_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every table arrives whole (same rows, same values and types), the counts are printed
    and agree, the reports' figures read the same on both engines, and a new row after the
    copy takes the next id (the sequences were set past the copied ids)."""
    code, out, err = await asyncio.to_thread(_copy, tmp_path, postgres_url, sqlite_store, capsys)
    assert code == 0, err
    assert "DIFFERS" not in out and "gateway-test" not in out + err
    assert re.search(r"ratings\s+\d+\s+\d+", out), out
    clock = ManualClock(datetime(2026, 11, 30, 2, tzinfo=UTC))
    async with (
        Store.open(sqlite_store, clock) as sqlite,
        Store.open(postgres_url, clock) as postgres,
    ):
        tables = [
            r[0]
            for r in await sqlite.db.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        assert {"call_records", "cases", "ratings", "rating_unit_days", "sms_messages"} <= set(
            tables
        )
        copied = 0
        for table in tables:
            theirs = _rows(await sqlite.db.fetchall(f"SELECT * FROM {table}"))
            ours = _rows(await postgres.db.fetchall(f"SELECT * FROM {table}"))
            assert ours == theirs, table
            copied += len(ours)
        assert copied > 1000
        for figures in (
            lambda s: s.figures.item_counts(SINCE, UNTIL),
            lambda s: s.figures.attempt_outcomes(SINCE, UNTIL),
            lambda s: s.figures.satisfaction(SINCE, UNTIL, "unit"),
            lambda s: s.figures.satisfaction(SINCE, UNTIL, "day"),
            lambda s: s.figures.order_counts(SINCE, UNTIL),
            lambda s: s.figures.active_orders(),
        ):
            assert await figures(postgres) == await figures(sqlite)
        newest = await postgres.db.fetchone("SELECT MAX(id) FROM units")
        unit = await postgres.units.add_unit("LZ-NEW", "新派出所", "station", "LZ-DC")
        assert newest is not None and unit.id == newest[0] + 1


async def test_a_database_holding_rows_is_refused(
    tmp_path: Path,
    postgres_url: str,
    sqlite_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second copy into the same database is refused in one line naming the tables that
    hold rows, and changes nothing."""
    assert (await asyncio.to_thread(_copy, tmp_path, postgres_url, sqlite_store, capsys))[0] == 0
    conn = await asyncpg.connect(postgres_url)
    try:
        before = await conn.fetchval("SELECT COUNT(*) FROM call_records")
        code, _, err = await asyncio.to_thread(_copy, tmp_path, postgres_url, sqlite_store, capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "already holds rows (" in err and "call_records" in err
        assert await conn.fetchval("SELECT COUNT(*) FROM call_records") == before
    finally:
        await conn.close()


async def test_a_value_that_does_not_fit_is_named_and_nothing_is_copied(
    tmp_path: Path,
    postgres_url: str,
    sqlite_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Text where PostgreSQL wants an integer (SQLite keeps it) stops the copy with one line
    naming the table, column and row; the database stays empty, the copy being one
    transaction."""
    with sqlite3.connect(sqlite_store) as conn:
        conn.execute("UPDATE sms_messages SET segments = 'two' WHERE id = 2")
    code, _, err = await asyncio.to_thread(_copy, tmp_path, postgres_url, sqlite_store, capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "gateway: sms_messages.segments (row 2): 'two' does not fit the PostgreSQL column"
    ]
    conn2 = await asyncpg.connect(postgres_url)
    try:
        assert await conn2.fetchval("SELECT COUNT(*) FROM units") == 0
    finally:
        await conn2.close()


@pytest.mark.parametrize("problem", ["missing", "not_sqlite", "not_a_store", "no_url", "password"])
def test_bad_input_is_one_line_and_a_non_zero_exit(
    tmp_path: Path,
    postgres_cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    """A missing file, a file that is not SQLite, a SQLite file that is not a gateway
    store, no store.url, or a wrong password: one line, a non-zero exit, no password shown,
    and the file left as it was."""
    source = tmp_path / "city.sqlite3"
    if problem == "not_sqlite":
        source.write_text("name,number\n")
    elif problem in ("not_a_store", "password"):
        with sqlite3.connect(source) as conn:
            conn.execute("CREATE TABLE contacts (name TEXT)")
            if problem == "password":
                conn.execute("CREATE TABLE units (id INTEGER)")
                conn.execute("PRAGMA user_version = 15")
    before = source.read_bytes() if source.exists() else None
    url = postgres_cluster.url(password="not-the-password" if problem == "password" else "x")
    args = [*QUIET, "--data-dir", str(tmp_path)]
    if problem != "no_url":
        args += ["--set", f"store.url={url}"]
    code = cli.main([*args, "db", "copy", "--from", str(source)])
    err = capsys.readouterr().err
    assert code != 0
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert "not-the-password" not in err and "gateway-test" not in err
    expected = {
        "missing": "no SQLite store at",
        "not_sqlite": "is not a SQLite database",
        "not_a_store": "is not a gateway store",
        "no_url": "set store.url",
        "password": "the password was refused",
    }[problem]
    assert expected in err
    assert (source.read_bytes() if source.exists() else None) == before


def test_db_fake_fills_a_new_postgresql_database(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway db fake` with store.url fills the empty database with the same synthetic
    traffic as on SQLite (no SQLite file left behind), and refuses a database that holds
    rows before doing any work."""
    args = [*QUIET, "--data-dir", str(tmp_path), "--set", f"store.url={postgres_url}"]
    fake = ["db", "fake", "--scale", "3d", "--volume", "0.02", "--seed", "4"]
    assert cli.main([*args, *fake]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "3 days of synthetic traffic" in out and "gateway-test" not in out
    found = re.search(r"calls=(\d+)", out)
    assert found is not None, out
    calls = int(found.group(1))
    assert cli.main([*args, "calls", "--json", "--limit", "100000"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == calls > 0
    assert not [p.name for p in tmp_path.rglob("*") if ".sqlite3" in p.name]
    assert cli.main([*args, *fake]) == 1
    err = capsys.readouterr().err
    assert "already holds rows" in err and len(err.strip().splitlines()) == 1


async def test_sqlite_values_take_the_column_types_and_a_served_file_is_refused(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number SQLite kept in a text column arrives as its text, a blob as the same bytes,
    a text timestamp as it was; while a gateway serves the file the copy is
    refused in one line, as it could change under the copy."""
    path = tmp_path / "city.sqlite3"
    clock = ManualClock(datetime(2026, 11, 30, 2, tzinfo=UTC))
    async with Store.open(path, clock) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE units SET abbreviation = 12 WHERE code = 'LZ-DC'")
        conn.execute(
            "INSERT INTO store_probe (payload, at) VALUES (x'00ff10', '2026-11-30 02:00:00')"
        )
    with StoreLock(path):
        code, _, err = await asyncio.to_thread(_copy, tmp_path, postgres_url, path, capsys)
    assert code == 1 and "in use by another gateway" in err and len(err.splitlines()) == 1
    code, _, err = await asyncio.to_thread(_copy, tmp_path, postgres_url, path, capsys)
    assert code == 0, err
    conn2 = await asyncpg.connect(postgres_url)
    try:
        assert await conn2.fetchval("SELECT abbreviation FROM units WHERE code = 'LZ-DC'") == "12"
        probe = await conn2.fetchrow("SELECT payload, at FROM store_probe")
        assert probe is not None and probe["payload"] == b"\x00\xff\x10"
        assert probe["at"] == "2026-11-30 02:00:00"
        assert await conn2.fetchval("SELECT COUNT(*) FROM units") == 27
    finally:
        await conn2.close()
