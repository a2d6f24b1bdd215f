"""The appeals API.

* ``POST /api/cases`` — a submission from a channel (web portal, WeChat, letters and
  visits entered by a clerk, 12345 transfers). Beside the API's bearer token the
  channel sends its own credential as ``X-Channel-Token`` and may only submit as
  itself. 201 with the case when new (a new case or a repeat joining one), 200 when
  the channel's reference was submitted before with the same content, 409 with other.
* ``GET /api/cases/{ref}`` — the case, every submission, the channels it came from
  (and how often), its history. A person sees only the cases of their units
  (:mod:`gateway.web.scope`): another is 404, as if it did not exist.
* ``POST /api/cases/{ref}/merge`` ``{"into", "actor", "note"}`` and
  ``POST /api/cases/{ref}/split`` ``{"submissions": [ids], "actor", "note"}``.
* The lifecycle (:mod:`.lifecycle`), each by an officer on file named as ``actor``:
  ``POST /api/cases/{ref}/assign`` ``{"actor", "unit", "note"}``,
  ``…/accept`` ``{"actor", "note"}``, ``…/answer`` ``{"actor", "answer"}``,
  ``…/close`` ``{"actor", "note"}``. 200 with the case file; 400 naming a bad field
  (an unknown officer is ``actor``), 403 when the officer's unit may not take the
  step, 404 for an unknown case, 409 for a step out of order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from gateway.appeals.exceptions import (
    BadSubmission,
    CaseChangeRefused,
    ChannelRefused,
    NoSuchCase,
    NotPermitted,
    ReferenceConflict,
)
from gateway.appeals.lifecycle import CaseLifecycle, answer_json
from gateway.appeals.service import FIELDS, AppealService, CaseFile, Intake, SubmissionInput
from gateway.appeals.terms import load_terms
from gateway.calendar import load_calendar
from gateway.callbacks.web import CALLBACKS
from gateway.clock import utc_iso
from gateway.store.cases import Case
from gateway.web.app import CLOCK, CONFIG, STORE
from gateway.web.errors import ApiError
from gateway.web.input import path_reference, read_json, string_fields
from gateway.web.scope import audit, scope_of
from gateway.web.sms import SMS

APPEALS = web.AppKey("appeals", AppealService)
LIFECYCLE = web.AppKey("case_lifecycle", CaseLifecycle)
CHANNEL_TOKEN_HEADER = "X-Channel-Token"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def add_appeals(app: web.Application) -> None:
    """The feature: its service (on the store) and its routes."""
    app.cleanup_ctx.append(_appeals_context)
    app.router.add_post("/api/cases", post_case)
    app.router.add_get("/api/cases/{ref}", get_case)
    app.router.add_post("/api/cases/{ref}/merge", merge_case)
    app.router.add_post("/api/cases/{ref}/split", split_case)
    app.router.add_post("/api/cases/{ref}/assign", assign_case)
    app.router.add_post("/api/cases/{ref}/accept", accept_case)
    app.router.add_post("/api/cases/{ref}/answer", answer_case)
    app.router.add_post("/api/cases/{ref}/close", close_case)


async def _appeals_context(app: web.Application) -> AsyncIterator[None]:
    calendar, terms = await asyncio.to_thread(lambda: (load_calendar(), load_terms()))
    service = AppealService(
        app[STORE], app[CLOCK], app[CONFIG].appeals, calendar=calendar, terms=terms
    )
    await service.check_units()
    app[APPEALS] = service
    app[LIFECYCLE] = CaseLifecycle(
        app[STORE], app[CLOCK], callbacks=app[CALLBACKS], texter=app[SMS]
    )
    yield


async def post_case(request: web.Request) -> web.Response:
    values = string_fields(await read_json(request), FIELDS)
    service = request.app[APPEALS]
    with _mapped():
        service.authenticate(values["channel"], request.headers.get(CHANNEL_TOKEN_HEADER))
        intake = await service.submit(SubmissionInput(**values))
    return web.json_response(_intake_json(intake), status=200 if intake.replay else 201)


async def get_case(request: web.Request) -> web.Response:
    scope = scope_of(request)
    number = path_reference(request, "ref")
    with _mapped():
        found = await request.app[APPEALS].case_file(number)
        if not scope.sees_unit(found.case.owner_unit_id):
            raise NoSuchCase(number)  # outside the person's units: as if it did not exist
    await audit(request, "view_case", found.case.number)
    return web.json_response(case_file_json(found))


async def merge_case(request: web.Request) -> web.Response:
    number = path_reference(request, "ref")
    body = _object(await read_json(request))
    into = _text(body, "into", required=True)
    with _mapped():
        merged = await request.app[APPEALS].merge(
            number, into, actor=_text(body, "actor"), note=_text(body, "note")
        )
    return web.json_response(case_file_json(merged))


async def split_case(request: web.Request) -> web.Response:
    number = path_reference(request, "ref")
    body = _object(await read_json(request))
    ids = body.get("submissions")
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        raise ApiError(
            400,
            "bad_field",
            "submissions: must be a list of submission ids (integers)",
            {"field": "submissions"},
        )
    with _mapped():
        split = await request.app[APPEALS].split(
            number, ids, actor=_text(body, "actor"), note=_text(body, "note")
        )
    return web.json_response(case_file_json(split), status=201)


Take = Callable[[CaseLifecycle, str, dict[str, Any]], Awaitable[object]]


def _lifecycle_step(fields: tuple[str, ...], take: Take) -> Handler:
    """A route that takes one lifecycle step with the body's ``fields`` (all strings; any
    other field is a 400 naming it) and answers with the case file after it."""

    async def handler(request: web.Request) -> web.Response:
        number = path_reference(request, "ref")
        found = _fields(await read_json(request), fields)
        values = {name: _text(found, name) for name in fields}
        with _mapped():
            await take(request.app[LIFECYCLE], number, values)
        return await _case_file(request, number)

    return handler


assign_case = _lifecycle_step(
    ("actor", "unit", "note"),
    lambda lc, n, v: lc.assign(n, v["unit"], actor=v["actor"], note=v["note"]),
)
accept_case = _lifecycle_step(
    ("actor", "note"), lambda lc, n, v: lc.accept(n, actor=v["actor"], note=v["note"])
)
answer_case = _lifecycle_step(
    ("actor", "answer"), lambda lc, n, v: lc.answer(n, v["answer"], actor=v["actor"])
)
close_case = _lifecycle_step(
    ("actor", "note"), lambda lc, n, v: lc.close(n, actor=v["actor"], note=v["note"])
)


async def _case_file(request: web.Request, number: str) -> web.Response:
    with _mapped():
        found = await request.app[APPEALS].case_file(number)
    return web.json_response(case_file_json(found))


def _fields(body: Any, known: tuple[str, ...]) -> dict[str, Any]:
    """The body as an object with only the ``known`` fields (400 naming another)."""
    found = _object(body)
    unknown = sorted(set(found) - set(known))
    if unknown:
        raise ApiError(
            400, "bad_field", f"{unknown[0]}: unknown field", {"field": unknown[0], "known": known}
        )
    return found


@contextmanager
def _mapped() -> Iterator[None]:
    """The service's refusals as HTTP errors naming the field, the case or the channel."""
    try:
        yield
    except BadSubmission as exc:
        raise ApiError(400, "bad_field", str(exc), {"field": exc.field}) from None
    except ChannelRefused as exc:
        raise ApiError(403, "channel_refused", str(exc), {"channel": exc.channel}) from None
    except ReferenceConflict as exc:
        details = {"channel": exc.channel, "reference": exc.reference}
        raise ApiError(409, "reference_conflict", str(exc), details) from None
    except NoSuchCase as exc:
        raise ApiError(404, "no_such_case", str(exc), {"case": exc.number}) from None
    except CaseChangeRefused as exc:
        raise ApiError(409, "case_change_refused", str(exc), {"case": exc.number}) from None
    except NotPermitted as exc:
        details = {"field": exc.field, "case": exc.number, "actor": exc.actor}
        raise ApiError(403, "not_permitted", str(exc), details) from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ApiError(400, "bad_field", f"{name}: must be a string", {"field": name})
    if required and not value.strip():
        raise ApiError(400, "bad_field", f"{name}: missing", {"field": name})
    return value


def case_json(case: Case) -> dict[str, Any]:
    return {
        "number": case.number,
        "status": case.status,
        "category": case.category,
        "channel": case.channel,
        "subject": case.subject,
        "citizen_number": case.citizen_number,
        "owner_unit": case.owner_unit_code,
        "deadline": utc_iso(case.deadline) if case.deadline else None,
        "merged_into": case.merged_into_number,
        "created_at": utc_iso(case.created_at),
    }


def case_file_json(found: CaseFile) -> dict[str, Any]:
    terms = found.terms
    return {
        **case_json(found.case),
        "terms": None
        if terms is None
        else {
            "owner_source": terms.owner_source,
            "accept_by": utc_iso(terms.accept_by),
            "answer_by": utc_iso(terms.answer_by),
            "estimated": terms.estimated,
        },
        "channels": dict(found.channels),
        "submissions": [
            {
                "id": s.id,
                "channel": s.channel,
                "reference": s.reference,
                "category": s.category,
                "text": s.text,
                "place": s.place,
                "unit_hint": s.unit_hint,
                "repeat": s.repeat,
                "received_at": utc_iso(s.received_at),
            }
            for s in found.submissions
        ],
        "history": [
            {"at": utc_iso(e.at), "actor": e.actor, "action": e.action, "note": e.note}
            for e in found.history
        ],
        "answer": answer_json(found),
    }


def _intake_json(intake: Intake) -> dict[str, Any]:
    return {
        "case": case_json(intake.case),
        "submission": intake.submission.id,
        "repeat": intake.repeat,
        "replay": intake.replay,
    }
