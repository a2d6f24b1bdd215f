"""Messages per second through the outbox into the simulated Twilio, over loopback.

Baseline, measured in the same run: the bare twilio client calling
``messages.create_async`` in a loop with the same concurrency. The outbox adds, per
text, a claim transaction, a commit of the provider's sid and an event row in
SQLite; the ratio says what durability costs.

    python bench/sms_outbox.py [--texts 2000] [--concurrency 8]
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
from gateway.sms.service import SmsService
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


async def outbox(
    tw: SimulatedTwilio, texts: int, concurrency: int, folder: Path
) -> tuple[float, float]:
    config = SmsSection(
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
    clock = Clock()
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
            start = time.perf_counter()
            for i in range(texts):
                await service.enqueue(
                    to=f"+86139{i % 100:08d}",
                    template="rectification_order",
                    variables={**VARS, "case_ref": f"LZ2026-{i:06d}"},
                    idempotency_key=f"bench-{i}",
                )
            enqueue_rate = texts / (time.perf_counter() - start)
            accepted_before = tw.stats.accepted
            start = time.perf_counter()
            async with OutboxWorker(service, provider) as worker:
                while True:
                    if worker.sent >= texts:
                        break
                    await asyncio.sleep(0.005)
            rate = texts / (time.perf_counter() - start)
            assert tw.stats.accepted - accepted_before == texts
    return rate, enqueue_rate


async def main(texts: int, concurrency: int) -> None:
    # The simulator's delivery walk is slowed so its callbacks stay out of the timing.
    async with SimulatedTwilio(ACCOUNT, TOKEN, time_scale=1000.0) as tw:
        base = await baseline(tw, texts, concurrency)
        with tempfile.TemporaryDirectory() as folder:
            rate, enqueue_rate = await outbox(tw, texts, concurrency, Path(folder))
    print(f"texts: {texts}, concurrency: {concurrency}, simulated Twilio on loopback")
    print(f"baseline  bare twilio create_async:  {base:8.1f} msg/s")
    print(f"outbox    claim → send → commit:     {rate:8.1f} msg/s")
    print(f"ratio     outbox / baseline:         {rate / base:8.2f}")
    print(f"enqueue   render + insert (alone):   {enqueue_rate:8.1f} msg/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.texts, args.concurrency))
