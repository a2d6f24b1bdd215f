"""Every query the dashboard, the summaries, the order listings and the callback
scheduler's tick run uses an index: on a store of served data, ``EXPLAIN QUERY PLAN``
of each statement they ran shows no ``SCAN`` of a big table."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import config as config_module
from gateway.app import add_callbacks
from gateway.callbacks.report import last_days
from gateway.callbacks.web import CALLBACKS
from gateway.clock import ManualClock
from gateway.store import Store
from gateway.store.fake import FakePlan, build_fake_store
from gateway.web.app import create_web_app
from gateway.web.dashboard import add_dashboard, dashboard_figures
from gateway.web.scope import Scope
from gateway.web.sms import sms_feature

TOKEN = "plans-token-81c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Tables that grow with the bureau's traffic: a query may search them, never scan them.
BIG_TABLES = frozenset(
    {
        "call_records",
        "cases",
        "case_history",
        "served_items",
        "callback_attempts",
        "ratings",
        "rectification_orders",
        "order_events",
        "sms_messages",
        "sms_events",
        "rating_unit_hours",
        "rating_kind_hours",
        "appeal_terms",
        "case_chases",
        "bookings",
    }
)
# Partial indexes whose rows stay few however long the store runs: scanning one is fine.
BOUNDED_INDEXES = frozenset({"callback_attempts_open"})  # attempts not ended: calls in flight
_SKIP = re.compile(r"^\s*(--|BEGIN|COMMIT|ROLLBACK|PRAGMA|SAVEPOINT|RELEASE)", re.I)
_NAMES = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", re.I)
_KEYWORDS = frozenset(
    {
        "where",
        "join",
        "on",
        "group",
        "order",
        "limit",
        "set",
        "values",
        "left",
        "inner",
        "union",
        "select",
        "using",
        "returning",
        "default",
        "as",
        "having",
    }
)


def _aliases(sql: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for table, alias in _NAMES.findall(sql):
        names[table] = table
        if alias and alias.lower() not in _KEYWORDS:
            names[alias] = table
    return names


def scans_of_big_tables(path: Path, statements: list[str]) -> list[str]:
    """Each statement whose plan scans a big table, with the plan's line."""
    found = []
    conn = sqlite3.connect(path)
    try:
        for sql in dict.fromkeys(statements):
            if _SKIP.match(sql):
                continue
            names = _aliases(sql)
            for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
                detail = str(row[3])
                if not detail.startswith("SCAN "):
                    continue
                name = detail.split()[1]
                if detail.split()[-1] in BOUNDED_INDEXES:
                    continue
                if names.get(name, name) in BIG_TABLES:
                    found.append(f"{detail}\n    in: {sql}")
    finally:
        conn.close()
    return found


@pytest.fixture
async def served_store(tmp_path: Path) -> Path:
    """Three months of the bureau's traffic at a fiftieth of its volume."""
    path = tmp_path / "store.sqlite3"
    await build_fake_store(path, FakePlan(days=90, seed=7, end=date(2026, 11, 30), volume=0.02))
    return path


@pytest.fixture
async def traced(
    served_store: Path, clock: ManualClock
) -> AsyncIterator[tuple[Store, TestClient[web.Request, web.Application], list[str]]]:
    """The store with both its connections traced, and the gateway's web app over it."""
    statements: list[str] = []
    config = config_module.load(
        env={
            "GATEWAY_WEB_API_TOKEN": TOKEN,
            "GATEWAY_SMS_ACCOUNT_SID": "AC" + "7e" * 16,
            "GATEWAY_SMS_AUTH_TOKEN": "plans-sms-token",
            "GATEWAY_SMS_FROM_NUMBER": "+8610690000001",
        }
    )
    async with Store.open(served_store, clock) as store:
        assert store.reads is not None
        await store.db.conn.set_trace_callback(statements.append)
        await store.reads.trace(statements.append)
        app = create_web_app(
            config,
            clock=clock,
            store=store,
            features=[sms_feature(run_outbox=False), add_callbacks, add_dashboard],
        )
        async with TestClient(TestServer(app)) as http:
            yield store, http, statements


async def test_no_page_summary_listing_or_tick_scans_a_big_table(
    traced: tuple[Store, TestClient[web.Request, web.Application], list[str]],
    served_store: Path,
    clock: ManualClock,
) -> None:
    """The dashboard, the summary API and CLI figures, order pages (for all units and for a
    person's units) and the scheduler's recurring queries search indexes only."""
    store, http, statements = traced
    for path in (
        "/dashboard/data.json",
        "/dashboard/data.json?days=365",
        "/api/callbacks/summary",
        "/api/callbacks/summary?from=2026-11-01&to=2026-11-29",
        "/api/orders",
        "/api/orders?all=1&limit=5",
    ):
        response = await http.get(path, headers=AUTH)
        assert response.status == 200, (path, await response.text())
    next_page = response.links["next"]["url"]
    assert (await http.get(next_page.path_qs, headers=AUTH)).status == 200
    # What `gateway callbacks` and `gateway orders` ask beside the API's figures.
    period = last_days(clock, 30)
    for by in ("unit", "kind", "day", "all"):
        await store.figures.satisfaction(period.since, period.until, by)
    await store.figures.attempt_outcomes(period.since, period.until)
    await store.figures.order_counts(period.since, period.until)
    listed = await store.figures.active_orders()
    assert listed, "the served store has open orders"
    await store.figures.order_events_of([o.order.id for o in listed])
    # The same figures as a sub-bureau and a station chief see them (their units only).
    for code in ("LZ-DC", "LZ-DC-01"):
        unit = await store.units.unit_by_code(code)
        assert unit is not None
        units = await store.units.subtree(unit.id)
        await dashboard_figures(store, clock, 30, Scope("bureau", "plans", units, False))
        for by in ("unit", "kind", "day", "all"):
            await store.figures.satisfaction(period.since, period.until, by, units=units)
        await store.figures.orders_page(("open", "reported", "closed"), limit=5, units=units)
    # The callback scheduler's tick.
    service = http.server.app[CALLBACKS]
    await service.escalate_overdue()
    await service.expire_sms_requests()
    await service.settle_calls()
    await service.move_stranded()
    await service.act_on_ratings()
    await store.callbacks.next_due_at()
    assert len(statements) > 20
    found = scans_of_big_tables(served_store, statements)
    assert found == [], "\n".join(found)


def test_the_check_sees_a_scan(tmp_path: Path) -> None:
    """A statement that reads a big table without an index is reported, under its alias too."""
    path = tmp_path / "plain.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ratings (id INTEGER PRIMARY KEY, score INTEGER)")
    conn.close()
    found = scans_of_big_tables(
        path,
        [
            "SELECT score, COUNT(*) FROM ratings GROUP BY score",
            "SELECT r.score FROM ratings r WHERE r.id = 3",
            "SELECT COUNT(*) FROM ratings r WHERE r.score = 1",
        ],
    )
    assert len(found) == 2 and "SCAN ratings" in found[0] and "SCAN r" in found[1]


async def test_the_order_pages_of_the_api_hold_every_order_once(
    traced: tuple[Store, TestClient[web.Request, web.Application], list[str]],
) -> None:
    """``GET /api/orders?all=1`` a page at a time, each order with its item and unit,
    the next page in the Link header; a bad limit is one clear 400."""
    store, http, _ = traced
    rows = await store.db.fetchall("SELECT ref FROM rectification_orders ORDER BY id DESC")
    refs: list[str] = []
    path: str | None = "/api/orders?all=1&limit=4"
    while path is not None:
        response = await http.get(path, headers=AUTH)
        page = await response.json()
        assert response.status == 200 and all(o["item"] and o["unit_name"] for o in page)
        refs.extend(o["ref"] for o in page)
        link = response.links.get("next")
        path = link["url"].path_qs if link else None
    assert refs == [r[0] for r in rows] and len(refs) > 4
    bad = await http.get("/api/orders?limit=5000", headers=AUTH)
    assert bad.status == 400 and (await bad.json())["error"] == "bad_limit"


async def test_the_dashboard_pages_search_indexes_only(
    traced: tuple[Store, TestClient[web.Request, web.Application], list[str]],
    served_store: Path,
    clock: ManualClock,
) -> None:
    """The charts, the board's unit page and a case's timeline, for all units and for one
    station, search indexes only."""
    store, _, statements = traced
    [case] = await store.cases.find(limit=1)
    first, last = date(2026, 11, 1), date(2026, 11, 30)
    since, until = clock.now().replace(day=1), clock.now()
    statements.clear()
    for units in (None, frozenset({1, 2})):
        await store.dashboard.satisfaction_by_day(first, last, units)
        await store.dashboard.categories_by_unit(since, until, units)
        await store.dashboard.latest_day(units, until)
        await store.dashboard.unit_cases(units or frozenset({1}))
    await store.dashboard.calls_by_hour(last)
    await store.dashboard.case_timeline(case.id, case.number, case.citizen_number, case.created_at)
    for kind in ("case", "call", "rating"):
        await store.dashboard.recording(kind, 1)
    assert len(statements) > 10
    found = scans_of_big_tables(served_store, statements)
    assert found == [], "\n".join(found)
