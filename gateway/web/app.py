"""The gateway's aiohttp application, built in one factory.

    app = create_web_app(config, features=[add_sms])

Every resource (store, SMS provider and outbox worker, later the AMI session) is
opened and closed by its own cleanup context and kept under a typed
``web.AppKey``. Each feature is a function ``feature(app)`` that adds its routes,
its cleanup contexts and its health checks; the factory only wires.

One middleware turns every error into JSON ``{"error", "message", "details"}``;
a store that fails (full disk, locked, damaged) is a 503 naming the store, and
each kind of failure is logged once a minute at most, in one line, not once per
request. Another resolves who asks (:func:`auth_middleware`): a machine client
by ``Authorization: Bearer <web.api_token>`` (429 to an address that failed too
often, :mod:`gateway.web.auth`), a person by a session cookie
(:mod:`gateway.accounts`); handlers read it with :func:`gateway.web.scope.scope_of`.
Twilio's webhooks (``/twilio/``) are authenticated by their signature instead,
and ``/health`` is open: it says which peers answer (the store by a write),
nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway.accounts.service import AccountService
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.phone import InvalidPhoneNumber
from gateway.sms.exceptions import NoSuchMessage, SmsError, TemplateError
from gateway.store import Store, StoreUnavailable
from gateway.store.db import is_store_failure, store_problem
from gateway.store.postgres import location_label, pg_problem
from gateway.web.auth import (
    LIMITER,
    SESSION_COOKIE,
    FailureLimiter,
    bearer_token,
    client_address,
    token_matches,
)
from gateway.web.errors import ApiError
from gateway.web.proxies import proxies_middleware
from gateway.web.scope import MACHINE_SCOPE, SCOPE, NotLoggedIn, scope_of

log = logging.getLogger(__name__)

# A check raises when its peer fails; it may return facts to show beside "ok".
HealthCheck = Callable[[web.Application], Awaitable[Mapping[str, str] | None]]
Feature = Callable[[web.Application], None]

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Store)
HEALTH_CHECKS: web.AppKey[dict[str, HealthCheck]] = web.AppKey("health_checks", dict)


class FailureLog:
    """Logs each kind of failure once per ``interval`` seconds, with how many were
    left out since, so a failing disk gives a line a minute rather than a traceback
    per request."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def error(self, kind: str, message: str, *, traceback: bool = False) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._quiet[kind] = self._quiet.get(kind, 0) + 1
            return
        self._last[kind] = now
        quiet = self._quiet.pop(kind, 0)
        more = f" ({quiet} more since the last report)" if quiet else ""
        log.error("%s%s", message, more, exc_info=True if traceback else None)


FAILURES = web.AppKey("failure_log", FailureLog)

_STATUS_IDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media",
    422: "unprocessable",
    429: "too_many_requests",
}


def error_response(
    status: int,
    error_id: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"error": error_id, "message": message, "details": details or {}},
        status=status,
        headers=headers,
    )


def _store_unavailable(request: web.Request, exc: Exception) -> web.Response:
    """A 503 naming the store and its problem; logged once per kind of problem."""
    if isinstance(exc, StoreUnavailable):
        where, problem = exc.where, exc.problem
    elif STORE in request.app:
        db = request.app[STORE].db
        where, problem = db.label, db.problem(exc)
    else:
        location = request.app[CONFIG].store_location
        where = location_label(location)
        problem = pg_problem(exc) if isinstance(location, str) else store_problem(location, exc)
    message = f"store {where}: {problem}"
    request.app[FAILURES].error(f"store: {problem}", f"{request.method} {request.path}: {message}")
    return error_response(
        503, "store_unavailable", message, {"store": where}, {"Retry-After": "30"}
    )


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error_id, exc.message, exc.details, exc.headers)
    except StoreUnavailable as exc:
        return _store_unavailable(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_id = _STATUS_IDS.get(exc.status, "http_error")
        return error_response(exc.status, error_id, exc.reason, {"path": request.path})
    except InvalidPhoneNumber as exc:
        return error_response(400, "invalid_phone_number", str(exc), {"reason": exc.reason})
    except NoSuchMessage as exc:
        return error_response(404, "no_such_message", str(exc), {"id": exc.message_id})
    except TemplateError as exc:
        return error_response(
            400, "invalid_text", str(exc), {"template": exc.template, "reason": exc.reason}
        )
    except SmsError as exc:
        return error_response(400, "sms_error", str(exc))
    except GatewayError as exc:
        log.error("%s %s: %s", request.method, request.path, exc)
        return error_response(500, "gateway_error", str(exc))
    except Exception as exc:
        if is_store_failure(exc):
            return _store_unavailable(request, exc)
        request.app[FAILURES].error(
            f"{request.method} {request.path} {type(exc).__name__}",
            f"{request.method} {request.path} failed",
            traceback=True,
        )
        return error_response(500, "internal_error", "internal error; see the gateway log")


# Paths that need no credential and hold no data (no store look-up for them).
OPEN_PREFIXES = ("/static/", "/twilio/", "/health")


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Resolve the request's credential to a :class:`Scope` before its handler runs:
    ``Authorization: Bearer <web.api_token>`` is a machine client (it sees what it
    always did); a session cookie is a person, by their role. ``/api/`` needs one of
    them, and people only read it (writes are for machine clients). A page whose
    handler finds no scope sends the browser to ``/login``."""
    if request.path.startswith(OPEN_PREFIXES):
        return await handler(request)
    given = bearer_token(request)
    if given is not None:
        limiter = request.app[LIMITER]
        limiter.check(request)
        token = request.app[CONFIG].web.api_token
        if token_matches(token, given):
            request[SCOPE] = MACHINE_SCOPE
        else:
            if given and token:
                limiter.failed(client_address(request))
            if request.path.startswith("/api/"):
                closed = "the API is closed to machine clients: web.api_token is not set"
                raise ApiError(401, "unauthorized", closed if not token else "wrong bearer token")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and STORE in request.app:
            accounts = AccountService(request.app[STORE], request.app[CONFIG].web)
            scope = await accounts.session(cookie)
            if scope is not None:
                request[SCOPE] = scope
    api = request.path.startswith("/api/")
    if api:
        scope = scope_of(request)
        if scope.person and request.method not in ("GET", "HEAD"):
            raise ApiError(
                401, "machine_clients_only", "people read the API; changes need the bearer token"
            )
    try:
        return await handler(request)
    except NotLoggedIn:
        if api or request.path.endswith(".json"):
            raise
        raise web.HTTPFound("/login") from None


def _store_context(path_store: Store | None) -> Callable[[web.Application], Any]:
    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        if path_store is not None:
            app[STORE] = path_store  # owned by the caller (tests, the demo)
            yield
            return
        async with Store.configured(app[CONFIG], app[CLOCK]) as store:
            app[STORE] = store
            yield

    return store_ctx


async def _ping_store(app: web.Application) -> None:
    store = app[STORE]
    try:
        await store.ping_write()
    except Exception as exc:
        if isinstance(exc, StoreUnavailable) or not is_store_failure(exc):
            raise
        raise store.db.unavailable(store.db.problem(exc)) from exc


async def health(request: web.Request) -> web.Response:
    """Ping every peer; 200 if all answer, 503 naming the ones that did not."""
    results: dict[str, dict[str, str]] = {}
    ok = True
    for name, check in request.app[HEALTH_CHECKS].items():
        try:
            facts = await check(request.app)
            results[name] = {"status": "ok", **(facts or {})}
        except Exception as exc:
            ok = False
            results[name] = {"status": "failing", "reason": str(exc)}
            request.app[FAILURES].error(f"health {name}: {exc}", f"health: {name} failing: {exc}")
    return web.json_response(
        {"status": "ok" if ok else "failing", "checks": results}, status=200 if ok else 503
    )


def create_web_app(
    config: Config,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    features: Sequence[Feature] = (),
) -> web.Application:
    """The application: store, health, then each feature in order (closed in reverse)."""
    app = web.Application(
        middlewares=[
            proxies_middleware(config.web.trusted_proxies),
            error_middleware,
            auth_middleware,
        ]
    )
    app[CONFIG] = config
    app[CLOCK] = clock or Clock()
    app[FAILURES] = FailureLog()
    app[LIMITER] = FailureLimiter(config.web.auth_max_failures, config.web.auth_failure_window)
    checks: dict[str, HealthCheck] = {"store": _ping_store}
    app[HEALTH_CHECKS] = checks
    app.cleanup_ctx.append(_store_context(store))
    app.router.add_get("/health", health)
    for feature in features:
        feature(app)
    return app
