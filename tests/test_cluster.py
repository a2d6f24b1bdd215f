"""Several gateways on one PostgreSQL database, in one test process: each its own Store,
name and leadership. The outbox is drained by both at once, each text sent once; a
killed gateway's leases are left to it until they end (its restart takes them at
once); one gateway leads at a time and another takes over when its connection dies; a
gateway whose clock is minutes ahead takes nothing of another's."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from pbx_support import SECRET
from sms_support import ACCOUNT, CHIEF, ORDER_VARS, TOKEN, Gateway, running_gateway, until

from gateway import config as config_module
from gateway.app import AmiDialer
from gateway.callbacks.catalogue import load_catalogue
from gateway.callbacks.policy import CallOutcome
from gateway.callbacks.scheduler import CallbackScheduler
from gateway.callbacks.service import (
    SURVEY_START_SECONDS,
    CallbackService,
    DialResult,
    ServedItemInput,
)
from gateway.clock import Clock, ManualClock
from gateway.cluster.identity import name_from_host
from gateway.cluster.leader import Leadership, NameInUse, visiting
from gateway.cluster.skew import ClockSkewed
from gateway.cluster.wiring import add_cluster
from gateway.config import Config, ConfigError, GatewaySection
from gateway.pbx.channel import AgiChannel
from gateway.pbx.pool import PbxPool
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.outbox import OutboxWorker
from gateway.sms.service import SmsService
from gateway.sms.templates import load_templates
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed
from gateway.store.sms import OutboxMessage
from gateway.web.app import create_web_app
from gateway.web.sms import SMS_PROVIDER
from tests import polling

SKEW = timedelta(seconds=30)


class AheadClock(Clock):
    """A host whose clock runs a fixed time ahead of real time (a bad NTP set-up)."""

    def __init__(self, ahead: timedelta) -> None:
        super().__init__()
        self.ahead = ahead

    def now(self) -> datetime:
        return super().now() + self.ahead


@contextlib.asynccontextmanager
async def member(
    url: str, name: str, clock: Clock, *, poll: float = 0.2
) -> AsyncIterator[Leadership]:
    leadership = Leadership(name, clock, url=url, max_skew=SKEW, poll=poll, name_wait=2.0)
    await leadership.start()
    try:
        yield leadership
    finally:
        await leadership.aclose()


async def kill_connections(url: str, name: str) -> int:
    """End, from the server's side, the leadership connection of gateway ``name`` (as when
    its process dies); how many connections were ended."""
    conn = await asyncpg.connect(url)
    try:
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            f"gateway/{name}",
        )
        return int(ended)
    finally:
        await conn.close()


async def order(gw: Gateway, key: str, case_ref: str = "LZ2026-000123") -> OutboxMessage:
    return await gw.sms.enqueue(
        to=CHIEF,
        template="rectification_order",
        variables={**ORDER_VARS, "case_ref": case_ref},
        idempotency_key=key,
    )


async def lease_owner(store: Store, message: OutboxMessage) -> str | None:
    row = await store.sms.get(message.id)
    assert row is not None
    return row.lease_owner


async def has_sid(store: Store, message: OutboxMessage) -> bool:
    row = await store.sms.get(message.id)
    return row is not None and row.provider_sid is not None


Member = tuple[Store, Gateway, Leadership]  # one gateway: its store, web side, leadership


@contextlib.asynccontextmanager
async def two_gateways(
    url: str, time_scale: float, **sms: Any
) -> AsyncIterator[tuple[SimulatedTwilio, Member, Member]]:
    """The simulated Twilio, and two gateways on ``url`` named gw-a and gw-b, each with
    the SMS settings ``sms`` and no outbox running (see :func:`outboxes`)."""
    async with (
        Store.open(url, Clock()) as store_a,
        Store.open(url, Clock()) as store_b,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=time_scale) as tw,
        running_gateway(store_a, tw, run_outbox=False, **sms) as gw_a,
        running_gateway(store_b, tw, run_outbox=False, **sms) as gw_b,
        member(url, "gw-a", store_a.clock) as lead_a,
        member(url, "gw-b", store_b.clock) as lead_b,
    ):
        yield tw, (store_a, gw_a, lead_a), (store_b, gw_b, lead_b)


@contextlib.asynccontextmanager
async def outboxes(*members: Member) -> AsyncIterator[list[OutboxWorker]]:
    """An outbox worker for each gateway, under its leadership."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                OutboxWorker(gw.sms, gw.app[SMS_PROVIDER], cluster=lead)
            )
            for _, gw, lead in members
        ]


# -- the name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("gw-1.police.example", "gw-1"),
        ("GATEWAY_2", "GATEWAY_2"),
        ("主机.example", "gateway"),
        ("a" * 40, "a" * 32),
        ("web server", "web-server"),
    ],
)
def test_a_default_name_is_the_host_names_first_label_made_valid(host: str, name: str) -> None:
    """The default name is the first label of the host name, other characters as '-',
    at most 32 characters, "gateway" when nothing valid is left."""
    assert name_from_host(host) == name


def test_the_name_is_checked_and_defaults_to_the_hosts(tmp_path: Path) -> None:
    """[gateway] name takes 1–32 letters, digits, '_' or '-'; anything else stops the start
    in one line; empty or unset is the host's name, the same each time."""
    assert config_module.load(overrides=["gateway.name=gw-east_1"]).gateway.name == "gw-east_1"
    for bad in ("gw 1", "g" * 33, "gw/1"):
        with pytest.raises(ConfigError, match=r"gateway\.name"):
            config_module.load(overrides=[f"gateway.name={bad}"])
    first = config_module.load().gateway.name
    assert first == config_module.load(overrides=["gateway.name="]).gateway.name
    assert first == GatewaySection().name and first


@pytest.mark.postgres
async def test_a_second_gateway_with_a_taken_name_is_refused(postgres_url: str) -> None:
    """A gateway cannot start under the name of one connected to the same database: one
    line says why, while the first keeps its name."""
    async with member(postgres_url, "gw-a", Clock()) as first:
        with pytest.raises(NameInUse, match="another gateway named 'gw-a'"):
            async with member(postgres_url, "gw-a", Clock()):
                pass
        assert first.holds_name
        first.check()


# -- the outbox ----------------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_gateways_drain_one_outbox_sending_each_text_once(postgres_url: str) -> None:
    """Two gateways' outbox workers on one database claim at once (SKIP LOCKED): every text
    reaches Twilio exactly once, and both send some."""
    texts = 60
    async with two_gateways(postgres_url, 0.1, workers=2) as (tw, a, b):
        (store_a, gw_a, _), (_, gw_b, _) = a, b
        tw.faults.slow(0.05)  # each send takes a while: the claims overlap
        async with outboxes(a, b) as (one, two):
            for i in range(texts):
                await order(gw_a if i % 2 else gw_b, f"order-{i}", f"LZ2026-{i:06d}")
            await until(lambda: _delivered(store_a, texts), 60)
        assert (one.owner, two.owner) == ("gw-a", "gw-b")
        assert one.sent > 0 and two.sent > 0 and one.sent + two.sent == texts
        events = await store_a.db.fetchall(
            "SELECT COUNT(*) FROM sms_events WHERE kind = 'interrupted'"
        )
        assert events[0][0] == 0  # no lease was ever taken from its holder
    bodies = collections.Counter(m.body for m in tw.messages)
    assert len(bodies) == texts and set(bodies.values()) == {1}


@pytest.mark.postgres
async def test_only_the_leader_looks_up_texts_whose_callbacks_were_lost(postgres_url: str) -> None:
    """Twilio's status callbacks are lost: both gateways send, but the statuses of every
    gateway's texts are looked up by the leader alone, and all end delivered."""
    texts = 20
    async with two_gateways(postgres_url, 0.01, status_refresh=0.4) as (tw, a, b):
        (store_a, gw_a, lead_a), (_, _, lead_b) = a, b
        tw.faults.lose_callbacks = True
        tw.faults.slow(0.02)  # each send takes a while: both workers send some
        await until(lambda: lead_a.leading or lead_b.leading, 10)
        async with outboxes(a, b) as (one, two):
            for i in range(texts):
                await order(gw_a, f"order-{i}", f"LZ2026-{i:06d}")
            await until(lambda: _delivered(store_a, texts), 60)
        leader, other = (one, two) if lead_a.leading else (two, one)
        assert one.sent > 0 and two.sent > 0
        assert leader.refreshed >= texts and other.refreshed == 0
    assert tw.stats.callbacks_posted == 0


async def _delivered(store: Store, count: int) -> bool:
    return (await store.sms.counts()).get("delivered", 0) == count


@contextlib.asynccontextmanager
async def dying_gateway(
    url: str, clock: Clock, tw: SimulatedTwilio, name: str
) -> AsyncIterator[tuple[Store, Gateway, OutboxWorker]]:
    """A gateway whose worker takes texts and sends them, then dies before writing their
    sids: its loop stops with nothing more written and its connections are cut, no
    clean-up (as kill -9)."""
    async with (
        Store.open(url, clock) as store,
        running_gateway(store, tw, run_outbox=False) as gw,
        member(url, name, clock) as lead,
    ):
        worker = OutboxWorker(gw.sms, gw.app[SMS_PROVIDER], cluster=lead)
        worker.result_delay = 3600.0  # the sids are never written before the "kill"
        await worker.__aenter__()
        yield store, gw, worker
        await worker.supervisor.aclose()  # nothing more is written
        assert await kill_connections(url, name) == 1
        store.db.pool.terminate()  # type: ignore[attr-defined]


@pytest.mark.postgres
async def test_a_dead_gateways_leases_are_taken_only_when_they_end(postgres_url: str) -> None:
    """A gateway killed while its texts were at Twilio (sids not written yet): another
    gateway leaves its rows alone while their leases last, then looks each up and finds
    it instead of sending it again."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    async with SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as tw:
        stack = contextlib.AsyncExitStack()
        async with stack:
            _, gw_a, _ = await stack.enter_async_context(
                dying_gateway(postgres_url, clock, tw, "gw-a")
            )
            sent = [await order(gw_a, f"held-{i}", f"LZ2026-{i:06d}") for i in range(3)]
            await until(lambda: len(tw.messages) == 3)
        async with (
            Store.open(postgres_url, clock) as store_b,
            running_gateway(store_b, tw, run_outbox=False) as gw_b,
            member(postgres_url, "gw-b", clock) as lead_b,
            OutboxWorker(gw_b.sms, gw_b.app[SMS_PROVIDER], cluster=lead_b) as other,
        ):
            rounds = other.supervisor.loops["outbox"]
            start = rounds.rounds
            await until(lambda: rounds.rounds >= start + 5)  # rounds while the leases last
            assert [await lease_owner(store_b, m) for m in sent] == ["gw-a"] * 3
            clock.advance(other.lease + timedelta(seconds=1))
            other.service.wakeup.set()
            for message in sent:
                await until(lambda m=message: has_sid(store_b, m), 30)  # type: ignore[misc]
            assert other.reconciled == 3 and other.sent == 0
    assert len(tw.messages) == 3


@pytest.mark.postgres
async def test_a_restarted_gateway_reclaims_its_own_rows_at_once(postgres_url: str) -> None:
    """A gateway restarted under its name takes back at start the texts it was sending
    when it died, without waiting for their leases, and finds them at Twilio; a live
    gateway of another name beside it took none of them."""
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    async with (
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1, now=clock.now) as tw,
        Store.open(postgres_url, clock) as store_b,
        running_gateway(store_b, tw, run_outbox=False) as gw_b,
        member(postgres_url, "gw-b", clock) as lead_b,
    ):
        async with dying_gateway(postgres_url, clock, tw, "gw-a") as (_, gw_a, _):
            message = await order(gw_a, "mid-send")
            await until(lambda: len(tw.messages) == 1)
        other = OutboxWorker(gw_b.sms, gw_b.app[SMS_PROVIDER], cluster=lead_b)
        async with (
            other,
            Store.open(postgres_url, clock) as store_a,
            running_gateway(store_a, tw, run_outbox=False) as again,
            member(postgres_url, "gw-a", clock) as lead_a,
            OutboxWorker(again.sms, again.app[SMS_PROVIDER], cluster=lead_a) as restarted,
        ):
            await until(lambda: _interrupted(store_a, message))
            clock.advance(1)  # past the look-up delay a restart leaves for in-flight requests
            restarted.service.wakeup.set()
            await until(lambda: has_sid(store_a, message), 30)
            details = await _interrupted(store_a, message)
        # taken back by the restart (either gateway may then look it up), never by the
        # other gateway while the dead one's lease lasted
        assert details == ["found sending at start: look it up at the provider before re-sending"]
        assert restarted.reconciled + other.reconciled == 1
        assert restarted.sent == other.sent == 0
    assert len(tw.messages) == 1


async def _interrupted(store: Store, message: OutboxMessage) -> list[str]:
    return [e.detail for e in await store.sms.events(message.id) if e.kind == "interrupted"]


# -- the leadership ------------------------------------------------------------------------


@pytest.mark.postgres
async def test_one_gateway_serves_a_pbxs_asyncagi_calls_and_another_takes_over(
    postgres_url: str,
) -> None:
    """Two gateways logged in to PBXs "north" and "south": each PBX's AsyncAGI calls are
    served by exactly one of them. When that one's connection dies it stops at once (and
    at its reconnection it may take the PBXs back, before anyone else has: its calls are
    still its own); when it is gone, the other serves the PBXs within seconds, told so
    (to hand back what was left). On SQLite the only gateway serves every PBX."""
    gained: dict[str, list[str]] = {"gw-a": [], "gw-b": []}
    async with (
        member(postgres_url, "gw-a", Clock()) as a,
        member(postgres_url, "gw-b", Clock(), poll=2.0) as b,
    ):
        await a.claim_asyncagi(["north", "south"], gained["gw-a"].append)
        await b.claim_asyncagi(["north", "south"], gained["gw-b"].append)
        for pbx in ("north", "south"):
            assert a.serves_asyncagi(pbx) and not b.serves_asyncagi(pbx)
        assert gained == {"gw-a": [], "gw-b": []}  # the first claim has nobody to replace
        served: list[tuple[bool, bool]] = []

        async def watch() -> None:
            while True:
                served.append((a.serves_asyncagi("north"), b.serves_asyncagi("north")))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            assert await kill_connections(postgres_url, "gw-a") == 1
            await until(lambda: not a.serves_asyncagi("north"), 5)
            await until(lambda: a.holds_name, 10)  # back within its 0.2 s round
            await a.aclose()  # and gone
            await until(lambda: b.serves_asyncagi("north") and b.serves_asyncagi("south"), 10)
        finally:
            watcher.cancel()
        assert sorted(gained["gw-b"]) == ["north", "south"]
        assert (True, True) not in served  # never both
    alone = Leadership("gw", Clock(), url=None, max_skew=SKEW)
    await alone.claim_asyncagi(["main"])
    assert alone.serves_asyncagi("main")


@pytest.mark.postgres
async def test_a_visiting_command_never_leads_but_checks_its_clock(postgres_url: str) -> None:
    """A command's outbox (``sms send --wait``) visits under a name of its own and with
    its clock compared; it does not lead even when no gateway does, and a gateway that
    comes meanwhile leads. On SQLite there is nobody to visit."""
    async with visiting(postgres_url, Clock(), SKEW) as visitor:
        assert visitor is not None and visitor.name.startswith("cli-")
        assert visitor.holds_name and visitor.skew.offset is not None and visitor.skew.ok
        rounds = visitor.supervisor.loops["leadership"]
        await until(lambda: rounds.rounds >= 1, 10)  # a round that would have led
        assert not visitor.leading
        async with (
            Store.open(postgres_url, Clock()) as store,
            member(postgres_url, "gw-a", Clock()) as gateway,
        ):
            await until(lambda: gateway.leading, 10)
            assert await visitor.leader(store.db) == "gw-a"
            async with visiting(postgres_url, Clock(), SKEW) as other:
                assert other is not None and other.name != visitor.name
    async with visiting(None, Clock(), SKEW) as alone:
        assert alone is None


@pytest.mark.postgres
async def test_one_gateway_leads_and_another_takes_over_when_its_connection_dies(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Of two gateways exactly one leads; when the leader dies (its connection ends) it
    stops at once (its gated round is cancelled) and the other leads within seconds;
    never both at once."""
    caplog.set_level("WARNING", logger="gateway.cluster.leader")
    async with (
        Store.open(postgres_url, Clock()) as store,
        member(postgres_url, "gw-a", Clock()) as a,
        member(postgres_url, "gw-b", Clock()) as b,
    ):
        await until(lambda: a.leading or b.leading, 10)
        both: list[tuple[bool, bool]] = []

        async def watch() -> None:
            while True:
                both.append((a.leading, b.leading))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        leader, other = (a, b) if a.leading else (b, a)
        assert await leader.leader(store.db) == leader.name
        started, ran = asyncio.Event(), []

        async def job() -> None:
            started.set()
            await asyncio.sleep(3600)
            ran.append("finished")

        round_ = asyncio.create_task(leader.led(job)())
        await started.wait()
        assert await other.led(job)() is None and not ran  # the other one does not run it
        loop = asyncio.get_running_loop()
        await leader.supervisor.aclose()  # its process is gone: no more rounds of its own
        killed = loop.time()
        assert await kill_connections(postgres_url, leader.name) == 1
        await polling.until(lambda: round_.done(), 5)
        assert not leader.leading and ran == []
        await until(lambda: other.leading, 10)
        took = loop.time() - killed
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        assert await other.leader(store.db) == other.name
        # the old leader, back (a round on a new connection), has its name, not the lead
        await leader.round()
        assert leader.holds_name and not leader.leading and other.leading
    assert took < 5.0
    assert not any(x and y for x, y in both)
    lost = [r for r in caplog.records if "no longer leads" in r.getMessage()]
    assert len(lost) == 1


@pytest.mark.postgres
async def test_health_names_this_gateway_and_the_leader(postgres_url: str) -> None:
    """/health's cluster check shows this gateway's name and which gateway leads."""
    async with (
        Store.open(postgres_url, Clock()) as store,
        member(postgres_url, "gw-lead", Clock()) as first,
    ):
        await until(lambda: first.leading, 10)
        config = Config(gateway=GatewaySection(name="gw-web"))
        app = create_web_app(config, store=store, features=[add_cluster])
        checks = await _health(app)
    assert checks["cluster"] == {"status": "ok", "name": "gw-web", "leader": "gw-lead"}


@pytest.mark.postgres
async def test_health_fails_while_the_clock_is_off_the_databases(postgres_url: str) -> None:
    """A gateway whose clock runs 5 minutes ahead of the database's shows the cluster
    check failing on /health, saying how far off it is."""
    ahead = AheadClock(timedelta(minutes=5))
    async with Store.open(postgres_url, ahead) as store:
        config = Config(gateway=GatewaySection(name="gw-ahead"))
        app = create_web_app(config, clock=ahead, store=store, features=[add_cluster])
        checks = await _health(app)
    assert checks["cluster"]["status"] == "failing"
    assert "clock is 30" in checks["cluster"]["reason"]
    assert "ahead of the database server's" in checks["cluster"]["reason"]


async def test_the_only_gateway_on_sqlite_leads(tmp_path: Path, clock: ManualClock) -> None:
    """On SQLite the one gateway always leads, and /health says so."""
    async with Store.open(tmp_path / "gateway.sqlite3", clock) as store:
        config = Config(gateway=GatewaySection(name="solo"))
        app = create_web_app(config, clock=clock, store=store, features=[add_cluster])
        checks = await _health(app)
    assert checks["cluster"] == {"status": "ok", "name": "solo", "leader": "solo"}


async def _health(app: web.Application) -> dict[str, dict[str, str]]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as response:
                return dict((await response.json())["checks"])
    finally:
        await runner.cleanup()


# -- clocks ---------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_gateway_five_minutes_ahead_takes_no_live_lease(postgres_url: str) -> None:
    """A gateway whose clock runs 5 minutes ahead of the database's claims nothing: not a
    live lease of another gateway (which its clock says has ended), not a queued text;
    its clock check fails for /health, naming the offset."""
    async with (
        Store.open(postgres_url, Clock()) as store_a,
        Store.open(postgres_url, AheadClock(timedelta(minutes=5))) as store_b,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.1) as tw,
        running_gateway(store_a, tw, run_outbox=False) as gw_a,
        running_gateway(store_b, tw, run_outbox=False) as gw_b,
        member(postgres_url, "gw-a", store_a.clock) as lead_a,
        member(postgres_url, "gw-b", store_b.clock) as lead_b,
    ):
        held = await order(gw_a, "held-by-a")
        queued = await order(gw_a, "queued", "LZ2026-000999")
        [claimed] = await store_a.sms.claim_due(1, owner="gw-a", lease=timedelta(minutes=1))
        assert claimed.id == held.id
        lead_a.check()
        with pytest.raises(ClockSkewed, match=r"clock is 30\d\.\ds ahead"):
            lead_b.check()
        async with OutboxWorker(gw_b.sms, gw_b.app[SMS_PROVIDER], cluster=lead_b) as skewed:
            rounds = skewed.supervisor.loops["outbox"]
            await until(lambda: rounds.rounds >= 5)
        assert await lease_owner(store_a, held) == "gw-a"
        row = await store_a.sms.get(queued.id)
        assert row is not None and row.status == "queued"
    assert tw.messages == []


async def test_another_gateways_lease_is_taken_only_past_the_skew_margin(
    engine_store: Store, clock: ManualClock
) -> None:
    """Past its end another gateway's lease is left to it for the clock-skew margin, then
    taken (for a look-up); a gateway's own expired lease is taken at once."""
    store = engine_store
    sms = _sms_service(store, clock)
    for key in ("a", "b"):
        await sms.enqueue(
            to=CHIEF, template="rectification_order", variables=ORDER_VARS, idempotency_key=key
        )
    await store.sms.claim_due(1, owner="gw-a", lease=timedelta(minutes=1))
    await store.sms.claim_due(1, owner="gw-b", lease=timedelta(minutes=1))
    clock.advance(timedelta(minutes=1, seconds=30))
    margin = 2 * SKEW
    [own] = await store.sms.claim_due(5, owner="gw-b", others_after=margin)
    assert own.idempotency_key == "b" and own.needs_lookup
    assert await store.sms.next_due("gw-b", margin) == clock.now() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    [taken] = await store.sms.claim_due(5, owner="gw-b", others_after=margin)
    assert taken.idempotency_key == "a" and taken.needs_lookup


def _sms_service(store: Store, clock: Clock) -> SmsService:
    config = config_module.load()
    return SmsService(
        store.sms, load_templates(), clock, config.sms, sender="+8610690000",
        status_callback_url=None,
    )  # fmt: skip


# -- callback attempts -----------------------------------------------------------------------


@pytest.fixture
async def callbacks(engine_store: Store, clock: ManualClock) -> dict[str, CallbackService]:
    """Two gateways' callback services (gw-a, gw-b) on one store, the demo city loaded."""
    await load_seed(engine_store.units, demo_city(), "demo-city.toml")
    config = config_module.load()
    sms = _sms_service(engine_store, clock)
    return {
        name: CallbackService(
            engine_store,
            clock,
            load_catalogue(),
            config.callbacks,
            sms,
            owner=name,
            others_after=2 * SKEW,
        )
        for name in ("gw-a", "gw-b")
    }


async def test_a_restart_recovers_only_its_own_calls(
    engine_store: Store, clock: ManualClock, callbacks: dict[str, CallbackService]
) -> None:
    """At its start a gateway marks unknown the calls it placed itself; a call placed by
    another gateway, alive, stays as that gateway left it."""
    for ref, number in (("XZ-A", "139 1234 5678"), ("XZ-B", "139 1234 5679")):
        await callbacks["gw-a"].serve(_item(ref, number))
    # The PBX's lines are counted in the store: one for gw-a's call, a second for gw-b's.
    [(_, mine)] = await callbacks["gw-a"].claim_calls(1, "main")
    [(_, theirs)] = await callbacks["gw-b"].claim_calls(2, "main")
    hold = clock.now() + timedelta(minutes=30)
    await engine_store.callbacks.recover_interrupted(hold, owner="gw-a")
    assert await _outcome(engine_store, mine) == "unknown"
    assert await _outcome(engine_store, theirs) == "placed"
    owners = await engine_store.db.fetchall("SELECT id, owner FROM callback_attempts ORDER BY id")
    assert [tuple(r) for r in owners] == [(mine, "gw-a"), (theirs, "gw-b")]


async def test_a_dead_gateways_call_is_settled_once_it_cannot_be_up(
    engine_store: Store, clock: ManualClock, callbacks: dict[str, CallbackService]
) -> None:
    """A call placed by a gateway that died (no outcome, never restarted) is settled by
    another gateway's round as unknown once its up_until and the skew margin have
    passed, not before; the item is due again."""
    served = await callbacks["gw-a"].serve(_item("XZ-DEAD", "139 1234 5678"))
    [(_, attempt)] = await callbacks["gw-a"].claim_calls(1, "main")
    row = await engine_store.db.fetchone(
        "SELECT up_until FROM callback_attempts WHERE id = ?", (attempt,)
    )
    up_until = datetime.fromisoformat(row[0])
    survivor = callbacks["gw-b"]
    clock.advance(up_until - clock.now())
    assert await survivor.settle_calls() == 0  # up_until passed, the margin not yet
    assert await callbacks["gw-a"].settle_calls() == 0  # its own: its call still in flight
    clock.advance(2 * SKEW)
    assert await survivor.settle_calls() == 1
    assert await _outcome(engine_store, attempt) == "unknown"
    item = await engine_store.callbacks.item(served.id)
    assert item is not None and item.status == "pending"


def _item(ref: str, number: str) -> ServedItemInput:
    return ServedItemInput(
        reference=ref,
        kind="id_card",
        unit="LZ-DC-01",
        citizen_number=number,
        served_at="2026-11-28T09:00:00+08:00",
    )


async def _outcome(store: Store, attempt_id: int) -> str:
    attempt = await store.callbacks.attempt(attempt_id)
    assert attempt is not None
    return attempt.outcome


async def test_another_gateways_answered_call_is_closed_only_past_the_skew_margin(
    engine_store: Store, clock: ManualClock, callbacks: dict[str, CallbackService]
) -> None:
    """An answered call of another gateway whose survey never began is closed as
    no_rating by this gateway only the clock-skew margin after its own would be."""
    await callbacks["gw-a"].serve(_item("XZ-ANS", "139 1234 5678"))
    [(item, attempt)] = await callbacks["gw-a"].claim_calls(1, "main")
    assert await callbacks["gw-a"].call_finished(
        item, attempt, DialResult(CallOutcome.ANSWERED, "1.1")
    )
    clock.advance(timedelta(seconds=SURVEY_START_SECONDS + 1))
    assert await callbacks["gw-b"].settle_calls() == 0
    assert await _outcome(engine_store, attempt) == "answered"
    clock.advance(2 * SKEW)
    assert await callbacks["gw-b"].settle_calls() == 1
    assert await _outcome(engine_store, attempt) == "no_rating"


async def _hang_up(channel: AgiChannel) -> None:
    await channel.execute("HANGUP")


@pytest.mark.postgres
async def test_a_gateway_whose_clock_is_ahead_places_no_call(postgres_url: str) -> None:
    """Two gateways' callback schedulers on one database and one simulated PBX: the one
    whose clock runs 5 minutes ahead claims no call (nor leads); the one in step with
    the database places the due call, under its name."""
    async with SimulatedPbx(SimConfig(port=0, secret=SECRET, time_scale=0.01)) as pbx:
        config = config_module.load(
            env={"GATEWAY_PBX_MAIN_SECRET": SECRET},
            overrides=[
                f"pbx.main.port={pbx.port}",
                "pbx.main.auth=plain",
                "callbacks.windows=00:00-24:00",
                "callbacks.poll_seconds=0.05",
            ],
        )
        async with (
            Store.open(postgres_url, Clock()) as store_a,
            Store.open(postgres_url, AheadClock(timedelta(minutes=5))) as store_b,
            member(postgres_url, "gw-a", store_a.clock) as lead_a,
            member(postgres_url, "gw-b", store_b.clock) as lead_b,
            PbxPool(config.pbx, agi_handler=_hang_up) as pool,
        ):
            await load_seed(store_a.units, demo_city(), "demo-city.toml")
            services = {
                lead.name: CallbackService(
                    store,
                    store.clock,
                    load_catalogue(),
                    config.callbacks,
                    _sms_service(store, store.clock),
                    owner=lead.name,
                    others_after=lead.skew.margin,
                )
                for store, lead in ((store_a, lead_a), (store_b, lead_b))
            }
            served = (store_a.clock.now() - timedelta(days=4)).isoformat()
            await services["gw-a"].serve(
                ServedItemInput("XZ-1", "minor_injury_case", "LZ-DC-01", "139 1234 5678", served)
            )
            await pool["main"].wait_connected(5)
            dialer = AmiDialer(pool, config)
            skewed = CallbackScheduler(services["gw-b"], dialer, cluster=lead_b)
            await skewed.start()
            try:
                calls = skewed.supervisor.loops["calls"]
                await until(lambda: calls.rounds >= 5)
            finally:
                await skewed.aclose()
            assert skewed.placed == 0 and not lead_b.leading and lead_a.leading
            in_step = CallbackScheduler(services["gw-a"], dialer, cluster=lead_a)
            await in_step.start()
            try:
                await until(lambda: in_step.placed == 1)
            finally:
                await in_step.aclose()
            owners = await store_a.db.fetchall("SELECT owner FROM callback_attempts")
    assert [r[0] for r in owners] == ["gw-a"]
