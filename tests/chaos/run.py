"""The chaos run: a callback day and hotline traffic, the gateway in its own process, under faults.

    python tests/chaos/run.py --seeds 20 --items 300 --seconds 300   # the long form

The simulated PBX and Twilio run in a second process (``peers.py``), the gateway
(``gateway run``) in a third, on one SQLite store in a temporary folder. At moments a
seeded random generator picks, the run ``kill -9``s the gateway and restarts it, cuts
the AMI link, starts Twilio 429 storms, 5xx and dropped responses, and holds the
store's write lock from outside (a locked database). Then it lets the gateway finish
and counts, at the simulators and in the store:

* every served item ended rated, asked by text or unreachable (nothing left calling);
* no citizen had two calls up at once;
* no callback attempt was dialled twice;
* every text row was created at Twilio exactly once (none missing, none doubled);
* every dissatisfied rating opened an order, and every order was texted at every
  level it reached;
* every call, hotline or callback, has one complete call record.

``run_chaos`` returns a :class:`ChaosReport`; the test command runs one short seed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gateway.callbacks.catalogue import load_catalogue
from gateway.demo.traffic import random_mobile
from gateway.store.db import param_marks
from gateway.store.postgres import WRITE_LOCK, translate

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers.py"
ACCOUNT = "AC" + "c4" * 16
SENDER = "+8610690000001"
FINAL_ITEM_STATES = ("rated", "sms", "unreachable", "skipped")
# A call whose first events reached the gateway less than this before a kill -9, and
# which ended before the restart, may have no record: they were in flight or in the
# call log's buffer (flushed every 0.2 s) of the process that was killed.
KILL_MARGIN = 1.0
FINAL_TEXT_STATES = ("sent", "delivered", "undelivered", "failed")


@dataclass
class ChaosReport:
    seed: int
    items: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    item_states: Counter[str] = field(default_factory=Counter)
    calls: int = 0  # callbacks originated
    hotline_calls: int = 0
    texts_rows: int = 0
    texts_at_twilio: int = 0
    orders: int = 0
    problems: list[str] = field(default_factory=list)
    kept: Path | None = None  # the run's folder, kept when it found problems
    # (from, to, PBXs) in the monotonic clock: a gateway killed or an AMI link cut, and
    # the PBXs that no gateway watched meanwhile
    outages: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    unobservable: int = 0  # calls that lived only inside an outage
    # when a gateway was killed, and the PBXs no other gateway watched
    kills: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    calls_by_pbx: Counter[str] = field(default_factory=Counter)  # callbacks per PBX
    # calls that began just before a kill -9 and ended before the restart: their first
    # events were in flight or in the killed process's call-log buffer (0.2 s)
    lost_at_kill: int = 0

    def line(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        states = " ".join(f"{k}={v}" for k, v in sorted(self.item_states.items()))
        return (
            f"chaos seed={self.seed}: items={self.items} ({states}) "
            f"callbacks={self.calls}{self._per_pbx()} hotline={self.hotline_calls} "
            f"(calls only inside an outage: {self.unobservable}, "
            f"begun just before a kill and over before the restart: {self.lost_at_kill}) "
            f"texts={self.texts_rows} rows/{self.texts_at_twilio} at twilio "
            f"orders={self.orders} faults: {faults or 'none'}; "
            f"{'OK' if not self.problems else f'{len(self.problems)} PROBLEMS in {self.kept}'}"
        )

    def _per_pbx(self) -> str:
        if len(self.calls_by_pbx) < 2:
            return ""
        return " (" + " ".join(f"{k}={v}" for k, v in sorted(self.calls_by_pbx.items())) + ")"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """``gateway run`` in its own process, killed and restarted at will."""

    def __init__(self, settings: list[str], env: dict[str, str], log: Path) -> None:
        self.settings = settings
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.pbxes: list[str] = []  # the PBXs it is logged in to

    async def command(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *self.settings,
            *args,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args)} failed: {out.decode()[-2000:]}")
        return out.decode()

    async def start(self, http: aiohttp.ClientSession) -> None:
        with self.log.open("ab") as sink:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                *self.settings,
                "run",
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=sink,
            )
        async with asyncio.timeout(60):
            while True:
                if self.proc.returncode is not None:
                    tail = self.log.read_text("utf-8", "replace")[-3000:]
                    raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{tail}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/health") as response:
                        if response.status in (200, 503):
                            return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill()


@contextlib.asynccontextmanager
async def peers_process(
    seed: int,
    secret: str,
    token: str,
    scale: float,
    pbxes: list[str],
    agi: dict[str, str] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEERS),
        "--seed",
        str(seed),
        # "--x=value": a random secret may begin with "-", which argparse would take
        # for an option of its own.
        f"--secret={secret}",
        f"--account={ACCOUNT}",
        f"--token={token}",
        "--time-scale",
        str(scale),
        f"--pbxes={','.join(pbxes)}",
        "--agi=" + ",".join(f"{name}={url}" for name, url in (agi or {}).items()),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("the peers process ended before listening")
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def served_items(rng: random.Random, count: int, stations: list[str]) -> list[dict[str, str]]:
    kinds = load_catalogue().called_back()
    now = datetime.now(UTC)
    used: set[str] = set()
    items = []
    for index in range(count):
        kind = rng.choice(kinds)
        served = now - kind.callback_delay - timedelta(minutes=rng.uniform(1, 30))
        number = random_mobile(rng, used)
        items.append(
            {
                "reference": f"CHAOS-{index + 1:05d}",
                "kind": kind.code,
                "unit": rng.choice(stations),
                "citizen_number": number,
                "served_at": served.isoformat(),
                "citizen_name": "测试",
            }
        )
    # A few citizens served twice: their calls must never overlap.
    for twin in items[: max(1, count // 20)]:
        items.append({**twin, "reference": twin["reference"] + "-B"})
    return items


class StoreReader:
    """The store, read from outside for counting: a SQLite file or a PostgreSQL URL."""

    def __init__(self, location: Path | str) -> None:
        self.location = location

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if isinstance(self.location, str):
            conn = await asyncpg.connect(self.location)
            try:
                return [tuple(r) for r in await conn.fetch(translate(sql), *params)]
            finally:
                await conn.close()

        def read() -> list[tuple[Any, ...]]:
            uri = f"file:{self.location}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                return list(conn.execute(sql, params).fetchall())

        return await asyncio.to_thread(read)

    async def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return (await self.rows(sql, params))[0][0]

    async def hold_write_lock(self, seconds: float) -> None:
        """Hold the store's write lock from outside, as another process would: SQLite's
        file lock, or the write lock every gateway's transaction takes on PostgreSQL."""
        if isinstance(self.location, str):
            conn = await asyncpg.connect(self.location)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                    await asyncio.sleep(seconds)
            finally:
                await conn.close()
            return

        def locked() -> None:
            conn = sqlite3.connect(self.location, timeout=30, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                time.sleep(seconds)
                conn.execute("COMMIT")
            finally:
                conn.close()

        await asyncio.to_thread(locked)


def pbx_tables(names: list[str], ports: dict[str, int], lines: int | None = None) -> str:
    """The ``[[pbx]]`` tables of a gateway's configuration file (``lines``: each PBX's
    trunk lines for callbacks; None: the default)."""
    return "".join(
        f'[[pbx]]\nname = "{name}"\nport = {ports[name]}\nreconnect_min = 0.2\n'
        f"reconnect_max = 2.0\nping_interval = 2.0\n"
        + (f"lines = {lines}\n" if lines is not None else "")
        + "\n"
        for name in names
    )


def base_values(data: Path, twilio_url: str) -> dict[str, str]:
    """The settings every gateway of a run shares (``--set`` keys): fast polls and
    backoffs, every hour a calling hour, the simulated Twilio."""
    return {
        "gateway.data_dir": str(data),
        "gateway.log_level": "INFO",
        "sms.api_base_url": twilio_url,
        "sms.account_sid": ACCOUNT,
        "sms.from_number": SENDER,
        "sms.quiet_start": "00:00",
        "sms.quiet_end": "00:00",
        "sms.poll_interval": "0.2",
        "sms.lookup_delay": "2",
        "sms.backoff_min": "0.5",
        "sms.backoff_max": "4",
        # A status callback posted while the gateway was down is lost, as with
        # Twilio; the outbox then asks Twilio itself, here after 5 s instead of 10 min.
        "sms.status_refresh": "5",
        "sms.max_attempts": "40",  # storms are compressed in time: allow as many tries
        "ivr.flows_dir": str(ROOT / "flows"),
        "ivr.prompts": str(ROOT / "recordings" / "prompts.yaml"),
        "callbacks.windows": "00:00-24:00",
        "callbacks.max_concurrent_calls": "8",
        "callbacks.max_attempts": "2",
        "callbacks.retry_spacing_minutes": "0.05",
        "callbacks.ring_timeout_seconds": "20",
        "callbacks.poll_seconds": "0.5",
    }


def make_fleet(
    data: Path,
    ami_ports: dict[str, int],
    served_by: dict[int, list[str]],
    values: dict[str, str],
    env: dict[str, str],
    lines: int | None = None,
    agi_ports: dict[int, int] | None = None,
) -> list[Gateway]:
    """One :class:`Gateway` per entry of ``served_by`` (gateway index → the PBXs it logs
    in to), each with its own configuration file, web port and, when there are several,
    its own name (``gw1``, ``gw2``…), on the settings ``values`` and the environment;
    ``agi_ports``: the FastAGI port of each gateway (index → port) that listens."""
    fleet = []
    for index, names in served_by.items():
        web_port = free_port()
        config = data / f"gateway-{index + 1}.toml"
        config.write_text(pbx_tables(names, ami_ports, lines), "utf-8")
        own = {
            **values,
            "web.port": str(web_port),
            "web.public_url": f"http://127.0.0.1:{web_port}",
        }
        if len(served_by) > 1:
            own["gateway.name"] = f"gw{index + 1}"
        if agi_ports and index in agi_ports:
            own["agi.listen_port"] = str(agi_ports[index])
        settings = ["--config", str(config)]
        settings += [a for k, v in own.items() for a in ("--set", f"{k}={v}")]
        gateway = Gateway(settings, env, data / f"run-output-{index + 1}.log")
        gateway.url = f"http://127.0.0.1:{web_port}"
        gateway.pbxes = names
        fleet.append(gateway)
    return fleet


async def run_chaos(
    seed: int,
    *,
    items: int = 40,
    seconds: float = 25.0,
    scale: float = 0.05,
    gateways: int = 1,
    pbxes: tuple[str, ...] = ("main",),
    store_url: str | None = None,
    shared_agi: str = "fastagi",
) -> ChaosReport:
    """One seeded chaos run (see the module docstring): ``gateways`` processes on one
    store (the SQLite file, or the PostgreSQL database at ``store_url``) against the
    simulated PBXs named ``pbxes``; gateway ``i`` is logged in to PBX ``i mod len(pbxes)``
    (one gateway: to every PBX). A PBX that several gateways log in to sends its calls
    by FastAGI to the first of them (``shared_agi="fastagi"``) or by AsyncAGI to all of
    them, one at a time serving (``"async"``); the others by AsyncAGI."""
    rng = random.Random(seed)
    report = ChaosReport(seed)
    secret, token, api = (secrets.token_urlsafe(16) for _ in range(3))
    data = Path(tempfile.mkdtemp(prefix="chaos-"))
    names = list(pbxes)
    served_by = {
        index: names if gateways == 1 else [names[index % len(names)]] for index in range(gateways)
    }
    # A PBX that several gateways log in to reaches one of them by FastAGI, as a real
    # site best does: the first one. (By AsyncAGI each call goes to every gateway and
    # the one that holds the PBX's lock serves it.)
    agi_ports: dict[int, int] = {}
    agi: dict[str, str] = {}
    for name in names:
        sharing = [i for i, served in served_by.items() if name in served]
        if len(sharing) > 1 and shared_agi == "fastagi":
            port = agi_ports.setdefault(sharing[0], free_port())
            agi[name] = f"agi://127.0.0.1:{port}/{name}"
    try:
        async with (
            peers_process(seed, secret, token, scale, names, agi) as ports,
            aiohttp.ClientSession() as http,
        ):
            control = f"http://127.0.0.1:{ports['control']}"
            values = base_values(data, ports["twilio"])
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "GATEWAY_SMS_AUTH_TOKEN": token,
                "GATEWAY_WEB_API_TOKEN": api,
                **{f"GATEWAY_PBX_{name.upper()}_SECRET": secret for name in names},
            }
            if store_url:
                env["GATEWAY_STORE_URL"] = store_url
            fleet = make_fleet(data, ports["ami"], served_by, values, env, agi_ports=agi_ports)
            records = StoreReader(store_url or data / "gateway.sqlite3")
            try:
                await fleet[0].command("db", "seed")
                stations = [
                    r[0] for r in await records.rows("SELECT code FROM units WHERE kind='station'")
                ]
                served = served_items(rng, items, stations)
                async with http.post(
                    control + "/citizens", json=sorted({i["citizen_number"] for i in served})
                ) as response:
                    response.raise_for_status()
                for gateway in fleet:
                    await gateway.start(http)
                headers = {"Authorization": f"Bearer {api}"}
                async with http.post(
                    fleet[0].url + "/api/served-items", json=served, headers=headers
                ) as response:
                    answer = await response.json()
                    if response.status >= 300 and response.status != 207:
                        raise RuntimeError(f"served items refused: {answer}")
                results = answer.get("results", []) if isinstance(answer, dict) else []
                report.items = sum(1 for r in results if r.get("result") == "added")
                refused = [r for r in results if r.get("result") != "added"]
                if refused:
                    raise RuntimeError(f"served items refused: {refused[:3]}")

                async with http.post(
                    control + "/hotline", params={"n": str(items), "per_minute": "20"}
                ) as response:
                    response.raise_for_status()

                kinds = ["kill", "ami-cut", "twilio-429", "twilio-5xx", "twilio-drop", "lock"]
                plan = rng.sample(kinds, len(kinds))  # every kind at least once, then at random
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    await asyncio.sleep(rng.uniform(0.5, 3.0))
                    fault = plan.pop() if plan else rng.choice(kinds)
                    report.faults[fault] += 1
                    if fault == "kill":
                        victim = rng.choice(fleet)
                        down = time.monotonic()
                        await victim.kill()
                        await asyncio.sleep(rng.uniform(0.1, 2.0))
                        await victim.start(http)
                        await _ami_back(http, control, fleet)
                        # Its PBXs were unobserved only if no other gateway serves them.
                        alone = [
                            p
                            for p in victim.pbxes
                            if not any(p in g.pbxes for g in fleet if g is not victim)
                        ]
                        report.outages.append((down, time.monotonic() + 0.5, tuple(alone)))
                        report.kills.append((down, tuple(alone)))
                    elif fault == "lock":
                        await records.hold_write_lock(rng.uniform(0.5, 6.0))
                    elif fault == "ami-cut":
                        pbx = rng.choice(names)
                        cut = time.monotonic()
                        async with http.post(
                            f"{control}/fault/{fault}", params={"pbx": pbx}
                        ) as response:
                            response.raise_for_status()
                        # back within reconnect_max (2 s) and a login
                        await asyncio.sleep(0.5)
                        await _ami_back(http, control, fleet)
                        report.outages.append((cut, max(cut + 3.0, time.monotonic() + 0.5), (pbx,)))
                    else:
                        async with http.post(
                            f"{control}/fault/{fault}", params={"n": str(rng.randint(1, 20))}
                        ) as response:
                            response.raise_for_status()

                # Let the gateways finish the day without faults.
                async with http.post(f"{control}/fault/clear") as response:
                    response.raise_for_status()
                # The longest an item may rightly take to end once the faults stop: a
                # call lost at a kill is over by the ring timeout and the survey's
                # start (80 s) after the restart, an item left between two writes is
                # moved on after 30 s, then a retry and its call (the loop ends as
                # soon as all is settled).
                settle_until = time.monotonic() + max(180.0, seconds * 3)
                while time.monotonic() < settle_until:
                    async with http.get(control + "/report") as response:
                        now_seen = await response.json()
                    # Over: no call is up and no more hotline callers are coming.
                    calls_over = now_seen["live_channels"] == 0 and not now_seen["placing_hotline"]
                    if calls_over and await _settled(records):
                        break
                    await asyncio.sleep(1.0)
                for gateway in fleet:
                    await gateway.stop()
                async with http.get(control + "/report") as response:
                    seen = await response.json()
                await _count(report, records, seen)
            finally:
                for gateway in fleet:
                    await gateway.kill()  # whatever happened, no gateway outlives its run
    finally:
        if report.problems:
            report.kept = data  # the store and the gateways' logs, to look into
        else:
            shutil.rmtree(data, ignore_errors=True)
    return report


async def _ami_back(http: aiohttp.ClientSession, control: str, fleet: list[Gateway]) -> None:
    """Wait until every gateway holds its AMI connections to the simulated PBXs again."""
    wanted = Counter(p for g in fleet for p in g.pbxes)
    async with asyncio.timeout(60):
        while True:
            async with http.get(control + "/report") as response:
                sessions = (await response.json())["sessions"]
            if all(sessions.get(p, 0) >= n for p, n in wanted.items()):
                return
            await asyncio.sleep(0.05)


async def _settled(records: StoreReader) -> bool:
    open_items = await records.value(
        f"SELECT count(*) FROM served_items WHERE status NOT IN ({param_marks(FINAL_ITEM_STATES)})",
        FINAL_ITEM_STATES,
    )
    open_texts = await records.value(
        f"SELECT count(*) FROM sms_messages WHERE status NOT IN ({param_marks(FINAL_TEXT_STATES)})",
        FINAL_TEXT_STATES,
    )
    unnotified = await records.value(
        "SELECT count(*) FROM rectification_orders WHERE status = 'open' AND notified_level < level"
    )
    # A 3 whose call a kill cut off gets its order from the leader's sweep, once the call
    # is known over and 30 s more have passed.
    unordered = len(await records.rows(_UNORDERED))
    return bool(open_items == 0 and open_texts == 0 and unnotified == 0 and unordered == 0)


# Dissatisfied first ratings with no order: (reference, rated_at).
_UNORDERED = (
    "SELECT i.reference, r.rated_at FROM ratings r JOIN served_items i ON i.id = r.item_id"
    " WHERE r.round = 1 AND r.score = 3 AND NOT EXISTS (SELECT 1 FROM"
    " rectification_orders o WHERE o.item_id = r.item_id)"
)


async def _unended(records: StoreReader, status: str) -> str:
    """Why items did not end: the attempts of the first few, as the store left them."""
    described = []
    for item_id, reference in await records.rows(
        "SELECT id, reference FROM served_items WHERE status = ? ORDER BY id LIMIT 3", (status,)
    ):
        attempts = await records.rows(
            "SELECT attempt, channel, outcome, pbx, owner, started_at, up_until, ended_at"
            " FROM callback_attempts WHERE item_id = ? ORDER BY id",
            (item_id,),
        )
        described.append(f"{reference}: {attempts}")
    return "; ".join(described)


async def _count(report: ChaosReport, records: StoreReader, seen: dict[str, Any]) -> None:
    problems = report.problems
    for status, count in await records.rows(
        "SELECT status, count(*) FROM served_items GROUP BY status"
    ):
        report.item_states[status] = count
        if status not in FINAL_ITEM_STATES:
            problems.append(
                f"{count} served items ended {status!r}; " + await _unended(records, status)
            )
    rows = await records.rows(
        "SELECT id, status, provider_sid, error_code, error_message FROM sms_messages"
    )
    report.texts_rows = len(rows)
    for row_id, status, sid, code, message in rows:
        if status not in FINAL_TEXT_STATES:
            problems.append(f"text row {row_id} ended {status!r}")
        elif status == "failed":
            # No number in the run is invalid or opted out: a failed text is a lost one.
            problems.append(f"text row {row_id} failed: {code} {message}")
        elif not sid:
            problems.append(f"text row {row_id} is {status!r} with no Twilio sid")
    row_sids = Counter(row[2] for row in rows if row[2])
    twilio_sids = Counter(m["sid"] for m in seen["messages"])
    report.texts_at_twilio = len(seen["messages"])
    for sid in twilio_sids:
        if sid not in row_sids:
            problems.append(f"Twilio message {sid} belongs to no row (sent twice?)")
    for sid in row_sids:
        if sid not in twilio_sids:
            problems.append(f"row sid {sid} was never created at Twilio")
    orders = await records.rows(
        "SELECT ref, level, status, notified_level FROM rectification_orders"
    )
    report.orders = len(orders)
    for reference, rated_at in await records.rows(_UNORDERED):
        problems.append(f"item {reference} was rated dissatisfied at {rated_at} but has no order")
    texted_levels = {
        (ref, level)
        for ref, level in await records.rows(
            "SELECT o.ref, e.level FROM order_events e JOIN rectification_orders o"
            " ON o.id = e.order_id WHERE e.action IN ('notified', 'skipped_no_mobile')"
        )
    }
    for ref, level, status, notified in orders:
        if status == "open" and notified < level:
            problems.append(f"order {ref} at level {level} was texted only to {notified}")
        for reached in range(1, level + 1):
            if (ref, reached) not in texted_levels:
                problems.append(f"order {ref} reached level {reached} untexted")
    call_records: dict[tuple[str, str], list[Any]] = {}
    for pbx, linkedid, complete in await records.rows(
        "SELECT pbx, linkedid, complete FROM call_records"
    ):
        call_records.setdefault((pbx, linkedid), []).append(complete)
    for call in seen["pbx_calls"]:
        if not call["finished"]:
            problems.append(
                f"{call['direction']} call {call['pbx']}/{call['linkedid']} still up at the end"
                f" ({call.get('where')})"
            )
            continue
        found = call_records.get((call["pbx"], call["linkedid"]), [])
        start, end = call["span"]
        if not found and any(
            start is not None
            and end is not None
            and call["pbx"] in where
            and down <= start
            and end <= up
            for down, up, where in report.outages
        ):
            # Begun and ended while no gateway logged in to its PBX was alive or connected:
            # no AMI event of it ever reached a gateway, so no record can exist. Counted.
            report.unobservable += 1
            continue
        if not found and any(
            start is not None
            and end is not None
            and call["pbx"] in where
            and down - KILL_MARGIN <= start <= down
            and any(end <= b for a, b, _ in report.outages if a == down)
            for down, where in report.kills
        ):
            report.lost_at_kill += 1
            continue
        if len(found) != 1 or not found[0]:
            state = "none" if not found else f"{len(found)}, complete={found[0]}"
            problems.append(
                f"{call['direction']} call {call['pbx']}/{call['linkedid']} has records: {state}"
                f"{_near_a_kill(start, end, report)}"
            )
    for call in seen["pbx_calls"]:
        first = call["first_prompts"]
        if len(first) == 2 and first[0] == first[1]:
            # A flow never opens with its first prompt twice: two flows ran on the call
            # (two gateways each took its AsyncAGIStart).
            problems.append(
                f"{call['direction']} call {call['pbx']}/{call['linkedid']} heard"
                f" {first[0]!r} twice at its start: two flows ran on it"
            )
    report.hotline_calls = sum(1 for c in seen["pbx_calls"] if c["direction"] == "inbound")
    calls = seen["calls"]
    report.calls = len(calls)
    report.calls_by_pbx = Counter(c["pbx"] for c in calls)
    attempts = Counter(c["variables"].get("GW_ATTEMPT") for c in calls)
    for attempt, count in attempts.items():
        if attempt is not None and count > 1:
            problems.append(f"attempt {attempt} was dialled {count} times")
    by_number: dict[str, list[tuple[float, float]]] = {}
    for call in calls:
        end = call["end"] if call["end"] is not None else seen["now"]
        by_number.setdefault(call["number"], []).append((call["start"], end))
    for number, spans in by_number.items():
        spans.sort()
        latest_end = float("-inf")
        for start, end in spans:
            if start < latest_end:
                problems.append(f"citizen ...{number[-4:]} had two calls up at once")
            latest_end = max(latest_end, end)


def _near_a_kill(start: float | None, end: float | None, report: ChaosReport) -> str:
    """Where a call without its record stood against the nearest kill, for the reader."""
    if start is None or not report.kills:
        return ""
    down = min((k for k, _ in report.kills), key=lambda k: abs(k - start))
    up = next((b for a, b, _ in report.outages if a == down), down)
    ended = "still up" if end is None else f"ended {end - up:+.2f} s from the restart"
    return f" (began {start - down:+.2f} s from the kill, {ended})"


async def fresh_database(admin_url: str, name: str) -> None:
    """A new, empty database ``name`` on the cluster at ``admin_url`` (an old one dropped)."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..N (20)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--items", type=int, default=300, help="served items a seed (300)")
    parser.add_argument("--seconds", type=float, default=300, help="seconds of faults a seed")
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes (1)")
    parser.add_argument("--pbxes", default="main", help="simulated PBXs, comma-separated")
    parser.add_argument(
        "--shared-agi",
        choices=("fastagi", "async"),
        default="fastagi",
        help="how a PBX several gateways log in to hands its calls over (fastagi)",
    )
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="the store on a throwaway PostgreSQL (several gateways need it)",
    )
    args = parser.parse_args()
    if args.gateways > 1 and not args.postgresql:
        parser.error("several gateways share a store on PostgreSQL only: add --postgresql")
    cluster = None
    if args.postgresql:
        sys.path.insert(0, str(ROOT / "tests"))
        from postgres_cluster import start_cluster, stop_cluster

        cluster = start_cluster()
    failed = 0
    totals: Counter[str] = Counter()
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            url = None
            if cluster is not None:
                asyncio.run(fresh_database(cluster.url(), f"chaos_{seed}"))
                url = cluster.url(f"chaos_{seed}")
            report = asyncio.run(
                run_chaos(
                    seed,
                    items=args.items,
                    seconds=args.seconds,
                    gateways=args.gateways,
                    pbxes=tuple(args.pbxes.split(",")),
                    store_url=url,
                    shared_agi=args.shared_agi,
                )
            )
            print(report.line(), flush=True)
            for problem in report.problems[:20]:
                print("   ", problem, flush=True)
            failed += bool(report.problems)
            totals.update(report.faults)
            totals["items"] += report.items
            totals["calls"] += report.calls
            totals["texts"] += report.texts_at_twilio
    finally:
        if cluster is not None:
            stop_cluster(cluster)
    print(
        f"chaos: {args.seeds} seeds, {failed} failed; "
        + " ".join(f"{k}={v}" for k, v in sorted(totals.items()))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
