"""The SMS feature of the web application: outbox and provider resources, Twilio's
webhooks (signed), and the texts API.

Routes: ``POST /twilio/status`` (delivery status callbacks), ``POST /twilio/inbound``
(citizens' replies), ``GET /api/sms/messages``, ``GET /api/sms/messages/{id}``,
``POST /api/sms/messages`` (queue a text from a template). Texts belong to no unit:
people read them only if their role sees every unit (others get 404).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator

from gateway.clock import utc_iso
from gateway.cluster.wiring import CLUSTER, led
from gateway.limits import BadText, check_reference
from gateway.phone import mask
from gateway.sms.exceptions import NoSuchMessage, ReplyNotHandled
from gateway.sms.outbox import OutboxWorker
from gateway.sms.policy import FAILED
from gateway.sms.provider import SmsProvider, TwilioProvider
from gateway.sms.service import OPTED_OUT_CODE, SmsService, TextOrder
from gateway.sms.templates import TemplateSet, load_templates
from gateway.sms.webhooks import (
    INBOUND_PATH,
    STATUS_PATH,
    BadWebhook,
    parse_inbound,
    parse_status_callback,
)
from gateway.store.sms import OutboxMessage
from gateway.supervise import Supervisor
from gateway.web.app import CLOCK, CONFIG, HEALTH_CHECKS, STORE
from gateway.web.errors import ApiError
from gateway.web.input import path_id, read_json
from gateway.web.scope import scope_of

log = logging.getLogger(__name__)

_Parsed = TypeVar("_Parsed")

SMS = web.AppKey("sms", SmsService)
SMS_PROVIDER = web.AppKey("sms_provider", SmsProvider)
OUTBOX = web.AppKey("outbox", OutboxWorker)  # the running worker, when there is one
REPLIES = web.AppKey("sms_replies", Supervisor)  # re-offers unsettled replies, with the outbox

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def add_sms(
    app: web.Application,
    *,
    provider: SmsProvider | None = None,
    templates: TemplateSet | None = None,
    run_outbox: bool = True,
) -> None:
    """Add the SMS resources and routes to ``app``; ``provider`` overrides Twilio."""
    app.cleanup_ctx.append(functools.partial(_sms_context, provider, templates, run_outbox))
    app[HEALTH_CHECKS]["sms"] = _ping_sms
    if run_outbox:
        app[HEALTH_CHECKS]["sms-outbox"] = _check_outbox
        app[HEALTH_CHECKS]["sms-replies"] = _check_replies
    app.router.add_post(STATUS_PATH, status_callback)
    app.router.add_post(INBOUND_PATH, inbound_text)
    app.router.add_get("/api/sms/messages", list_messages)
    app.router.add_post("/api/sms/messages", queue_message)
    app.router.add_get("/api/sms/messages/{id:\\d+}", show_message)


def sms_feature(**kwargs: Any) -> Callable[[web.Application], None]:
    """``add_sms`` with options, as a feature for :func:`create_web_app`."""
    return functools.partial(add_sms, **kwargs)


async def _sms_context(
    provider: SmsProvider | None,
    templates: TemplateSet | None,
    run_outbox: bool,
    app: web.Application,
) -> AsyncIterator[None]:
    config = app[CONFIG]
    templates = templates or load_templates()
    if provider is None:
        async with TwilioProvider.open(config.sms) as twilio:
            async for _ in _with_provider(app, twilio, templates, run_outbox):
                yield
    else:
        async for _ in _with_provider(app, provider, templates, run_outbox):
            yield


async def _with_provider(
    app: web.Application, provider: SmsProvider, templates: TemplateSet, run_outbox: bool
) -> AsyncIterator[None]:
    config = app[CONFIG]
    service = SmsService.from_config(
        app[STORE].sms, config, app[CLOCK], templates=templates, sender=provider.sender
    )
    app[SMS_PROVIDER] = provider
    app[SMS] = service
    if not run_outbox:
        yield
        return
    # Replies a handler failed on (or a crash cut short) are offered again.
    replies = Supervisor("sms", backoff_min=1.0, backoff_max=60.0)
    # A sweep: one gateway at a time re-offers (the leader: gateway.cluster), where it runs.
    replies.loop("replies", led(app, service.reoffer_due), every=config.sms.poll_interval)
    app[REPLIES] = replies
    try:
        async with OutboxWorker(service, provider, cluster=app.get(CLUSTER)) as worker:
            app[OUTBOX] = worker
            yield
    finally:
        await replies.aclose()


async def _ping_sms(app: web.Application) -> None:
    await app[SMS_PROVIDER].ping()


async def _check_replies(app: web.Application) -> None:
    app[REPLIES].check()


async def _check_outbox(app: web.Application) -> None:
    """Degraded while the outbox loop fails (a locked or full store): it goes on meanwhile."""
    app[OUTBOX].check()


async def verified_form(request: web.Request) -> MultiDictProxy[str]:
    """The webhook's form, if ``X-Twilio-Signature`` matches; else 403 (and a log line).

    The signature covers the URL Twilio requested, which is ``web.public_url`` plus
    the path and query: behind a proxy the local URL differs, so it is rebuilt.
    """
    config = request.app[CONFIG]
    raw = await request.post()
    form = MultiDictProxy(MultiDict[str]((k, v) for k, v in raw.items() if isinstance(v, str)))
    url = config.web.public_url.rstrip("/") + request.rel_url.path_qs
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(config.sms.auth_token.reveal())
    if not signature or not validator.validate(url, form, signature):
        log.warning(
            "refused %s webhook from %s: %s signature (From %s)",
            request.path,
            request.remote,
            "wrong" if signature else "no",
            mask(form.get("From", "")),
        )
        raise ApiError(403, "bad_signature", "X-Twilio-Signature missing or wrong")
    return form


async def _verified_webhook(
    request: web.Request, parse: Callable[[MultiDictProxy[str]], _Parsed]
) -> _Parsed:
    """A signed Twilio webhook's form, parsed; a form ``parse`` refuses is a 400."""
    form = await verified_form(request)
    try:
        return parse(form)
    except BadWebhook as exc:
        raise ApiError(400, "bad_webhook", str(exc), {"field": exc.field}) from exc


async def status_callback(request: web.Request) -> web.Response:
    parsed = await _verified_webhook(request, parse_status_callback)
    update = await request.app[SMS].handle_status(parsed.sid, parsed.status, parsed.error_code)
    log.debug(
        "status %s for %s: %s",
        parsed.status,
        parsed.sid,
        "applied" if update.applied else "no change",
    )
    return web.Response(status=204)


async def inbound_text(request: web.Request) -> web.Response:
    parsed = await _verified_webhook(request, parse_inbound)
    try:
        await request.app[SMS].handle_inbound(
            parsed.sid, parsed.from_number, parsed.to_number, parsed.body
        )
    except ReplyNotHandled as exc:
        # 500, so Twilio retries (and the retry is offered again, not taken for a
        # duplicate); the reply is stored and re-offered by the replies loop anyway.
        raise ApiError(500, "reply_not_handled", str(exc)) from exc
    return web.Response(text=_EMPTY_TWIML, content_type="text/xml")


def message_json(message: OutboxMessage) -> dict[str, Any]:
    out = asdict(message)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = utc_iso(value)
    return out


async def list_messages(request: web.Request) -> web.Response:
    if scope_of(request).unit_ids is not None:
        raise ApiError(404, "not_found", "no such resource")  # texts: for those who see all
    status = request.query.get("status")
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError as exc:
        raise ApiError(400, "bad_request", "limit must be an integer") from exc
    messages = await request.app[STORE].sms.recent(status=status, limit=limit)
    return web.json_response({"messages": [message_json(m) for m in messages]})


async def show_message(request: web.Request) -> web.Response:
    message_id = path_id(request, error_id="no_such_message")
    message = await request.app[STORE].sms.get(message_id)
    if message is None or scope_of(request).unit_ids is not None:
        raise NoSuchMessage(message_id)
    events = await request.app[STORE].sms.events(message_id)
    return web.json_response(
        {
            "message": message_json(message),
            "events": [
                {"kind": e.kind, "status": e.status, "detail": e.detail, "at": utc_iso(e.at)}
                for e in events
            ],
        }
    )


# Texts one POST may queue (one transaction).
MAX_BATCH = 1000


def _text_order(payload: object, index: int | None = None) -> TextOrder:
    """The order one JSON object describes; a 400 naming the field (and list index)."""
    at = {} if index is None else {"index": index}
    where = "" if index is None else f"item {index}: "
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", f"{where}each text must be a JSON object", at)
    for field in ("to", "template", "idempotency_key"):
        if not isinstance(payload.get(field), str):
            raise ApiError(
                400, "bad_request", f"{where}{field} is required (a string)", {"field": field, **at}
            )
    try:
        idempotency_key = check_reference(payload["idempotency_key"], "idempotency_key")
    except BadText as exc:
        raise ApiError(400, "bad_request", f"{where}{exc}", {"field": exc.field, **at}) from None
    variables = payload.get("variables", {})
    if not isinstance(variables, dict):
        raise ApiError(
            400, "bad_request", f"{where}variables must be an object", {"field": "variables", **at}
        )
    return TextOrder(
        to=payload["to"],
        template=payload["template"],
        variables=variables,
        idempotency_key=idempotency_key,
        purpose=payload.get("purpose"),
        audience=payload.get("audience"),
    )


async def queue_message(request: web.Request) -> web.Response:
    """Queue one text (a JSON object) or many (a list of them, one transaction: all are
    checked before any is stored). In a list an opted-out citizen's text is returned
    ``failed`` (code 21610) like the others, not as a 400."""
    payload = await read_json(request)
    if isinstance(payload, list):
        if not 0 < len(payload) <= MAX_BATCH:
            raise ApiError(400, "bad_request", f"a list holds 1 to {MAX_BATCH} texts")
        orders = [_text_order(item, i) for i, item in enumerate(payload)]
        messages = await request.app[SMS].enqueue_many(orders)
        return web.json_response({"messages": [message_json(m) for m in messages]}, status=201)
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    order = _text_order(payload)
    message = await request.app[SMS].enqueue(
        to=order.to,
        template=order.template,
        variables=order.variables,
        idempotency_key=order.idempotency_key,
        purpose=order.purpose,
        audience=order.audience,
    )
    if message.status == FAILED and message.error_code == OPTED_OUT_CODE:
        # Twilio answers 400 (21610) for an unsubscribed recipient; so does the API.
        raise ApiError(
            400,
            "recipient_opted_out",
            "the recipient opted out of texts (TD/退订/STOP): nothing will be sent",
            {"code": int(OPTED_OUT_CODE), "id": message.id},
        )
    return web.json_response(message_json(message), status=201)
