"""The store on both engines: one numbered series of migrations in SQLite's and in
PostgreSQL's dialect, giving the same tables, columns and triggers; the PostgreSQL
engine's connection, errors and command line."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from postgres_cluster import Cluster

from gateway import cli
from gateway import config as config_module
from gateway.clock import ManualClock
from gateway.config import ConfigError
from gateway.store import Store
from gateway.store.db import bundled_migrations
from gateway.store.postgres import (
    PostgresDatabase,
    PostgresUnavailable,
    postgres_migrations,
    translate,
    url_label,
)

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_both_dialects_have_the_same_numbered_series() -> None:
    """Every migration exists in both dialects under the same number and name."""
    sqlite = [(m.version, m.name) for m in bundled_migrations()]
    postgres = [(m.version, m.name) for m in postgres_migrations()]
    assert sqlite == postgres
    assert sqlite[0][0] == 1 and len(sqlite) >= 14


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?)",
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)",
        ),
        ("SELECT '?' || ? FROM t", "SELECT '?' || $1 FROM t"),
        (
            "SELECT 'it''s ?', \"q?\" FROM t WHERE x = ?",
            "SELECT 'it''s ?', \"q?\" FROM t WHERE x = $1",
        ),
        ("SELECT 1 -- is it ?\n, ?", "SELECT 1 -- is it ?\n, $1"),
        ("SELECT MIN(?1, ?2), ?, ?1", "SELECT MIN($1, $2), $3, $1"),
        (
            "UPDATE t INDEXED BY t_lease SET a = ? WHERE b = 'INDEXED BY x'",
            "UPDATE t SET a = $1 WHERE b = 'INDEXED BY x'",
        ),
    ],
)
def test_placeholders_are_numbered_outside_literals(sql: str, expected: str) -> None:
    """Each ``?`` outside string literals, quoted names and comments becomes ``$n``, in order."""
    assert translate(sql) == expected


def test_the_url_label_hides_the_password() -> None:
    """Messages name the database by its URL without the password."""
    label = url_label("postgresql://gw:s3cret@db.example:5433/gateway")
    assert label == "postgresql://gw@db.example:5433/gateway"


def _sqlite_schema(path: Path) -> tuple[dict[str, list[str]], set[str]]:
    with sqlite3.connect(path) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        triggers = {
            n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
    return columns, triggers


async def _postgres_schema(url: str) -> tuple[dict[str, list[str]], set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'store_schema'"
            " ORDER BY table_name, ordinal_position"
        )
        triggers = await conn.fetch(
            "SELECT DISTINCT trigger_name FROM information_schema.triggers"
            " WHERE trigger_schema = 'public'"
        )
    finally:
        await conn.close()
    columns: dict[str, list[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    return columns, {r["trigger_name"] for r in triggers}


@pytest.mark.postgres
async def test_both_engines_migrate_to_the_same_tables_and_columns(
    tmp_path: Path, postgres_url: str, clock: ManualClock
) -> None:
    """After every migration, PostgreSQL has SQLite's tables with the same columns in the
    same order, and the same triggers; migrating again applies nothing."""
    path = tmp_path / "s.sqlite3"
    async with Store.open(path, clock):
        pass
    async with Store.open(postgres_url, clock, migrate=False) as store:
        applied = await store.db.migrate()
        assert applied == [m.name for m in postgres_migrations()]
        assert await store.db.migrate() == []
        assert await store.db.schema_version() == postgres_migrations()[-1].version
    sqlite_columns, sqlite_triggers = _sqlite_schema(path)
    pg_columns, pg_triggers = await _postgres_schema(postgres_url)
    assert sorted(pg_columns) == sorted(sqlite_columns)
    for table, names in sqlite_columns.items():
        assert pg_columns[table] == names, table
    assert pg_triggers == sqlite_triggers


RATING_SQL = [
    "INSERT INTO units (id, code, name, kind, created_at) VALUES (1, 'A', '甲', 'station', 'x')",
    "INSERT INTO units (id, code, name, kind, created_at) VALUES (2, 'B', '乙', 'station', 'x')",
    "INSERT INTO served_items (id, reference, kind_code, unit_id, citizen_number, served_at,"
    " status, created_at, updated_at) VALUES (1, 'R1', 'k1', 1, '+8613900000000',"
    " '2026-11-30T01:00:00Z', 'rated', 'x', 'x')",
    "INSERT INTO ratings (item_id, round, channel, score, rated_at)"
    " VALUES (1, 1, 'phone', 2, '2026-11-30T03:10:00Z')",
    "INSERT INTO ratings (item_id, round, channel, score, rated_at)"
    " VALUES (1, 2, 'phone', 1, '2026-11-30T04:10:00Z')",
    "UPDATE served_items SET unit_id = 2, kind_code = 'k2' WHERE id = 1",
    "UPDATE ratings SET score = 3, rated_at = '2026-12-01T05:00:00Z' WHERE round = 1",
]

COUNT_TABLES = ["rating_unit_hours", "rating_kind_hours", "rating_unit_days", "rating_kind_days"]


async def _counts_after(store: Store, statements: list[str]) -> list[list[tuple[object, ...]]]:
    async with store.db.transaction() as conn:
        for sql in statements:
            await conn.execute(sql)
    return [
        [tuple(r) for r in await store.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2, 3")]
        for t in COUNT_TABLES
    ]


@pytest.mark.postgres
async def test_the_rating_counts_follow_the_same_changes_on_both_engines(
    tmp_path: Path, postgres_url: str, clock: ManualClock
) -> None:
    """Migration 0010's counting triggers (PL/pgSQL on PostgreSQL) give the same hourly and
    daily counts after an insert, a later round, a move of the item and a changed rating,
    and after the rating is deleted."""
    async with (
        Store.open(tmp_path / "s.sqlite3", clock) as sqlite,
        Store.open(postgres_url, clock) as postgres,
    ):
        for step in range(1, len(RATING_SQL) + 1):
            statements = RATING_SQL[step - 1 : step]
            assert await _counts_after(postgres, statements) == await _counts_after(
                sqlite, statements
            ), RATING_SQL[step - 1]
        moved = await _counts_after(sqlite, [])
        assert ("2026-12-01T05", 2, 3, 1) in moved[0] and ("2026-11-30T03", 1, 2, 0) in moved[0]
        deleted = ["DELETE FROM ratings WHERE item_id = 1"]
        assert await _counts_after(postgres, deleted) == await _counts_after(sqlite, deleted)


@pytest.mark.postgres
async def test_the_connection_reports_rows_changed_and_new_ids(
    postgres_url: str, clock: ManualClock
) -> None:
    """On PostgreSQL a transaction's connection gives rows by name and position, the count
    of rows changed, and a new row's id through RETURNING; an error rolls back."""
    async with Store.open(postgres_url, clock) as store:
        async with store.db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO units (code, name, kind, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                ("A", "甲", "station", "2026-11-30T02:00:00Z"),
            )
            row = await cursor.fetchone()
            assert row is not None and row["id"] == row[0] == 1
            await conn.execute(
                "INSERT INTO units (code, name, kind, created_at) VALUES (?, ?, ?, ?)",
                ("B", "乙", "station", "2026-11-30T02:00:00Z"),
            )
            cursor = await conn.execute("UPDATE units SET name = name || '?' WHERE id > ?", (0,))
            assert cursor.rowcount == 2
        with pytest.raises(asyncpg.UniqueViolationError):
            async with store.db.transaction() as conn:
                await conn.execute("DELETE FROM units WHERE code = ?", ("B",))
                await conn.execute(
                    "INSERT INTO units (code, name, kind, created_at) VALUES ('A', '', 'city', '')"
                )
        rows = await store.db.fetchall("SELECT code, name FROM units ORDER BY code")
        assert [tuple(r) for r in rows] == [("A", "甲?"), ("B", "乙?")]
        one = await store.db.fetchone("SELECT name FROM units WHERE code = ?", ("B",))
        assert one is not None and one["name"] == "乙?"
        await store.db.probe_write()


@pytest.mark.postgres
async def test_a_database_of_a_newer_schema_is_refused(
    postgres_url: str, clock: ManualClock
) -> None:
    """A database migrated by a newer gateway is refused with both versions, in one line."""
    async with Store.open(postgres_url, clock):
        pass
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("UPDATE store_schema SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(PostgresUnavailable, match="schema version 99 is newer than this gateway's"):
        async with PostgresDatabase.open(postgres_url):
            pass


@pytest.mark.postgres
def test_db_migrate_and_seed_on_postgresql_through_the_command_line(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway db migrate` and `db seed` with store.url work on PostgreSQL and name the
    database without its password."""
    args = ["--data-dir", str(tmp_path), "--set", f"store.url={postgres_url}"]
    assert cli.main([*args, "db", "migrate"]) == 0
    out = capsys.readouterr().out
    assert "applied 0001_units_officers_calls.sql" in out and "gateway-test" not in out
    assert cli.main([*args, "db", "seed"]) == 0
    seeded = capsys.readouterr().out
    assert re.search(r"loaded \d+ units and \d+ officers", seeded), seeded
    assert "gateway-test" not in seeded
    assert not (tmp_path / "gateway.sqlite3").exists()


def test_the_sqlite_file_is_refused_with_store_url(tmp_path: Path) -> None:
    """With store.url set, what only the SQLite file has (its lock file) is refused in one
    line rather than quietly used beside the PostgreSQL database; the store's location is
    the URL."""
    url = "postgresql://gw:s3cret@127.0.0.1:1/gateway"
    loaded = config_module.load(overrides=[f"gateway.data_dir={tmp_path}", f"store.url={url}"])
    with pytest.raises(ConfigError, match="works on the SQLite file only") as refused:
        _ = loaded.store_path
    assert "s3cret" not in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert loaded.store_location == url and not loaded.on_sqlite


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("password", "the password was refused"),
        ("database", "does not exist"),
        ("port", "connection refused"),
        ("scheme", "must be a postgresql://"),
    ],
)
def test_a_wrong_database_url_is_one_line_and_a_non_zero_exit(
    tmp_path: Path,
    postgres_cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    change: str,
    problem: str,
) -> None:
    """A wrong password, database, port or scheme in store.url stops `gateway db migrate`
    with one line naming the problem, never the password."""
    url = {
        "password": postgres_cluster.url(password="not-the-password"),
        "database": postgres_cluster.url("no_such_database"),
        "port": postgres_cluster.url().replace(f":{postgres_cluster.port}/", ":1/"),
        "scheme": postgres_cluster.url().replace("postgresql://", "mysql://"),
    }[change]
    code = cli.main(["--data-dir", str(tmp_path), "--set", f"store.url={url}", "db", "migrate"])
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert problem in err
    assert "not-the-password" not in err and "gateway-test" not in err


SQLITE_FUNCTIONS = [
    (
        "SELECT strftime('%Y-%m-%dT%H:%M:%S', ?, '-2 seconds')",
        ("2026-11-30T02:00:01.250000+00:00",),
    ),
    ("SELECT strftime('%Y%m%d %H%%', ?)", ("2026-12-31T23:59:59.000000+00:00",)),
    (
        "SELECT (julianday(?) - julianday(?)) * 86400.0",
        (
            "2026-11-30T02:00:07.500000+00:00",
            "2026-11-30T02:00:00.000000+00:00",
        ),
    ),
    ("SELECT julianday(?)", ("1970-01-01T00:00:00+00:00",)),
    ("SELECT max(1, ?), min(5, ?), max(?, 2)", (3, 4, None)),
    ("SELECT min(?, ?)", ("b", "a")),
    ("SELECT COUNT(*) FROM units WHERE likelihood(code = ?, 0.001)", ("none",)),
    ("SELECT +?", ("text",)),
    (
        "SELECT SUM(x = 1), SUM(x > 5), SUM(x IS NULL)"
        " FROM (SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT NULL) AS t",
        (),
    ),
    ("SELECT SUM(x = 1) FROM (SELECT 1 AS x) AS t WHERE x > 1", ()),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("sql", "params"), SQLITE_FUNCTIONS)
async def test_sqlite_functions_the_queries_use_give_the_same_on_postgresql(
    tmp_path: Path, postgres_url: str, clock: ManualClock, sql: str, params: tuple[object, ...]
) -> None:
    """strftime, julianday, two-value min/max (NULL if either is), likelihood, unary + on
    text and sums of conditions give on PostgreSQL what SQLite gives."""
    async with (
        Store.open(tmp_path / "s.sqlite3", clock) as sqlite,
        Store.open(postgres_url, clock) as postgres,
    ):
        expected = await sqlite.db.fetchone(sql, params)
        got = await postgres.db.fetchone(sql, params)
    assert expected is not None and got is not None
    # julianday is a float of days: SQLite keeps milliseconds, so seconds agree to 1 ms.
    assert [pytest.approx(v, abs=1e-3) if isinstance(v, float) else v for v in got] == list(
        expected
    )


@pytest.mark.postgres
async def test_strftime_refuses_a_code_it_does_not_know(
    postgres_url: str, clock: ManualClock
) -> None:
    """A strftime code outside the supported few is an error on PostgreSQL, never a wrong text."""
    async with Store.open(postgres_url, clock) as store:
        with pytest.raises(asyncpg.RaiseError, match="not supported"):
            await store.db.fetchone("SELECT strftime('%j', '2026-11-30T02:00:00+00:00')")


@pytest.mark.postgres
async def test_two_gateways_migrating_at_once_take_turns(postgres_url: str) -> None:
    """Two gateways migrating one new database at once take turns on the write lock: every
    migration is applied once, none twice, and no one fails."""
    async with (
        PostgresDatabase.open(postgres_url, migrate=False) as first,
        PostgresDatabase.open(postgres_url, migrate=False) as second,
    ):
        results = await asyncio.gather(first.migrate(), second.migrate())
        names = [m.name for m in postgres_migrations()]
        # Each migration applied exactly once, by one or the other (they take turns per
        # migration on the write lock).
        assert sorted(results[0] + results[1]) == sorted(names)
        assert await first.schema_version() == postgres_migrations()[-1].version
