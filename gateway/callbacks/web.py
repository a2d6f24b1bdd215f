"""The callbacks' HTTP API, under /api/: machine clients (bearer token) send and
report; people (session) read what their role's units hold (:mod:`gateway.web.scope`):
an item of another unit is 404, lists and figures cover their units only.

- ``POST /api/served-items``: one served item (JSON object) or many (a list);
  each is validated, and the answer says per item what was added or refused.
- ``GET /api/served-items/{reference}``: an item, its attempts and ratings.
- ``GET /api/orders``: rectification orders, newest first, a page at a time
  (``?all=1`` with closed ones; ``?limit=`` up to 1000, default 100; the ``Link``
  header's ``rel="next"`` gives the next page, ``?before=<id>``).
- ``POST /api/orders/{ref}/report``: a unit reports its rectification done
  (``{"actor": "J00013", "note": "…"}``); the citizen is called again. Only the
  chief or a deputy of the unit holding the order at its level may (else 403).
- ``GET /api/callbacks/summary``: items by status and first-callback satisfaction
  over a period (``?days=N``, or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``; default the
  last 30 days), aggregated in SQL and shared by viewers for a few seconds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gateway.callbacks.report import BadPeriod, overall_row, parse_period, satisfaction_rows
from gateway.callbacks.scheduler import CallbackScheduler
from gateway.callbacks.service import (
    CallbackError,
    CallbackService,
    CheckedItem,
    InvalidServedItem,
    NotAuthorized,
    ServedItemInput,
    UnknownOrder,
)
from gateway.limits import MAX_REFERENCE, BadText, check_name, check_note
from gateway.store.callbacks import Order, ServedItem
from gateway.store.figures import MAX_PAGE, ListedOrder
from gateway.web.errors import ApiError
from gateway.web.input import path_reference, query_whole, read_json
from gateway.web.scope import audit, scope_of

CALLBACKS = web.AppKey("callbacks", CallbackService)
SCHEDULER = web.AppKey("scheduler", CallbackScheduler)

MAX_ITEMS_PER_REQUEST = 1000
ORDERS_PER_PAGE = 100
_FIELDS = ("reference", "kind", "unit", "citizen_number", "served_at", "citizen_name", "officer")


def add_callback_routes(app: web.Application) -> None:
    app.router.add_post("/api/served-items", post_items)
    app.router.add_get("/api/served-items/{reference}", get_item)
    app.router.add_get("/api/orders", list_orders)
    app.router.add_post("/api/orders/{ref}/report", report_order)
    app.router.add_get("/api/callbacks/summary", summary)


def _service(request: web.Request) -> CallbackService:
    return request.app[CALLBACKS]


def _wake(request: web.Request) -> None:
    scheduler = request.app.get(SCHEDULER)
    if scheduler is not None:
        scheduler.wake()


def _input(raw: Any, index: int) -> ServedItemInput:
    if not isinstance(raw, dict):
        raise ApiError(400, "bad_item", f"item {index} is not a JSON object")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ApiError(
            400, "bad_item", f"item {index}: unknown fields {unknown}", {"known": list(_FIELDS)}
        )
    values: dict[str, str] = {}
    for name in _FIELDS:
        value = raw.get(name, "")
        if not isinstance(value, str):
            raise ApiError(400, "bad_item", f"item {index}: {name} must be a string")
        values[name] = value
    return ServedItemInput(**values)


def item_json(item: ServedItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "reference": item.reference,
        "kind": item.kind_code,
        "unit_id": item.unit_id,
        "citizen_number": item.citizen_number,
        "citizen_name": item.citizen_name,
        "served_at": item.served_at.isoformat(),
        "status": item.status,
        "round": item.round,
        "attempts": item.attempts,
        "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "ref": order.ref,
        "level": order.level,
        "status": order.status,
        "deadline_at": order.deadline_at.isoformat(),
        "created_at": order.created_at.isoformat(),
        "reported_by": order.reported_by,
        "report_note": order.report_note,
        "closed_at": order.closed_at.isoformat() if order.closed_at else None,
    }


async def post_items(request: web.Request) -> web.Response:
    body = await read_json(request)
    single = isinstance(body, dict)
    raws = [body] if single else body
    if not isinstance(raws, list) or not raws:
        raise ApiError(400, "bad_body", "send a served item object or a non-empty list of them")
    if len(raws) > MAX_ITEMS_PER_REQUEST:
        raise ApiError(413, "too_many_items", f"at most {MAX_ITEMS_PER_REQUEST} items a request")
    inputs = [_input(raw, index) for index, raw in enumerate(raws)]
    service = _service(request)
    # Every item is checked before any is written: a bad one never half-writes the batch.
    checked: list[CheckedItem | InvalidServedItem] = []
    for data in inputs:
        try:
            checked.append(await service.check(data))
        except InvalidServedItem as exc:
            checked.append(exc)
    # The good ones go in one transaction: a store failure never half-writes the batch.
    good = [c for c in checked if not isinstance(c, InvalidServedItem)]
    stored = iter(await service.add_many(good))
    results: list[dict[str, Any]] = []
    for data, outcome in zip(inputs, checked, strict=True):
        if isinstance(outcome, InvalidServedItem):
            results.append(
                {
                    "reference": data.reference[:MAX_REFERENCE],
                    "result": "refused",
                    "field": outcome.field,
                    "reason": outcome.reason,
                }
            )
            continue
        item = next(stored)
        if item is None:
            results.append({"reference": outcome.reference, "result": "duplicate"})
        else:
            results.append(
                {"reference": outcome.reference, "result": "added", "item": item_json(item)}
            )
    _wake(request)
    if single:
        result = results[0]
        if result["result"] == "refused":
            raise ApiError(
                422,
                "invalid_served_item",
                f"{result['field']}: {result['reason']}",
                {"field": result["field"], "reference": result["reference"]},
            )
        if result["result"] == "duplicate":
            raise ApiError(
                409,
                "duplicate_reference",
                f"served item {result['reference']!r} was already reported",
            )
        return web.json_response(result["item"], status=201)
    return web.json_response(
        {"results": results}, status=207 if any(r["result"] != "added" for r in results) else 201
    )


async def get_item(request: web.Request) -> web.Response:
    scope = scope_of(request)
    service = _service(request)
    item = await service.store.callbacks.item_by_reference(path_reference(request, "reference"))
    if item is None or not scope.sees_unit(item.unit_id):
        raise ApiError(404, "no_such_item", "no served item with that reference")
    await audit(request, "view_item", item.reference)
    attempts = await service.store.callbacks.attempts(item.id)
    ratings = [await service.store.callbacks.rating(item.id, r) for r in range(1, item.round + 1)]
    return web.json_response(
        {
            **item_json(item),
            "attempts": [
                {
                    "round": a.round,
                    "attempt": a.attempt,
                    "channel": a.channel,
                    "outcome": a.outcome,
                    "pbx": a.pbx,
                }
                for a in attempts
            ],
            "ratings": [
                {
                    "round": r.round,
                    "score": r.score,
                    "channel": r.channel,
                    "reason": r.reason,
                    "rated_at": r.rated_at.isoformat(),
                }
                for r in ratings
                if r is not None
            ],
        }
    )


async def list_orders(request: web.Request) -> web.Response:
    scope = scope_of(request)
    service = _service(request)
    statuses = ("open", "reported", "closed") if request.query.get("all") else ("open", "reported")
    limit = query_whole(request, "limit", MAX_PAGE) or ORDERS_PER_PAGE
    before = query_whole(request, "before", 2**62)
    page = await service.store.figures.orders_page(
        statuses, limit=limit, before=before, units=scope.unit_ids
    )
    # A page of a thousand orders takes milliseconds to encode: not on the event loop.
    body = await asyncio.to_thread(json.dumps, [listed_order_json(o) for o in page])
    response = web.json_response(text=body)
    if len(page) == limit:
        query = {**request.query, "before": str(page[-1].order.id)}
        response.headers["Link"] = f'<{request.rel_url.with_query(query)}>; rel="next"'
    return response


def listed_order_json(listed: ListedOrder) -> dict[str, Any]:
    return {
        **order_json(listed.order),
        "id": listed.order.id,
        "item": listed.item_reference,
        "unit": listed.unit_code,
        "unit_name": listed.unit_name,
    }


async def report_order(request: web.Request) -> web.Response:
    ref = path_reference(request, "ref")
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("actor"), str) or not body["actor"]:
        raise ApiError(400, "bad_report", 'give the reporting officer as "actor"')
    note = body.get("note", "")
    if not isinstance(note, str):
        raise ApiError(400, "bad_report", '"note" must be a string')
    try:
        actor = check_name(body["actor"], "actor")
        note = check_note(note)
    except BadText as exc:
        raise ApiError(400, "bad_report", str(exc), {"field": exc.field}) from None
    if not actor:
        raise ApiError(400, "bad_report", 'give the reporting officer as "actor"')
    service = _service(request)
    try:
        order = await service.report_done(ref, note, actor=actor)
    except UnknownOrder as exc:
        raise ApiError(404, "no_such_order", str(exc)) from None
    except NotAuthorized as exc:
        raise ApiError(403, "not_authorized", str(exc)) from None
    except CallbackError as exc:  # the order kept changing meanwhile: try again
        raise ApiError(409, "order_changed", str(exc)) from None
    _wake(request)
    return web.json_response(order_json(order))


async def summary(request: web.Request) -> web.Response:
    units = scope_of(request).unit_ids
    service = _service(request)
    q = request.query
    try:
        period = parse_period(service.clock, q.get("days"), q.get("from"), q.get("to"))
    except BadPeriod as exc:
        raise ApiError(400, "bad_period", str(exc)) from None
    figures = service.store.figures

    async def compute() -> dict[str, Any]:
        names = {k.code: k.name for k in service.catalogue}
        since, until = period.since, period.until
        by_unit = satisfaction_rows(await figures.satisfaction(since, until, "unit", units=units))
        by_kind = satisfaction_rows(
            await figures.satisfaction(since, until, "kind", names, units=units)
        )
        return {
            "period": period.as_json(),
            "items": await figures.item_counts(since, until, units=units),
            "by_unit": [r.as_json() for r in by_unit],
            "by_kind": [r.as_json() for r in by_kind],
            "overall": [r.as_json() for r in overall_row(by_unit)],
        }

    return web.json_response(await figures.cached(("summary", period, units), compute))
