"""AMI ingest: how many events a second each client turns from bytes into listener calls.

Feeds the recorded 200-call Asterisk 22 stream in TCP-sized chunks, inside a
running event loop (each chunk is one ``data_received``, then the loop runs), to

A. panoramisk 1.4: ``AMIProtocol.data_received`` → ``Manager.dispatch`` → a no-op
   callback registered for ``*``;
B. the gateway: ``gateway.pbx.transport.AmiProtocol.data_received`` → the session's
   frame routing (channel tracking, AsyncAGI) → its event queue → its consumer
   task → a no-op listener.

C. as B, with the listener subscribed to the events the call log reads (the
   gateway's real set-up); the session drops the others (CEL, Newexten,
   AGIExec…) after their first line.

All run on the same chunks, alternately, for several rounds; the best round of
each counts. A and B must see the same number of events; C must see exactly
the events of its names.

    python bench/ami_ingest.py [--rounds 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panoramisk import Manager  # noqa: E402
from panoramisk.ami_protocol import AMIProtocol  # noqa: E402

from gateway.ami import names as n  # noqa: E402
from gateway.ami.frames import Frame, iter_frames  # noqa: E402
from gateway.config import PbxSection  # noqa: E402
from gateway.pbx.channel import AgiChannel  # noqa: E402
from gateway.pbx.session import AmiSession  # noqa: E402
from gateway.pbx.transport import AmiProtocol  # noqa: E402

# What the call log subscribes to (channel lifecycle, dial, queue, DTMF, recording, Cdr).
CALL_LOG_EVENTS = frozenset(
    {
        n.EV_NEWCHANNEL,
        n.EV_NEWSTATE,
        n.EV_NEWCALLERID,
        n.EV_VARSET,
        n.EV_HANGUP,
        n.EV_DIAL_BEGIN,
        n.EV_DIAL_END,
        n.EV_DTMF_END,
        n.EV_QUEUE_CALLER_JOIN,
        n.EV_QUEUE_CALLER_LEAVE,
        n.EV_QUEUE_CALLER_ABANDON,
        n.EV_AGENT_CALLED,
        n.EV_AGENT_CONNECT,
        n.EV_AGENT_COMPLETE,
        n.EV_MIX_MONITOR_START,
        n.EV_MIX_MONITOR_STOP,
        n.EV_CDR,
        n.EV_ORIGINATE_RESPONSE,
    }
)

TRANSCRIPT = ROOT / "tests" / "transcripts" / "asterisk-22" / "sip-load-200-calls.rx.txt"


class NullTransport(asyncio.Transport):
    """Swallows writes; the benchmark only reads."""

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def chunked(data: bytes, seed: int) -> list[bytes]:
    """Cut the stream like TCP reads on a busy link: 256 B to 16 KiB, seeded."""
    rng = random.Random(seed)
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.choice((256, 1024, 1460, 2920, 4096, 8192, 16384))
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


async def run_panoramisk(chunks: list[bytes]) -> tuple[int, float]:
    count = 0

    def noop(manager: Any, event: Any) -> None:
        nonlocal count
        count += 1

    loop = asyncio.get_running_loop()
    manager = Manager(loop=loop)
    manager.register_event("*", noop)
    protocol = AMIProtocol()
    protocol.connection_made(NullTransport())
    protocol.factory = manager
    protocol.encoding = "utf8"
    gc.collect()
    start = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    return count, elapsed


async def run_gateway(
    chunks: list[bytes], events: frozenset[str] | None = None
) -> tuple[int, float]:
    count = 0

    def noop(frame: Frame) -> None:
        nonlocal count
        count += 1

    async def agi_handler(channel: AgiChannel) -> None:
        # No PBX answers commands here: end the IVR session at once.
        channel.mark_gone("benchmark")

    session = AmiSession(PbxSection(name="bench"), agi_handler=agi_handler)
    session.add_listener(noop, events)
    consumer = asyncio.ensure_future(session.dispatcher.consume())
    protocol = AmiProtocol(session.dispatcher)
    protocol.connection_made(NullTransport())
    gc.collect()
    start = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    while not session.dispatcher.inbox.empty() or session.agi.flows:  # noqa: ASYNC110
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    consumer.cancel()
    try:
        await consumer
    except asyncio.CancelledError:
        pass
    return count, elapsed


async def main_async(rounds: int, seed: int) -> int:
    data = TRANSCRIPT.read_bytes()
    chunks = chunked(data, seed)
    total = sum(1 for f in iter_frames(data) if isinstance(f, Frame) and f.event)
    expected_c = sum(
        1 for f in iter_frames(data) if isinstance(f, Frame) and f.event in CALL_LOG_EVENTS
    )
    best = {"A": float("inf"), "B": float("inf"), "C": float("inf")}
    counts = {"A": 0, "B": 0, "C": 0}
    for _ in range(rounds):
        counts["A"], elapsed = await run_panoramisk(chunks)
        best["A"] = min(best["A"], elapsed)
        counts["B"], elapsed = await run_gateway(chunks)
        best["B"] = min(best["B"], elapsed)
        counts["C"], elapsed = await run_gateway(chunks, CALL_LOG_EVENTS)
        best["C"] = min(best["C"], elapsed)
    print(
        f"stream: {len(data):,} bytes, {total:,} events, {len(chunks):,} reads; "
        f"best of {rounds} rounds"
    )
    labels = {
        "A": "A panoramisk 1.4, '*' listener  ",
        "B": "B gateway, listener on all      ",
        "C": "C gateway, listener on call log ",
    }
    for key, label in labels.items():
        # events/s: stream events ingested per second of wall time
        rate = total / best[key]
        print(
            f"{label}: {counts[key]:>6,} delivered, {best[key] * 1000:7.1f} ms, "
            f"{rate:>10,.0f} events/s"
        )
    print(
        f"ratio B/A: {best['A'] / best['B']:.2f}x   ratio C/A: {best['A'] / best['C']:.2f}x"
        "   (target ≥ 3x)"
    )
    ok = counts["A"] == counts["B"] == total and counts["C"] == expected_c
    if not ok:
        print(
            f"MISMATCH: A {counts['A']}, B {counts['B']} (want {total}), "
            f"C {counts['C']} (want {expected_c})"
        )
        return 1
    print(f"A and B each saw all {total:,} events; C saw its {expected_c:,}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(main_async(args.rounds, args.seed))


if __name__ == "__main__":
    sys.exit(main())
