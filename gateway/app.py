"""The gateway application: one factory wires every part.

    app = create_app(config)            # gateway run; the demo and the tests too

Resources open in this order and close in reverse, each in its own cleanup
context: the store; SMS (provider, service, outbox worker); the callback
service; telephony (flows, call log, one AMI session per PBX routing AsyncAGI
calls to the hotline or survey flow, and the FastAGI listener routing its calls
to the same flows); appeals; bookings (and their reminder loop); the callback
scheduler; the chasing of appeals near or past their deadlines. The web side
serves the Twilio webhooks, the intake API, the dashboard and ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.accounts.web import add_accounts
from gateway.appeals.chasing import CaseChaser
from gateway.appeals.web import add_appeals
from gateway.bookings.web import bookings_feature
from gateway.calendar import load_calendar
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.ladder import Ladder
from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.scheduler import CallbackScheduler
from gateway.callbacks.service import CallbackService, DialResult
from gateway.callbacks.survey import register_survey_actions
from gateway.callbacks.web import CALLBACKS, SCHEDULER, add_callback_routes
from gateway.calllog.service import CallLogService
from gateway.clock import Clock, real_seconds
from gateway.cluster.wiring import CLUSTER, add_cluster, led, others_after
from gateway.config import Config, ConfigError
from gateway.hotline.actions import register_hotline_actions
from gateway.ivr.actions import ActionRegistry
from gateway.ivr.runner import FlowResult
from gateway.ivr.service import Ivr, load_ivr
from gateway.pbx.channel import AgiChannel
from gateway.pbx.fastagi import FastAgiServer
from gateway.pbx.session import PbxPool
from gateway.phone import dial_string
from gateway.reports.web import add_report_routes
from gateway.reports.wiring import add_report_schedule
from gateway.sms.provider import SmsProvider
from gateway.store import Store
from gateway.supervise import Supervisor
from gateway.wall.service import WALL, HotlineWall
from gateway.web.app import CLOCK, CONFIG, HEALTH_CHECKS, STORE, create_web_app
from gateway.web.dashboard import add_dashboard
from gateway.web.openapi import add_openapi
from gateway.web.pages.routes import add_pages
from gateway.web.sms import SMS, sms_feature

log = logging.getLogger(__name__)

PBX = web.AppKey("pbx", PbxPool)
CHASING = web.AppKey("chasing", Supervisor)
CALLLOG = web.AppKey("calllog", CallLogService)
IVR = web.AppKey("ivr", Ivr)

# Channel variables an Originate sets so the answered call finds its item again.
VAR_ITEM = "GW_ITEM"
VAR_ATTEMPT = "GW_ATTEMPT"


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    sms_provider: SmsProvider | None = None,
    run_outbox: bool = True,
    run_scheduler: bool = True,
    run_reports: bool = False,
    extra_features: tuple[Callable[[web.Application], None], ...] = (),
) -> web.Application:
    """The whole gateway as one aiohttp application (see the module's docstring)."""
    features = [
        add_cluster,
        sms_feature(provider=sms_provider, run_outbox=run_outbox),
        add_callbacks,
        add_telephony,
        add_dashboard,
        add_pages,
        add_appeals,
        bookings_feature(run_reminders=run_scheduler),
        add_openapi,
        add_accounts,
        add_report_routes,
    ]
    if run_scheduler:
        features.append(add_scheduler)
        features.append(add_chasing)
    if run_reports:
        # The leaders' reports on time (``gateway run``); off where a test or the demo
        # builds the app, as making PDFs is heavy work nobody waits for there.
        features.append(add_report_schedule)
    features.extend(extra_features)
    return create_web_app(config, clock=clock, store=store, features=features)


# -- callbacks ------------------------------------------------------------------


def add_callbacks(app: web.Application) -> None:
    app.cleanup_ctx.append(_callbacks_context)
    add_callback_routes(app)


async def _callbacks_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    catalogue = await asyncio.to_thread(load_catalogue)
    service = CallbackService(
        app[STORE],
        app[CLOCK],
        catalogue,
        config.callbacks,
        app[SMS],
        owner=config.gateway.name,
        others_after=others_after(app),
    )

    async def on_reply(reply: Any) -> bool:
        return await service.on_text(reply.from_number, reply.body, reply_key=f"sms-in:{reply.id}")

    app[SMS].add_reply_handler(on_reply, "callbacks")
    app[CALLBACKS] = service
    yield


# -- telephony --------------------------------------------------------------------


def add_telephony(app: web.Application) -> None:
    app.cleanup_ctx.append(_telephony_context)
    app[HEALTH_CHECKS]["pbx"] = _ping_pbx
    app[HEALTH_CHECKS]["calllog"] = _check_calllog
    app[HEALTH_CHECKS]["wall"] = _check_wall


async def _check_wall(app: web.Application) -> None:
    """The hotline wall's reload from QueueStatus is not failing."""
    app[WALL].check()


async def _telephony_context(app: web.Application) -> AsyncIterator[None]:
    config, clock, store = app[CONFIG], app[CLOCK], app[STORE]
    actions = ActionRegistry()
    register_hotline_actions(actions, store)
    register_survey_actions(actions, app[CALLBACKS])
    ivr = await asyncio.to_thread(load_ivr, config, actions, clock)
    app[IVR] = ivr
    router = CallRouter(app)
    async with CallLogService.from_config(config, store.calls, clock) as calllog:
        app[CALLLOG] = calllog
        pool = PbxPool(config.pbx, clock=clock, agi_handler=router.handle)
        for session in pool:
            calllog.connect(session, session.name)
        cluster = app.get(CLUSTER)
        if cluster is not None:
            # Several gateways logged in to one PBX: one at a time runs its AsyncAGI calls.
            for session in pool:
                session.share_asyncagi(functools.partial(cluster.serves_asyncagi, session.name))
            await cluster.claim_asyncagi(
                [session.name for session in pool], lambda pbx: pool[pbx].asyncagi_gained()
            )
        wall = HotlineWall(clock)
        wall.connect(pool)
        async with wall, pool, _fastagi(config, pool):
            app[PBX] = pool
            app[WALL] = wall
            yield


@contextlib.asynccontextmanager
async def _fastagi(config: Config, pool: PbxPool) -> AsyncIterator[None]:
    """The FastAGI listener when ``agi.listen_port`` is set: calls that arrive by
    AGI(agi://…/<pbx>) go to that PBX's AGI router, as its AsyncAGI calls do."""
    if not config.agi.listen_port:
        yield
        return
    server = FastAgiServer(
        {session.name: session.agi for session in pool},
        config.agi.listen_host,
        config.agi.listen_port,
    )
    try:
        await server.__aenter__()
    except OSError as exc:
        where = f"{config.agi.listen_host}:{config.agi.listen_port}"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(
            "agi.listen_port", config.source, f"cannot listen on {where}: {reason}"
        ) from None
    try:
        yield
    finally:
        # Closed first: each FastAGI call goes back to its dialplan (the queue).
        await server.__aexit__(None, None, None)


async def _ping_pbx(app: web.Application) -> None:
    for session in app[PBX]:
        await session.ping()


async def _check_calllog(app: web.Application) -> None:
    """Degraded while call records cannot be stored (they are kept and retried)."""
    app[CALLLOG].check()


class CallRouter:
    """Every AGI call, by AsyncAGI or FastAGI, lands here: a call in the callback
    context runs the survey of the item its channel variables name, anything else the
    hotline. The flow's path and case go to the call log."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def handle(self, channel: AgiChannel) -> None:
        item = attempt = None
        if channel.env.context == self.app[CONFIG].callbacks.originate_context:
            # Asked of the call itself, not of what this process remembers: a callback
            # answered after a reconnect or a restart still finds its item. (Only
            # here: a hotline caller is spared the two round trips.)
            item = await channel.get_variable(VAR_ITEM)
            attempt = await channel.get_variable(VAR_ATTEMPT)
            if not (item and attempt and item.isdigit() and attempt.isdigit()):
                log.error(
                    "callback call %s carries no valid %s/%s (%r, %r): hotline flow",
                    channel.name,
                    VAR_ITEM,
                    VAR_ATTEMPT,
                    item,
                    attempt,
                )
                item = attempt = None
        if item and attempt:
            result = await self._survey(channel, int(item), int(attempt))
        else:
            ivr = self.app[IVR]
            result = await ivr.runner.run(
                ivr.flow("hotline"), channel, {"linkedid": channel.linkedid, "pbx": channel.pbx}
            )
        self._record(channel, result)

    async def _survey(self, channel: AgiChannel, item_id: int, attempt_id: int) -> FlowResult:
        service = self.app[CALLBACKS]
        ivr = self.app[IVR]
        try:
            context = await service.survey_context(item_id, attempt_id)
            return await ivr.runner.run(
                ivr.flow("survey"),
                channel,
                {
                    "unit": context.unit_code,
                    "kind": context.kind_code,
                    "served_on": context.served_on.isoformat(),
                    "item_id": str(item_id),
                    "attempt_id": str(attempt_id),
                },
            )
        finally:
            # Whatever happened (rated, hung up, an error), the attempt is settled.
            await service.survey_ended(item_id, attempt_id)

    def _record(self, channel: AgiChannel, result: FlowResult) -> None:
        case_id = result.variables.get("case_id")
        path = [f"{s.node}:{s.event}" + (f"={s.detail}" if s.detail else "") for s in result.path]
        self.app[CALLLOG].attach(
            channel.linkedid,
            pbx=channel.pbx,
            ivr_path=path,
            case_id=int(case_id) if case_id and case_id.isdigit() else None,
        )


# -- the callback scheduler ----------------------------------------------------


class AmiDialer:
    """Places callbacks by Originate, each on the PBX its attempt names, through that
    PBX's trunk (its ``dial_string``)."""

    def __init__(self, pool: PbxPool, config: Config) -> None:
        for section in config.pbx:
            if "{number}" not in section.dial_string:
                raise ConfigError(
                    f"pbx.{section.name}.dial_string", config.source, "must contain {number}"
                )
        self.sections = {section.name: section for section in config.pbx}
        self.sessions = {name: pool[name] for name in self.sections}
        self.lines = {section.name: config.lines_of(section) for section in config.pbx}
        self.context = config.callbacks.originate_context
        self.caller_id = config.callbacks.caller_id.strip()
        if any(c in self.caller_id for c in "\r\n"):
            raise ConfigError("callbacks.caller_id", config.source, "must be one line")

    def connected(self, pbx: str) -> bool:
        return self.sessions[pbx].connected

    async def call(
        self,
        pbx: str,
        number: str,
        variables: Mapping[str, str],
        timeout_s: float,
        action_id: str,
    ) -> DialResult:
        dial = dial_string(number)
        result = await self.sessions[pbx].originate(
            self.sections[pbx].dial_string.format(number=dial),
            self.context,
            "s",
            caller_id=self.caller_id,
            timeout_ms=int(timeout_s * 1000),
            variables=variables,
            action_id=action_id,
        )
        try:
            outcome = CallOutcome(result.outcome.value)
        except ValueError:  # an outcome we do not know: the call may be up, so "unknown"
            outcome = CallOutcome.UNKNOWN
        return DialResult(outcome, result.uniqueid, result.action_id)


def add_scheduler(app: web.Application) -> None:
    app.cleanup_ctx.append(_scheduler_context)
    app[HEALTH_CHECKS]["callbacks"] = _check_scheduler


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    dialer = AmiDialer(app[PBX], config)
    scheduler = CallbackScheduler(app[CALLBACKS], dialer, cluster=app.get(CLUSTER))
    await scheduler.start()
    app[SCHEDULER] = scheduler
    try:
        yield
    finally:
        await scheduler.aclose()


async def _check_scheduler(app: web.Application) -> None:
    """Degraded while a callback loop is failing (e.g. the store is locked)."""
    app[SCHEDULER].check()


# -- chasing appeals near or past their deadlines --------------------------------------


def add_chasing(app: web.Application) -> None:
    app.cleanup_ctx.append(_chasing_context)
    app[HEALTH_CHECKS]["chasing"] = _check_chasing


async def _chasing_context(app: web.Application) -> AsyncIterator[None]:
    config, clock, store = app[CONFIG], app[CLOCK], app[STORE]
    calendar = await asyncio.to_thread(load_calendar)
    ladder = Ladder(store.units, config.callbacks)
    chaser = CaseChaser(store, clock, app[SMS], ladder, calendar, config.appeals)
    supervisor = Supervisor("chasing")
    poll = config.appeals.chase_poll_seconds
    # One gateway at a time chases (the leader: gateway.cluster).
    cases = led(app, chaser.run_once)
    supervisor.loop("cases", cases, every=lambda: real_seconds(clock, poll))
    app[CHASING] = supervisor
    try:
        yield
    finally:
        await supervisor.aclose()


async def _check_chasing(app: web.Application) -> None:
    """Degraded while the chasing loop is failing (e.g. the store is locked)."""
    app[CHASING].check()
