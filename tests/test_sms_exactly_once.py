"""Fault injection: 1,000 texts through 429 storms, 5xx, dropped connections and a
worker killed with SIGKILL mid-flight; each text reaches Twilio exactly once."""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

from sms_support import (
    ACCOUNT,
    FROM,
    ORDER_VARS,
    TOKEN,
    free_socket,
    gateway_process,
    running_gateway,
    until,
)

from gateway.clock import Clock
from gateway.sim.twilio import SimulatedTwilio
from gateway.store import Store

TEXTS = 1000
RECIPIENTS = 50

FAST = {
    "rate_per_second": 5000.0,
    "workers": 8,
    "backoff_min": 0.01,
    "backoff_max": 0.1,
    "lookup_delay": 0.3,
    "poll_interval": 0.05,
    "status_refresh": 0.5,
    "http_timeout": 2.0,
    "max_attempts": 30,
}


def _settings(tw: SimulatedTwilio, db: Path, port: int) -> list[str]:
    values = {
        "sms.api_base_url": tw.base_url,
        "sms.account_sid": ACCOUNT,
        "sms.auth_token": TOKEN,
        "sms.from_number": FROM,
        "sms.quiet_start": "00:00",
        "sms.quiet_end": "00:00",
        "store.path": str(db),
        "web.port": str(port),
        "web.public_url": f"http://127.0.0.1:{port}",
        **{f"sms.{k}": str(v) for k, v in FAST.items()},
    }
    out: list[str] = []
    for key, value in values.items():
        out += ["--set", f"{key}={value}"]
    return out


async def _inject_faults(tw: SimulatedTwilio, stop: asyncio.Event) -> None:
    """Per 20 creates: a burst of three 429s; per 40 a 503; per 60 a drop after accept."""
    seen = tw.stats.creates
    while not stop.is_set():
        if tw.stats.creates - seen >= 20:
            seen = tw.stats.creates
            tw.faults.burst_429(3, retry_after=0.01)
            if seen // 20 % 2 == 0:
                tw.faults.fail_5xx(1, status=503)
            if seen // 20 % 3 == 0:
                tw.faults.drop(1, after_accept=True)
        await asyncio.sleep(0.005)
    tw.faults.clear()


async def _all_delivered(store: Store) -> bool:
    return (await store.sms.counts()).get("delivered", 0) >= TEXTS


async def test_thousand_texts_exactly_once_through_faults_and_a_kill(tmp_path: Path) -> None:
    """Every one of 1,000 texts is accepted by Twilio exactly once and ends delivered."""
    db = tmp_path / "gateway.sqlite3"
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the worker process binds it; the restarted gateway binds it again
    async with (
        Store.open(db, Clock()) as store,
        SimulatedTwilio(ACCOUNT, TOKEN, time_scale=0.2) as tw,
    ):
        # 1. The orders, in the store before any network call.
        async with running_gateway(store, tw, run_outbox=False) as gw:
            for i in range(TEXTS):
                await gw.sms.enqueue(
                    to=f"+86139{i % RECIPIENTS:08d}",
                    template="rectification_order",
                    variables={**ORDER_VARS, "case_ref": f"LZ2026-{i:06d}"},
                    idempotency_key=f"order-{i}",
                )
        # 2. A worker process sends through faults and is killed mid-flight.
        proc = await gateway_process(
            *_settings(tw, db, port), "sms", "run", output=asyncio.subprocess.DEVNULL
        )
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_inject_faults(tw, stop))
                await until(lambda: tw.stats.accepted >= TEXTS // 3, 60)
                tw.faults.slow(0.3)  # requests in flight when the kill comes
                await asyncio.sleep(0.1)
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                tw.faults.slow(0.0)
                stop.set()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        interrupted = (await store.sms.counts()).get("sending", 0)
        before_restart = tw.stats.accepted
        # 3. Restart in-process on the same port; faults go on until every text is out.
        stop = asyncio.Event()
        async with running_gateway(store, tw, port=port, **FAST) as gw2:
            async with asyncio.TaskGroup() as group:
                group.create_task(_inject_faults(tw, stop))
                await until(lambda: _all_delivered(store), 120)
                stop.set()
            reconciled = gw2.worker.reconciled

    bodies = collections.Counter(m.body for m in tw.messages)
    assert len(bodies) == TEXTS
    assert max(bodies.values()) == 1, [b for b, n in bodies.items() if n > 1][:3]
    assert len(tw.messages) == TEXTS
    assert interrupted > 0 and before_restart < TEXTS
    assert tw.stats.rejected_429 > 0 and tw.stats.failed_5xx > 0 and tw.stats.dropped > 0
    assert reconciled > 0
    print(
        f"\n{TEXTS} texts, {len(tw.messages)} accepted by Twilio, each once; "
        f"{tw.stats.rejected_429} × 429, {tw.stats.failed_5xx} × 5xx, {tw.stats.dropped} dropped, "
        f"{interrupted} mid-send at the kill, {reconciled} found by look-up after restart"
    )
