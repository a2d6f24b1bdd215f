"""Figures in SQL over a period: satisfaction from the hourly counts the triggers keep,
the queue and a period's outcomes, order pages without gaps, the shared brief cache,
reads beside an open write, and the planner's statistics at close."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.callbacks.report import BadPeriod, last_days, parse_period, satisfaction_rows
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.db import StoreError
from gateway.store.fake import FakePlan, build_fake_store, parse_scale
from gateway.store.figures import ScoreGroup
from gateway.store.postgres import PostgresUnavailable
from gateway.store.seed import demo_city, load_seed
from gateway.web import dashboard
from gateway.web.app import create_web_app
from gateway.web.dashboard import add_dashboard

# The fixture clock: 2026-11-30 02:00 UTC, 10:00 in Shanghai.
PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)


async def _rated(
    store: Store,
    clock: ManualClock,
    reference: str,
    unit: str,
    kind: str,
    score: int,
    at: datetime,
    round_: int = 1,
) -> int:
    found = await store.units.unit_by_code(unit)
    assert found is not None
    item = await store.callbacks.add_item(
        reference=reference,
        kind_code=kind,
        unit_id=found.id,
        officer_code=None,
        citizen_number="+8613912345678",
        citizen_name=None,
        served_at=at - timedelta(days=1),
        due_at=at,
    )
    clock.advance(at - clock.now())
    _rating, created = await store.callbacks.add_rating(
        item_id=item.id, round_=round_, attempt_id=None, channel="phone", score=score
    )
    assert created
    await store.callbacks.move_item(item.id, "rated")
    return item.id


@pytest.fixture
async def rated(store: Store, clock: ManualClock) -> Store:
    """Two stations' ratings in November, one in October, one of a second round."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    nov = datetime(2026, 11, 20, 3, tzinfo=UTC)
    await _rated(store, clock, "R1", "LZ-DC-01", "id_card", 1, nov)
    await _rated(store, clock, "R2", "LZ-DC-01", "id_card", 3, nov + timedelta(hours=1))
    await _rated(store, clock, "R3", "LZ-DC-01", "household", 2, nov + timedelta(days=1))
    # 23:30 local on the 21st is 15:30 UTC: still the 21st in Shanghai.
    await _rated(
        store, clock, "R4", "LZ-XC-01", "id_card", 1, datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
    )
    await _rated(
        store, clock, "R5", "LZ-XC-01", "id_card", 3, datetime(2026, 10, 10, 3, tzinfo=UTC)
    )
    await _rated(store, clock, "R6", "LZ-XC-01", "id_card", 3, nov, round_=2)
    clock.advance(datetime(2026, 11, 30, 2, tzinfo=UTC) - clock.now())
    return store


def _counts(groups: list[ScoreGroup]) -> dict[str, tuple[int, int, int]]:
    return {g.key: (g.satisfied, g.basically, g.dissatisfied) for g in groups}


async def test_satisfaction_groups_first_round_ratings_of_the_period(rated: Store) -> None:
    """Per unit, kind, local day and overall: only first-round ratings given in the period."""
    figures = rated.figures
    by_unit = await figures.satisfaction(PERIOD_START, PERIOD_END, "unit")
    assert _counts(by_unit) == {"LZ-DC-01": (1, 1, 1), "LZ-XC-01": (1, 0, 0)}
    assert by_unit[0].label == "东关派出所"
    by_kind = await figures.satisfaction(PERIOD_START, PERIOD_END, "kind", {"id_card": "身份证"})
    assert _counts(by_kind) == {"household": (0, 1, 0), "id_card": (2, 0, 1)}
    assert by_kind[1].label == "身份证"
    by_day = await figures.satisfaction(PERIOD_START, PERIOD_END, "day")
    assert _counts(by_day) == {"2026-11-20": (1, 0, 1), "2026-11-21": (1, 1, 0)}
    overall = satisfaction_rows(await figures.satisfaction(PERIOD_START, PERIOD_END, "all"))
    assert overall[0].figures.rated == 4 and overall[0].figures.rate == 0.75
    october = await figures.satisfaction(PERIOD_START - timedelta(days=31), PERIOD_START, "all")
    assert _counts(october) == {"all": (0, 0, 1)}


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        # One local day (21 November in Shanghai): its hours span two UTC days.
        ((2026, 11, 20, 16), (2026, 11, 21, 16), {"all": (1, 1, 0)}),
        # Local days 20 to 22 November: edge hours and one whole UTC day.
        ((2026, 11, 19, 16), (2026, 11, 22, 16), {"all": (2, 1, 1)}),
        # One hour only.
        ((2026, 11, 21, 15), (2026, 11, 21, 16), {"all": (1, 0, 0)}),
        ((2026, 11, 22, 0), (2026, 11, 23, 0), {}),
    ],
)
async def test_satisfaction_sums_edge_hours_and_whole_days(
    rated: Store, since: tuple[int, ...], until: tuple[int, ...], expected: dict[str, object]
) -> None:
    """A period that does not start or end at a UTC midnight counts each rating once."""
    start, end = datetime(*since, tzinfo=UTC), datetime(*until, tzinfo=UTC)
    for by in ("all", "unit", "kind"):
        groups = await rated.figures.satisfaction(start, end, by)
        totals = [sum(g) for g in _counts(groups).values()]
        assert sum(totals) == sum(sum(v) for v in expected.values())  # type: ignore[arg-type]
    assert _counts(await rated.figures.satisfaction(start, end, "all")) == expected


async def test_satisfaction_refuses_a_backwards_period_and_an_unknown_grouping(
    rated: Store,
) -> None:
    """One clear error, no result, for a period that ends first or a grouping we lack."""
    with pytest.raises(StoreError, match="before it starts"):
        await rated.figures.satisfaction(PERIOD_END, PERIOD_START, "unit")
    with pytest.raises(StoreError, match="cannot group ratings by 'officer'"):
        await rated.figures.satisfaction(PERIOD_START, PERIOD_END, "officer")


async def test_hourly_counts_follow_changed_and_deleted_ratings(rated: Store) -> None:
    """A rating's score changed, its item moved to another unit, or the rating deleted:
    the counts the figures read follow."""
    async with rated.db.transaction() as conn:
        await conn.execute(
            "UPDATE ratings SET score = 1 WHERE item_id ="
            " (SELECT id FROM served_items WHERE reference = 'R2')"
        )
        await conn.execute(
            "UPDATE served_items SET unit_id = (SELECT id FROM units WHERE code = 'LZ-XC-01')"
            " WHERE reference = 'R3'"
        )
        await conn.execute(
            "DELETE FROM ratings"
            " WHERE item_id = (SELECT id FROM served_items WHERE reference = 'R4')"
        )
    by_unit = await rated.figures.satisfaction(PERIOD_START, PERIOD_END, "unit")
    assert _counts(by_unit) == {"LZ-DC-01": (2, 0, 0), "LZ-XC-01": (0, 1, 0)}


async def test_item_counts_hold_the_whole_queue_and_the_period_outcomes(
    store: Store, clock: ManualClock
) -> None:
    """Pending items count whatever their age; rated ones only when served in the period."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    old = datetime(2026, 9, 1, 3, tzinfo=UTC)
    await _rated(store, clock, "OLD-RATED", "LZ-DC-01", "id_card", 1, old)
    unit = await store.units.unit_by_code("LZ-DC-01")
    assert unit is not None
    await store.callbacks.add_item(
        reference="OLD-PENDING",
        kind_code="id_card",
        unit_id=unit.id,
        officer_code=None,
        citizen_number="+8613912345679",
        citizen_name=None,
        served_at=old,
        due_at=old,
    )
    await _rated(
        store, clock, "NEW-RATED", "LZ-DC-01", "id_card", 1, PERIOD_START + timedelta(days=3)
    )
    counts = await store.figures.item_counts(PERIOD_START, PERIOD_END)
    assert counts == {"pending": 1, "rated": 1}


async def test_order_pages_list_every_order_once_with_its_item(tmp_path: Path) -> None:
    """Paging by the last id shown walks all orders, newest first, none twice or missed."""
    path = tmp_path / "store.sqlite3"
    await build_fake_store(path, FakePlan(days=20, seed=3, end=date(2026, 11, 30), volume=0.05))
    async with Store.open(path, ManualClock(datetime(2026, 11, 30, 2, tzinfo=UTC))) as store:
        all_ids = [
            int(r[0])
            for r in await store.db.fetchall("SELECT id FROM rectification_orders ORDER BY id DESC")
        ]
        seen: list[int] = []
        before = None
        while True:
            page = await store.figures.orders_page(
                ("open", "reported", "closed"), limit=7, before=before
            )
            seen.extend(o.order.id for o in page)
            if len(page) < 7:
                break
            before = page[-1].order.id
        assert seen == all_ids and len(all_ids) > 7
        first = page[0] if page else None
        assert first is None or first.item_reference.startswith("FAKE-")
        with pytest.raises(StoreError, match="1 to 1000"):
            await store.figures.orders_page(("open",), limit=0)


async def test_concurrent_viewers_share_one_computation(store: Store) -> None:
    """Viewers asking at once await one computation; a failed one is not kept."""
    calls = 0
    gate = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    waiting = [asyncio.create_task(store.figures.cached("k", compute)) for _ in range(5)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5 and calls == 1
    assert await store.figures.cached("k", compute) == 1

    async def broken() -> int:
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        await store.figures.cached("b", broken)
    assert await store.figures.cached("b", compute) == 2
    store.figures.clear_cache()
    assert await store.figures.cached("k", compute) == 3


class Undo(Exception):
    """Rolls the test's write transaction back."""


async def test_reports_read_beside_an_open_write(rated: Store) -> None:
    """A write transaction held open does not hold up the figures; they show what is committed."""
    with pytest.raises(Undo):
        async with rated.db.transaction() as conn:
            await conn.execute("DELETE FROM ratings")
            figures = await asyncio.wait_for(
                rated.figures.satisfaction(PERIOD_START, PERIOD_END, "all"), timeout=2
            )
            assert _counts(figures) == {"all": (2, 1, 1)}
            raise Undo


async def test_the_dashboard_covers_a_window_of_days(rated: Store, clock: ManualClock) -> None:
    """Per-unit figures cover the last 30 days by default, ``?days=N`` otherwise; a bad
    window is refused in one line."""
    config = config_module.load(env={"GATEWAY_WEB_API_TOKEN": "window-token-for-tests"})
    app = create_web_app(config, clock=clock, store=rated, features=[add_dashboard])
    auth = {"Authorization": "Bearer window-token-for-tests"}
    async with TestClient(TestServer(app)) as http:
        month = await (await http.get("/dashboard/data.json", headers=auth)).json()
        year = await (await http.get("/dashboard/data.json?days=365", headers=auth)).json()
        bad = await http.get("/dashboard/data.json?days=0", headers=auth)
        refusal = await bad.json()
    assert month["period"]["days"] == 30 and month["callbacks"]["satisfaction"]["rated"] == 4
    assert year["callbacks"]["satisfaction"]["rated"] == 5
    assert {u["key"]: u["rated"] for u in year["callbacks"]["units"]}["LZ-XC-01"] == 2
    assert bad.status == 400 and refusal["error"] == "bad_days"
    assert "days must be" in refusal["message"]


async def test_the_read_connection_cannot_write(rated: Store) -> None:
    """Reports cannot change the store, even by mistake."""
    assert rated.reads is not None
    refused = (aiosqlite.OperationalError, PostgresUnavailable)
    with pytest.raises(refused, match=r"readonly|read-only|query_only"):
        await rated.reads.fetchall("DELETE FROM ratings")


async def test_closing_the_store_gathers_the_planner_statistics(
    tmp_path: Path, clock: ManualClock
) -> None:
    """PRAGMA optimize at close: a store never analysed has statistics afterwards."""
    path = tmp_path / "gateway.sqlite3"
    async with Store.open(path, clock) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT tbl FROM sqlite_stat1").fetchall()
    finally:
        conn.close()
    assert ("units",) in rows


def test_periods_are_local_days(clock: ManualClock) -> None:
    """The last N local days end at the next local midnight; bad input is one clear line."""
    period = last_days(clock, 7)
    assert (period.first, period.last) == (date(2026, 11, 24), date(2026, 11, 30))
    assert period.until == datetime(2026, 11, 30, 16, tzinfo=UTC)
    explicit = parse_period(clock, None, "2026-11-01", "2026-11-02")
    assert explicit.since == datetime(2026, 10, 31, 16, tzinfo=UTC)
    for days, first, last, message in (
        ("0", None, None, "days must be 1 to"),
        ("x", None, None, "whole number"),
        ("3", "2026-11-01", None, "either days or from/to"),
        (None, "2026-11-05", "2026-11-01", "before it starts"),
        (None, "2026-13-01", None, "YYYY-MM-DD"),
    ):
        with pytest.raises(BadPeriod, match=message):
            parse_period(clock, days, first, last)


def test_scales_read_as_days() -> None:
    """``1w``, ``30d``, ``2y`` are days; anything else is refused with an example."""
    assert [parse_scale(s) for s in ("1w", "30d", "6m", "2y", "3.5y")] == [7, 30, 180, 730, 1278]
    for bad in ("", "2", "y", "0d", "2x"):
        with pytest.raises(ValueError, match="scale"):
            parse_scale(bad)


def test_db_fake_fills_a_new_store_and_refuses_a_used_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway db fake` builds a store of served traffic; run again, it changes nothing
    and says why in one line."""
    args = ["--data-dir", str(tmp_path / "data"), "db", "fake", "--scale", "3d", "--volume", "0.02"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 days of synthetic traffic" in out and "ratings=" in out
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds calls or served items" in err[0]
    assert main([*args[:3], "fake", "--scale", "2q"]) == 2
    assert "scale '2q'" in capsys.readouterr().err


async def test_the_dashboard_lists_the_most_urgent_orders_and_counts_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page lists a few open orders, highest level first, and counts every one by level."""
    monkeypatch.setattr(dashboard, "ORDERS_SHOWN", 3)
    path = tmp_path / "store.sqlite3"
    await build_fake_store(path, FakePlan(days=20, seed=5, end=date(2026, 11, 30), volume=0.05))
    clock = ManualClock(datetime(2026, 11, 30, 2, tzinfo=UTC))
    async with Store.open(path, clock) as store:
        data = await dashboard.dashboard_figures(store, clock)
        open_orders = await store.db.fetchall(
            "SELECT level FROM rectification_orders WHERE status != 'closed'"
        )
    listed, orders = data["orders"]["open"], data["orders"]
    assert len(open_orders) > 3 and len(listed) == 3
    assert orders["total"] == len(open_orders) == sum(orders["by_level"].values())
    assert [o["level"] for o in listed] == sorted((o["level"] for o in listed), reverse=True)
    assert listed[0]["level"] == max(r[0] for r in open_orders)


async def test_fake_traffic_is_reproducible_and_never_in_the_future(tmp_path: Path) -> None:
    """The same plan gives the same rows, and nothing happens at or after its end."""
    plan = FakePlan(days=12, seed=11, end=date(2026, 11, 30), volume=0.05)
    end = "2026-11-30T00:00:00"
    dumps = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.sqlite3"
        counts = await build_fake_store(path, plan)
        assert counts.ratings > 0 and counts.orders > 0
        conn = sqlite3.connect(path)
        try:
            latest = conn.execute(
                "SELECT MAX(x) FROM (SELECT MAX(rated_at) AS x FROM ratings"
                " UNION ALL SELECT MAX(started_at) FROM callback_attempts"
                " UNION ALL SELECT MAX(at) FROM order_events"
                " UNION ALL SELECT MAX(created_at) FROM sms_messages"
                " UNION ALL SELECT MAX(started_at) FROM call_records"
                " UNION ALL SELECT MAX(served_at) FROM served_items)"
            ).fetchone()[0]
            dumps.append(
                conn.execute(
                    "SELECT item_id, round, score, rated_at FROM ratings ORDER BY id"
                ).fetchall()
            )
        finally:
            conn.close()
        assert latest < end
    assert dumps[0] == dumps[1]


@pytest.fixture
def store(engine_store: Store) -> Store:
    """This module's store tests run on SQLite and on PostgreSQL."""
    return engine_store
