"""Messages per second through the outbox into the simulated Twilio, over loopback.

Baseline, measured in the same run: the bare twilio client calling
``messages.create_async`` in a loop with the same concurrency. The outbox adds
claims (a batch per transaction), the provider's sids (written in batches) and event
rows in SQLite; the ratio says what durability costs. The outbox's time runs until
its worker has stopped, so the last batch of sids is written inside it.

Enqueueing is measured both ways on separate stores: one ``enqueue`` (one
transaction) per text, and ``enqueue_many`` in batches of ``--batch`` texts.

    python bench/sms_outbox.py [--texts 2000] [--concurrency 8] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from twilio.rest import Client

from gateway.clock import Clock
from gateway.config import Secret, SmsSection
from gateway.sim.twilio import SimulatedTwilio
from gateway.sms.outbox import OutboxWorker
from gateway.sms.provider import GatewayHttpClient, TwilioProvider
from gateway.sms.service import SmsService, TextOrder
from gateway.sms.templates import load_templates
from gateway.store import Store

ACCOUNT = "AC" + "b2" * 16
TOKEN = "bench-token"
FROM = "+8610690000001"
VARS = {
    "unit": "城关派出所",
    "business": "轻微伤害案件办理",
    "reason": "案件进展慢",
    "citizen": "+8613800138000",
    "deadline": "12月3日18时",
}


async def baseline(tw: SimulatedTwilio, texts: int, concurrency: int) -> float:
    http = GatewayHttpClient(timeout=10.0)
    client = Client(ACCOUNT, TOKEN, http_client=http, environment={})
    client.api.base_url = tw.base_url
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(texts):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.messages.create_async(
                to=f"+86139{i % 100:08d}", from_=FROM, body=f"【鲁州公安】基线 {i}"
            )

    start = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(sender())
    finally:
        await http.close()
    return texts / (time.perf_counter() - start)


def _config(tw: SimulatedTwilio, concurrency: int) -> SmsSection:
    return SmsSection(
        api_base_url=tw.base_url,
        account_sid=ACCOUNT,
        auth_token=Secret(TOKEN),
        from_number=FROM,
        rate_per_second=1_000_000.0,
        workers=concurrency,
        poll_interval=0.05,
        quiet_start="00:00",
        quiet_end="00:00",
    )


def _order(i: int) -> TextOrder:
    return TextOrder(
        to=f"+86139{i % 100:08d}",
        template="rectification_order",
        variables={**VARS, "case_ref": f"LZ2026-{i:06d}"},
        idempotency_key=f"bench-{i}",
    )


async def enqueue_single(service: SmsService, texts: int) -> float:
    start = time.perf_counter()
    for i in range(texts):
        order = _order(i)
        await service.enqueue(
            to=order.to,
            template=order.template,
            variables=order.variables,
            idempotency_key=order.idempotency_key,
        )
    return texts / (time.perf_counter() - start)


async def enqueue_batched(service: SmsService, texts: int, batch: int) -> float:
    start = time.perf_counter()
    for first in range(0, texts, batch):
        await service.enqueue_many([_order(i) for i in range(first, min(texts, first + batch))])
    return texts / (time.perf_counter() - start)


async def outbox(
    tw: SimulatedTwilio, texts: int, concurrency: int, batch: int, folder: Path
) -> tuple[float, float, float]:
    """(outbox msg/s, single enqueue msg/s, batched enqueue msg/s)."""
    config = _config(tw, concurrency)
    clock = Clock()
    async with Store.open(folder / "single.sqlite3", clock) as store:
        service = SmsService(
            store.sms, load_templates(), clock, config, sender=FROM, status_callback_url=None
        )
        single = await enqueue_single(service, texts)
    async with Store.open(folder / "bench.sqlite3", clock) as store:
        async with TwilioProvider.open(config) as provider:
            service = SmsService(
                store.sms,
                load_templates(),
                clock,
                config,
                sender=provider.sender,
                status_callback_url=None,
            )
            batched = await enqueue_batched(service, texts, batch)
            accepted_before = tw.stats.accepted
            start = time.perf_counter()
            async with OutboxWorker(service, provider) as worker:
                while True:
                    if worker.sent >= texts:
                        break
                    await asyncio.sleep(0.005)
            rate = texts / (time.perf_counter() - start)
            assert tw.stats.accepted - accepted_before == texts
            counts = await store.sms.counts()
            assert counts.get("sending", 0) + counts.get("sent", 0) + counts.get(
                "delivered", 0
            ) == texts and not await store.sms.recent(status="queued", limit=1)
    return rate, single, batched


async def main(texts: int, concurrency: int, batch: int) -> None:
    # The simulator's delivery walk is slowed so its callbacks stay out of the timing.
    async with SimulatedTwilio(ACCOUNT, TOKEN, time_scale=1000.0) as tw:
        base = await baseline(tw, texts, concurrency)
        with tempfile.TemporaryDirectory() as folder:
            rate, single, batched = await outbox(tw, texts, concurrency, batch, Path(folder))
    print(f"texts: {texts}, concurrency: {concurrency}, simulated Twilio on loopback")
    print(f"baseline  bare twilio create_async:  {base:8.1f} msg/s")
    print(f"outbox    claim → send → commit:     {rate:8.1f} msg/s")
    print(f"ratio     outbox / baseline:         {rate / base:8.2f}")
    print(f"enqueue   one text per transaction:  {single:8.1f} msg/s")
    print(f"enqueue   {batch} texts per transaction: {batched:8.1f} msg/s")
    print(
        f"sms_outbox: baseline={base:.0f} outbox={rate:.0f} ratio={rate / base:.2f}"
        f" enqueue_single={single:.0f} enqueue_batch={batched:.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.texts, args.concurrency, args.batch))
