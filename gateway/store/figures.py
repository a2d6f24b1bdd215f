"""Figures for the dashboard, the summaries and the listings, aggregated in SQL.

Every figure covers a period ``[since, until)`` and is one ``GROUP BY`` over an
index or over the hourly rating counts that triggers keep (migration 0010), so its
cost follows the period, not the store's history:
the store's two years cost what the last month costs. The queries run on the
store's read-only connection (:mod:`gateway.store.reader`), beside the writer.

Figures many viewers ask for at once (each open dashboard tab every 10 seconds)
are shared through :meth:`FigureRepository.cached`: one computation per key and
:data:`CACHE_SECONDS`, concurrent askers awaiting the same one.
"""

from __future__ import annotations

import asyncio
import time as clock_time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol, TypeVar

from gateway.clock import Clock, parse_utc, utc_iso
from gateway.store.callbacks import _ORDER_COLUMNS, Order, OrderEvent, _order
from gateway.store.db import StoreError, in_units, param_marks

T = TypeVar("T")

CACHE_SECONDS = 5.0
# Items and texts still in these states count whatever the period: they are the queue.
ACTIVE_ITEM_STATUSES = ("pending", "calling", "sms")
DONE_ITEM_STATUSES = ("rated", "unreachable", "skipped")
WAITING_TEXT_STATUSES = ("queued", "sending")
DONE_TEXT_STATUSES = ("sent", "delivered", "undelivered", "failed")
GROUPINGS = ("unit", "kind", "day", "all")
MAX_PAGE = 1000
# What ``likelihood(<status test>, FEW)`` tells the planner: few rows are in the
# states the queue holds. Its statistics (PRAGMA optimize) know only how many
# statuses there are, so they take each for a sixth of the table and, to save a
# sort, would rather scan the whole of it.
FEW = 0.001
_ORDER_ALIASED = ", ".join(f"o.{c.strip()}" for c in _ORDER_COLUMNS.split(","))
_ORDER_WIDTH = len(_ORDER_COLUMNS.split(","))


def _listed(r: Any) -> ListedOrder:
    """An order row followed by its item's reference and citizen and its unit's code and name
    (read past the order's own columns, however many the orders table has)."""
    reference, citizen, unit_code, unit_name = r[_ORDER_WIDTH : _ORDER_WIDTH + 4]
    return ListedOrder(_order(r), reference, citizen, unit_code, unit_name)


class Reads(Protocol):
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any: ...


@dataclass(frozen=True)
class ScoreGroup:
    """First-callback scores of one group: a unit, a kind, a local day or all."""

    key: str
    label: str
    satisfied: int
    basically: int
    dissatisfied: int


@dataclass(frozen=True)
class ListedOrder:
    """An order with what a listing shows beside it, read in the same query."""

    order: Order
    item_reference: str
    citizen_number: str
    unit_code: str
    unit_name: str


def _period(since: datetime, until: datetime) -> tuple[str, str]:
    if until <= since:
        raise StoreError(f"the period ends ({utc_iso(until)}) before it starts ({utc_iso(since)})")
    return utc_iso(since), utc_iso(until)


def _hour(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%dT%H}"


def _spans(since: datetime, until: datetime) -> tuple[str, str, str, str, str, str]:
    """The period as hours before its first whole UTC day, whole UTC days, and hours
    after them (an empty span is ``(x, x)``), for :func:`_counted`."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_day = start.date() if start.hour == 0 else start.date() + timedelta(days=1)
    if first_day >= end.date():
        return _hour(start), _hour(end), "", "", "", ""
    first = datetime.combine(first_day, time(), UTC)
    after = datetime.combine(end.date(), time(), UTC)
    return (
        _hour(start),
        _hour(first),
        first_day.isoformat(),
        end.date().isoformat(),
        _hour(after),
        _hour(end),
    )


def _counted(column: str, table: str) -> str:
    """The hourly and daily counts of ``table`` (``rating_unit``, ``rating_kind``) that
    make up a period given as :func:`_spans`."""
    return (
        f"SELECT {column}, score, n FROM {table}_hours WHERE hour >= ? AND hour < ?"
        f" UNION ALL SELECT {column}, score, n FROM {table}_days WHERE day >= ? AND day < ?"
        f" UNION ALL SELECT {column}, score, n FROM {table}_hours WHERE hour >= ? AND hour < ?"
    )


def _scores(
    groups: dict[tuple[str, str], list[int]], key: tuple[str, str], score: int, n: int
) -> None:
    counts = groups.setdefault(key, [0, 0, 0])
    counts[score - 1] += n


class FigureRepository:
    def __init__(self, reads: Reads, clock: Clock) -> None:
        self._reads = reads
        self._clock = clock
        self._cache: dict[Any, tuple[float, asyncio.Future[Any]]] = {}

    # -- a short shared cache ---------------------------------------------------

    async def cached(self, key: Any, compute: Callable[[], Awaitable[T]]) -> T:
        """``compute()``'s result, shared by everyone asking for ``key`` within
        :data:`CACHE_SECONDS`; a computation that fails is not kept."""
        now = clock_time.monotonic()
        entry = self._cache.get(key)
        if entry is not None and now - entry[0] < CACHE_SECONDS:
            future = entry[1]
            if not future.done() or future.exception() is None:
                return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._cache = {k: v for k, v in self._cache.items() if now - v[0] < CACHE_SECONDS}
        self._cache[key] = (now, future)
        try:
            value = await compute()
        except BaseException as exc:
            self._cache.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        future.set_result(value)
        return value

    def clear_cache(self) -> None:
        """Forget every cached figure (the benchmark measures computations)."""
        self._cache.clear()

    # -- satisfaction -----------------------------------------------------------

    async def satisfaction(
        self,
        since: datetime,
        until: datetime,
        by: str,
        kind_names: dict[str, str] | None = None,
        *,
        units: Collection[int] | None = None,
    ) -> list[ScoreGroup]:
        """First-callback ratings given in ``[since, until)``, grouped ``by`` unit,
        kind, local day or all; groups sorted by key. Read from the counts per UTC
        day, and per UTC hour at the period's edges (migration 0010): the ends are
        taken to the whole hour, exact for the local days of any zone whose offset
        is whole hours. ``units``: only the ratings of these units (None: all); by
        kind, those are read from the ratings themselves (the kind counts hold no unit)."""
        _period(since, until)
        spans = _spans(since, until)
        only, unit_ids = in_units("c.unit_id", units)
        groups: dict[tuple[str, str], list[int]] = {}
        if by == "unit":
            rows = await self._reads.fetchall(
                "SELECT u.code, u.name, c.score, SUM(c.n)"
                f" FROM ({_counted('unit_id', 'rating_unit')}) c JOIN units u ON u.id = c.unit_id"
                f" WHERE 1 = 1{only} GROUP BY c.unit_id, u.code, u.name, c.score"
                " HAVING SUM(c.n) > 0",
                (*spans, *unit_ids),
            )
            for code, name, score, n in rows:
                _scores(groups, (code, name), score, n)
        elif by == "kind" and units is not None:
            only, unit_ids = in_units("i.unit_id", units)
            rows = await self._reads.fetchall(
                "SELECT i.kind_code, r.score, COUNT(*) FROM ratings r"
                " JOIN served_items i ON i.id = r.item_id"
                f" WHERE r.round = 1 AND r.rated_at >= ? AND r.rated_at < ?{only}"
                " GROUP BY i.kind_code, r.score",
                (*_period(since, until), *unit_ids),
            )
            for code, score, n in rows:
                _scores(groups, (code, (kind_names or {}).get(code, code)), score, n)
        elif by == "kind":
            rows = await self._reads.fetchall(
                "SELECT c.kind_code, c.score, SUM(c.n)"
                f" FROM ({_counted('kind_code', 'rating_kind')}) c"
                " GROUP BY c.kind_code, c.score HAVING SUM(c.n) > 0",
                spans,
            )
            for code, score, n in rows:
                _scores(groups, (code, (kind_names or {}).get(code, code)), score, n)
        elif by == "day":
            only, unit_ids = in_units("h.unit_id", units)
            rows = await self._reads.fetchall(
                "SELECT h.hour, h.score, SUM(h.n) FROM rating_unit_hours h"
                f" WHERE h.hour >= ? AND h.hour < ?{only}"
                " GROUP BY h.hour, h.score HAVING SUM(h.n) > 0",
                (_hour(since), _hour(until), *unit_ids),
            )
            for hour, score, n in rows:
                day = self._clock.local(parse_utc(f"{hour}:00:00+00:00")).date().isoformat()
                _scores(groups, (day, day), score, n)
        elif by == "all":
            rows = await self._reads.fetchall(
                f"SELECT c.score, SUM(c.n) FROM ({_counted('unit_id', 'rating_unit')}) c"
                f" WHERE 1 = 1{only} GROUP BY c.score HAVING SUM(c.n) > 0",
                (*spans, *unit_ids),
            )
            for score, n in rows:
                _scores(groups, ("all", "全部"), score, n)
        else:
            raise StoreError(f"cannot group ratings by {by!r} ({', '.join(GROUPINGS)})")
        return [ScoreGroup(k, label, *counts) for (k, label), counts in sorted(groups.items())]

    # -- counts -----------------------------------------------------------------

    async def item_counts(
        self, since: datetime, until: datetime, *, units: Collection[int] | None = None
    ) -> dict[str, int]:
        """Served items by status: the whole queue (pending, calling, waiting for a
        text) and, of the items served in ``[since, until)``, how they ended; only
        ``units``' items if given."""
        # A unit's items through the unit's index: the planner would take the
        # (status, served_at) one and read every row of the period for its unit.
        table = "served_items" if units is None else "served_items INDEXED BY served_items_unit"
        return await self._queue_and_period(
            table,
            "served_at",
            ACTIVE_ITEM_STATUSES,
            DONE_ITEM_STATUSES,
            since,
            until,
            in_units("unit_id", units),
        )

    async def attempt_outcomes(self, since: datetime, until: datetime) -> dict[str, int]:
        """Callback attempts started in ``[since, until)`` by ``channel:outcome``."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT channel || ':' || outcome, COUNT(*) FROM callback_attempts"
            " WHERE started_at >= ? AND started_at < ? GROUP BY channel, outcome"
            " ORDER BY channel, outcome",
            (start, end),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def text_counts(self, since: datetime, until: datetime) -> dict[str, int]:
        """Texts by status: every one still waiting, and those created in the period."""
        return await self._queue_and_period(
            "sms_messages", "created_at", WAITING_TEXT_STATUSES, DONE_TEXT_STATUSES, since, until
        )

    async def _queue_and_period(
        self,
        table: str,
        stamp: str,
        waiting: Sequence[str],
        done: Sequence[str],
        since: datetime,
        until: datetime,
        only: tuple[str, tuple[int, ...]] = ("", ()),
    ) -> dict[str, int]:
        """Rows of ``table`` by status: all in a ``waiting`` status, and those in a
        ``done`` status whose ``stamp`` falls in the period (index ``(status, stamp)``);
        ``only``: a further condition (:func:`in_units`)."""
        start, end = _period(since, until)
        where, ids = only
        rows = await self._reads.fetchall(
            f"SELECT status, COUNT(*) FROM {table}"
            f" WHERE likelihood(status IN ({param_marks(waiting)}), {FEW}){where} GROUP BY status"
            f" UNION ALL SELECT status, COUNT(*) FROM {table} WHERE {stamp} >= ? AND {stamp} < ?"
            f" AND status IN ({param_marks(done)}){where} GROUP BY status",
            (*waiting, *ids, start, end, *done, *ids),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def order_counts(self, since: datetime, until: datetime) -> dict[str, int]:
        """Orders opened in ``[since, until)`` by their status now."""
        start, end = _period(since, until)
        rows = await self._reads.fetchall(
            "SELECT status, COUNT(*) FROM rectification_orders"
            " WHERE created_at >= ? AND created_at < ? GROUP BY status",
            (start, end),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- orders -----------------------------------------------------------------

    async def orders_page(
        self,
        statuses: Sequence[str],
        *,
        limit: int = 100,
        before: int | None = None,
        units: Collection[int] | None = None,
    ) -> list[ListedOrder]:
        """Orders in ``statuses``, newest first, at most ``limit``, with ids below
        ``before`` (the last id of the previous page), each with its item and unit;
        only ``units``' orders if given."""
        if not 1 <= limit <= MAX_PAGE:
            raise StoreError(f"a page holds 1 to {MAX_PAGE} orders, not {limit}")
        only, ids = in_units("i.unit_id", units)
        rows = await self._reads.fetchall(
            f"SELECT {_ORDER_ALIASED}, i.reference, i.citizen_number, u.code, u.name"
            " FROM rectification_orders o JOIN served_items i ON i.id = o.item_id"
            " JOIN units u ON u.id = i.unit_id"
            f" WHERE o.id < ? AND o.status IN ({param_marks(statuses)}){only}"
            " ORDER BY o.id DESC LIMIT ?",
            (before if before is not None else 2**62, *statuses, *ids, limit),
        )
        return [_listed(r) for r in rows]

    async def active_orders(
        self, limit: int | None = None, *, units: Collection[int] | None = None
    ) -> list[ListedOrder]:
        """The orders not closed yet, highest level first, then oldest (at most ``limit``);
        only ``units``' orders if given."""
        only, ids = in_units("i.unit_id", units)
        rows = await self._reads.fetchall(
            f"SELECT {_ORDER_ALIASED}, i.reference, i.citizen_number, u.code, u.name"
            " FROM rectification_orders o JOIN served_items i ON i.id = o.item_id"
            " JOIN units u ON u.id = i.unit_id"
            f" WHERE likelihood(o.status IN ('open', 'reported'), {FEW}){only}"
            " ORDER BY o.level DESC, o.created_at" + ("" if limit is None else " LIMIT ?"),
            # No LIMIT rather than SQLite's LIMIT -1, which PostgreSQL refuses.
            (*ids, *(() if limit is None else (limit,))),
        )
        return [_listed(r) for r in rows]

    async def active_order_levels(self, *, units: Collection[int] | None = None) -> dict[int, int]:
        """How many orders not closed yet are at each level (of ``units`` if given)."""
        if units is not None:
            only, ids = in_units("i.unit_id", units)
            rows = await self._reads.fetchall(
                "SELECT o.level, COUNT(*) FROM rectification_orders o"
                " JOIN served_items i ON i.id = o.item_id"
                f" WHERE likelihood(o.status IN ('open', 'reported'), {FEW}){only}"
                " GROUP BY o.level",
                ids,
            )
            return {int(r[0]): int(r[1]) for r in rows}
        rows = await self._reads.fetchall(
            "SELECT level, COUNT(*) FROM rectification_orders"
            f" WHERE likelihood(status IN ('open', 'reported'), {FEW}) GROUP BY level"
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def order_events_of(self, order_ids: Sequence[int]) -> dict[int, list[OrderEvent]]:
        """The events of each of ``order_ids`` (one query), oldest first."""
        found: dict[int, list[OrderEvent]] = {order_id: [] for order_id in order_ids}
        if not found:
            return found
        rows = await self._reads.fetchall(
            "SELECT order_id, at, level, action, actor, note FROM order_events"
            f" WHERE order_id IN ({param_marks(found)}) ORDER BY order_id, id",
            tuple(found),
        )
        for r in rows:
            found[r[0]].append(OrderEvent(parse_utc(r[1]), r[2], r[3], r[4], r[5]))
        return found
