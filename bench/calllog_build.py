"""Call-log building: records a second from the recorded 200-call Asterisk 22 stream.

Three measurements on the same bytes, alternately, for several rounds; the best
round of each counts:

A. baseline: parse the stream into frames (``gateway.ami.frames.iter_frames``);
B. parse and build: the same, each frame fed to ``CallLogBuilder``, then one
   ``drain()`` of the 200 records (what the service stores);
C. build only: the already parsed frames fed to the builder, then ``drain()``.

It checks that each build gives exactly 200 complete records, none twice, and
prints events/s and records/s for each and the builder's cost relative to the
parse alone.

    python bench/calllog_build.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.ami.frames import Frame, iter_frames  # noqa: E402
from gateway.calllog.builder import CallLogBuilder  # noqa: E402
from gateway.clock import ManualClock  # noqa: E402

TRANSCRIPT = ROOT / "tests" / "transcripts" / "asterisk-22" / "sip-load-200-calls.rx.txt"
CALLS = 200


def parse(data: bytes) -> list[Frame]:
    return [f for f in iter_frames(data) if isinstance(f, Frame)]


def build(frames: list[Frame]) -> int:
    builder = CallLogBuilder("main", ManualClock(datetime(2026, 11, 30, 2, tzinfo=UTC)))
    feed = builder.feed
    for frame in frames:
        feed(frame)
    records = builder.drain()
    if len(records) != CALLS or len({r.linkedid for r in records}) != CALLS:
        raise SystemExit(f"expected {CALLS} distinct records, got {len(records)}")
    if not all(r.complete for r in records):
        raise SystemExit("some records are not complete")
    return len(records)


def timed(fn: object, *args: object) -> float:
    gc.collect()
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data = TRANSCRIPT.read_bytes()
    frames = parse(data)
    events = len(frames)  # events and action responses
    best = {"A": float("inf"), "B": float("inf"), "C": float("inf")}
    for _ in range(args.rounds):
        best["A"] = min(best["A"], timed(parse, data))
        best["B"] = min(best["B"], timed(lambda: build(parse(data))))
        best["C"] = min(best["C"], timed(build, frames))
    print(
        f"{TRANSCRIPT.name}: {len(data) / 1e6:.1f} MB, {events} frames, {CALLS} calls; "
        f"best of {args.rounds} rounds"
    )
    labels = {
        "A": "A parse only (baseline)",
        "B": "B parse + build + drain",
        "C": "C build + drain only    ",
    }
    for key, label in labels.items():
        seconds = best[key]
        print(
            f"  {label}: {seconds * 1000:7.1f} ms  {events / seconds:10,.0f} frames/s"
            f"  {CALLS / seconds:9,.0f} records/s"
        )
    overhead = (best["B"] - best["A"]) / best["A"]
    print(
        f"  building adds {overhead:.0%} to parsing; the builder alone runs at "
        f"{events / best['C']:,.0f} frames/s, {events / best['C'] / 412:,.0f}x the "
        f"transcript's peak of 412 frames/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
