"""Callbacks per hour and texts per second with 1, 2 and 4 gateways on one PostgreSQL
database, against the single gateway on its SQLite file, measured in the same run.

    python bench/gateways.py [--items 300] [--texts 3000] [--counts 1,2,4]

Each configuration runs real ``gateway run`` processes, on a fresh store, against the
simulated Twilio and four simulated PBXs in a peers process (``tests/chaos/peers.py``):
gateway ``i`` of ``n`` is logged in to PBXs ``i``, ``i + n``…, so the PBXs, their lines
and the citizens stay the same whatever the number of gateways. Two figures each:

* **texts per second**: ``--texts`` texts are queued in the store at once (as a day's
  orders and notices would be) and timed until the simulated Twilio has created the
  last of them;
* **callbacks per hour**: ``--items`` served items, all due, are reported, and the
  callbacks (Originates counted at the simulated PBXs) are timed until every item is
  settled (rated, texted or unreachable) and no call is up.

The baseline is the first row: one gateway on SQLite. The simulators run on the same
machine and share its cores with the gateways and PostgreSQL: on a small machine the
figures say where the machine, not the gateway, stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from chaos.run import (  # noqa: E402
    ACCOUNT,
    FINAL_ITEM_STATES,
    StoreReader,
    base_values,
    fresh_database,
    make_fleet,
    peers_process,
    served_items,
)
from postgres_cluster import start_cluster, stop_cluster  # noqa: E402

from gateway.clock import Clock  # noqa: E402
from gateway.config import Secret, SmsSection  # noqa: E402
from gateway.sms.service import SmsService, TextOrder  # noqa: E402
from gateway.sms.templates import load_templates  # noqa: E402
from gateway.store import Store  # noqa: E402

PBXES = ("pa", "pb", "pc", "pd")
LINES = 12  # per PBX: 48 lines in all, whatever the number of gateways
SENDER = "+8610690000001"


@dataclass
class Figures:
    label: str
    texts_per_second: float
    callbacks_per_hour: float
    callbacks: int
    seconds: float


async def _queue_texts(location: Path | str, texts: int) -> None:
    """Queue ``texts`` rectification-order texts in the store, in batches, as the
    gateway's own service would."""
    config = SmsSection(
        account_sid=ACCOUNT, auth_token=Secret("x"), from_number=SENDER, quiet_start="00:00",
        quiet_end="00:00",
    )  # fmt: skip
    clock = Clock()
    async with Store.open(location, clock) as store:
        service = SmsService(
            store.sms, load_templates(), clock, config, sender=SENDER, status_callback_url=None
        )
        for first in range(0, texts, 500):
            await service.enqueue_many(
                [
                    TextOrder(
                        to=f"+86139{i % 1000:08d}",
                        template="rectification_order",
                        variables={
                            "unit": "城关派出所",
                            "business": "轻微伤害案件办理",
                            "reason": "案件进展慢",
                            "citizen": "+8613800138000",
                            "deadline": "12月3日18时",
                            "case_ref": f"LZ2026-{i:06d}",
                        },
                        idempotency_key=f"bench-{i}",
                    )
                    for i in range(first, min(texts, first + 500))
                ]
            )


async def _counts(http: aiohttp.ClientSession, control: str) -> dict[str, object]:
    async with http.get(control + "/counts") as response:
        response.raise_for_status()
        return dict(await response.json())


async def measure(
    label: str, gateways: int, store_url: str | None, items: int, texts: int
) -> Figures:
    secret, token, api = (secrets.token_urlsafe(16) for _ in range(3))
    data = Path(tempfile.mkdtemp(prefix="bench-gateways-"))
    served_by = {i: [p for j, p in enumerate(PBXES) if j % gateways == i] for i in range(gateways)}
    try:
        async with (
            peers_process(7, secret, token, 0.05, list(PBXES)) as ports,
            aiohttp.ClientSession() as http,
        ):
            control = f"http://127.0.0.1:{ports['control']}"
            values = {
                **base_values(data, ports["twilio"]),
                "gateway.log_level": "WARNING",
                "sms.rate_per_second": "1000",
                "callbacks.max_concurrent_calls": str(LINES * len(PBXES)),
                "callbacks.poll_seconds": "0.2",
                "callbacks.retry_spacing_minutes": "0.02",
            }
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "GATEWAY_SMS_AUTH_TOKEN": token,
                "GATEWAY_WEB_API_TOKEN": api,
                **{f"GATEWAY_PBX_{name.upper()}_SECRET": secret for name in PBXES},
            }
            if store_url:
                env["GATEWAY_STORE_URL"] = store_url
            fleet = make_fleet(data, ports["ami"], served_by, values, env, LINES)
            location: Path | str = store_url or data / "gateway.sqlite3"
            reader = StoreReader(location)
            try:
                await fleet[0].command("db", "seed")
                for gateway in fleet:
                    await gateway.start(http)
                # Texts: queued at once, timed until Twilio holds the last one.
                before = int(str((await _counts(http, control))["messages"]))
                await _queue_texts(location, texts)
                start = time.perf_counter()
                while True:
                    if int(str((await _counts(http, control))["messages"])) - before >= texts:
                        break
                    await asyncio.sleep(0.05)
                texts_per_second = texts / (time.perf_counter() - start)
                # Callbacks: all due at once, timed until every item is settled.
                stations = [
                    r[0] for r in await reader.rows("SELECT code FROM units WHERE kind='station'")
                ]
                served = served_items(random.Random(7), items, stations)
                async with http.post(
                    control + "/citizens", json=sorted({i["citizen_number"] for i in served})
                ) as response:
                    response.raise_for_status()
                originated = int(str((await _counts(http, control))["originates"]))
                start = time.perf_counter()
                async with http.post(
                    fleet[0].url + "/api/served-items",
                    json=served,
                    headers={"Authorization": f"Bearer {api}"},
                ) as response:
                    if response.status >= 300 and response.status != 207:
                        raise RuntimeError(f"served items refused: {await response.text()}")
                marks = ",".join("?" * len(FINAL_ITEM_STATES))
                while True:
                    counts = await _counts(http, control)
                    unsettled = await reader.value(
                        f"SELECT count(*) FROM served_items WHERE status NOT IN ({marks})",
                        FINAL_ITEM_STATES,
                    )
                    if unsettled == 0 and counts["live_channels"] == 0:
                        break
                    await asyncio.sleep(0.2)
                seconds = time.perf_counter() - start
                calls = int(str(counts["originates"])) - originated
                for gateway in fleet:
                    await gateway.stop()
                return Figures(label, texts_per_second, calls / seconds * 3600, calls, seconds)
            finally:
                for gateway in fleet:
                    await gateway.kill()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300, help="served items to call back")
    parser.add_argument("--texts", type=int, default=3000, help="texts to send")
    parser.add_argument("--counts", default="1,2,4", help="gateways on PostgreSQL (1,2,4)")
    args = parser.parse_args()
    rows = [asyncio.run(measure("SQLite, 1 gateway", 1, None, args.items, args.texts))]
    cluster = start_cluster()
    try:
        for count in (int(c) for c in args.counts.split(",")):
            name = f"bench_{count}"
            asyncio.run(fresh_database(cluster.url(), name))
            label = f"PostgreSQL, {count} gateway{'s' if count > 1 else ''}"
            rows.append(
                asyncio.run(measure(label, count, cluster.url(name), args.items, args.texts))
            )
    finally:
        stop_cluster(cluster)
    base = rows[0]
    print(f"{'store, gateways':<26} {'texts/s':>9} {'× base':>7} {'callbacks/h':>12} {'× base':>7}")
    for row in rows:
        print(
            f"{row.label:<26} {row.texts_per_second:>9.0f} "
            f"{row.texts_per_second / base.texts_per_second:>7.2f} "
            f"{row.callbacks_per_hour:>12.0f} "
            f"{row.callbacks_per_hour / base.callbacks_per_hour:>7.2f}"
            f"   ({row.callbacks} calls in {row.seconds:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
