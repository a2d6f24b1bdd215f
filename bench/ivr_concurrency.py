"""IVR concurrency: N hotline calls at once, each walking the menu, against the gateway.

Three processes: this one (the driver), the simulated PBX (this file with ``--sim``)
and the gateway (``gateway run``). For each N the simulator places N calls at the
same moment; every caller takes the same walk through the hotline menu (4: progress
enquiry, a number, then hangs up at the "what next" menu), which reads the store.

Measured inside the simulator, which sees both sides: for every AGI step, the time
from the simulator emitting ``AsyncAGIStart`` / ``AsyncAGIExec`` (the previous
command's result) to the gateway's next ``Action: AGI`` arriving (p50, p99, max),
by the command that came next. Read from /proc by the driver: CPU of the gateway
and of the simulator over each round, the gateway's resident memory growth at the
round's peak. A call fails when it did not hear the end of the walk; it times out
when it had not ended at the round's deadline.

Baseline in the same run: the same N calls with the gateway stopped and a minimal
AGI client in the driver replaying the gateway's own command sequence with no work,
so the simulator's CPU for the same calls shows whether it is the bottleneck.

    python bench/ivr_concurrency.py [--calls 100,300,1000] [--time-scale 0.2]
                                    [--profile-sim FILE]

``--time-scale`` compresses the menu's timeouts too (0.2: a 6 s menu waits 1.2 s), so a
round whose step reactions near the compressed timeouts sends callers down the
silence path (failed walks); ``--time-scale 1`` keeps the real timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.ami import names as n  # noqa: E402
from gateway.ami.frames import Frame, FrameParser  # noqa: E402
from gateway.sim.ami import SimConfig, SimulatedPbx  # noqa: E402
from gateway.sim.ami.script import CallerScript, HangUp, Press, WaitForPrompt  # noqa: E402
from gateway.sim.ami.session import AmiSession as SimSession  # noqa: E402
from gateway.sim.ami.world import SimCall  # noqa: E402

USER = "gateway"
WALK_END = "status_next"  # the last prompt of the walk: the caller hangs up there
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def menu_walk(i: int) -> CallerScript:
    """The fixed walk: progress enquiry (4), a number that is not on file, hang up."""
    return CallerScript(
        caller=f"+86139{i:08d}",
        caller_name="王伟",
        dialled="9600110",
        steps=[
            WaitForPrompt(input=True, timeout=60),
            Press("4"),
            WaitForPrompt(input=True, timeout=60),
            Press("20261130#", gap=0.1),
            WaitForPrompt(name=WALK_END, timeout=120),
            HangUp(),
        ],
        language="zh",
    )


# --- the simulator's side: measuring probe -----------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0–100) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Probe:
    """Times each AGI step inside the simulator: result emitted → next command arrived."""

    sent: dict[str, float] = field(default_factory=dict)  # channel → when the result went out
    steps: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    commands: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    live_agi: int = 0
    peak_agi: int = 0

    def install(self, pbx: SimulatedPbx) -> None:
        world = pbx.world
        emit_chan_event = world.chan_event
        probe = self

        def chan_event(event: str, privilege: str, chan: Any, *extra: tuple[str, str]) -> None:
            emit_chan_event(event, privilege, chan, *extra)
            if event in (n.EV_ASYNC_AGI_START, n.EV_ASYNC_AGI_EXEC):
                probe.sent[chan.name] = time.perf_counter()
                if event == n.EV_ASYNC_AGI_START:
                    probe.live_agi += 1
                    probe.peak_agi = max(probe.peak_agi, probe.live_agi)
            elif event == n.EV_ASYNC_AGI_END:
                probe.sent.pop(chan.name, None)
                probe.live_agi -= 1

        world.chan_event = chan_event  # type: ignore[method-assign]
        handle_agi = SimSession.agi

        async def agi(self: SimSession, frame: Frame) -> None:
            arrived = time.perf_counter()
            name = (frame.get_ci(n.H_CHANNEL) or "").strip()
            command = (frame.get_ci(n.H_COMMAND) or "").strip()
            kind = " ".join(command.split()[:2]).upper()
            since = probe.sent.pop(name, None)
            if since is not None:
                probe.steps[kind].append(arrived - since)
            probe.commands[name].append(command)
            await handle_agi(self, frame)

        SimSession.agi = agi  # type: ignore[method-assign]

    def reset(self) -> None:
        self.sent.clear()
        self.steps.clear()
        self.commands.clear()
        self.peak_agi = self.live_agi

    def summary(self) -> dict[str, Any]:
        every = [v for values in self.steps.values() for v in values]
        rows = {"all": every, **self.steps}
        sequences = collections.Counter(tuple(c) for c in self.commands.values())
        common = list(sequences.most_common(1)[0][0]) if sequences else []
        return {
            "steps": {
                kind: {
                    "count": len(values),
                    "p50_ms": percentile(values, 50) * 1000,
                    "p99_ms": percentile(values, 99) * 1000,
                    "max_ms": max(values, default=0.0) * 1000,
                }
                for kind, values in rows.items()
            },
            "peak_agi": self.peak_agi,
            "sequence": common,
        }


async def place_round(pbx: SimulatedPbx, count: int, deadline: float) -> dict[str, Any]:
    """Place ``count`` walks at once; wait until they end or ``deadline`` seconds pass."""
    calls: list[SimCall] = [pbx.place_call(menu_walk(i)) for i in range(count)]
    pending = [c.finished for c in calls]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline):
            await asyncio.gather(*pending)
    ended = [c for c in calls if c.finished.done()]
    walked = [c for c in ended if any(p.endswith(WALK_END) for p in c.outcome.prompts)]
    for call in calls:  # the next round starts clean
        chan = pbx.world.channels.get(call.channel)
        if not call.finished.done() and chan is not None:
            pbx.world.request_hangup(chan)
    return {"calls": count, "walked": len(walked), "timed_out": count - len(ended)}


async def serve_sim(args: argparse.Namespace) -> None:
    """The simulator process: a PBX, a probe, commands from stdin, results to stdout."""
    config = SimConfig(
        host="127.0.0.1",
        port=0,
        username=USER,
        secret=args.secret,
        agents=4,
        time_scale=args.time_scale,
        seed=1,
    )
    probe = Probe()
    async with SimulatedPbx(config) as pbx:
        probe.install(pbx)
        print(json.dumps({"ami": pbx.port}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            request = json.loads(line)
            probe.reset()
            result = await place_round(pbx, int(request["calls"]), float(request["deadline"]))
            await asyncio.sleep(0.2)  # the last results and hangups leave
            print(json.dumps({**result, **probe.summary()}), flush=True)


# --- the driver's side -------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class PeakRss:
    """Samples a process's resident memory every 50 ms while a round runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, rss_bytes(self.pid))


class Simulator:
    """The simulator process, driven through its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, ami: int) -> None:
        self.proc = proc
        self.ami = ami

    async def round(self, calls: int, deadline: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"calls": calls, "deadline": deadline}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator ended")
        result: dict[str, Any] = json.loads(line)
        return result


@contextlib.asynccontextmanager
async def simulator(
    secret: str, time_scale: float, profile: str | None = None
) -> AsyncIterator[Simulator]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--sim",
        "--secret",
        secret,
        "--time-scale",
        str(time_scale),
        *(["--profile", profile] if profile else []),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator ended before listening")
        yield Simulator(proc, int(json.loads(line)["ami"]))
    finally:
        if proc.stdin is not None:  # end of its commands: it stops (and writes its profile)
            proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await proc.wait()
        await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def gateway(ami_port: int, secret: str, data: Path) -> AsyncIterator[int]:
    """``gateway run`` against the simulator; yields its pid once its AMI link is up."""
    web_port = _free_port()
    values = {
        "gateway.data_dir": str(data),
        "gateway.log_level": "WARNING",
        "pbx.main.port": str(ami_port),
        "web.port": str(web_port),
        "web.public_url": f"http://127.0.0.1:{web_port}",
        "ivr.flows_dir": str(ROOT / "flows"),
        "ivr.prompts": str(ROOT / "recordings" / "prompts.yaml"),
        # no text is sent in this walk; Twilio's address is a closed port
        "sms.api_base_url": f"http://127.0.0.1:{_free_port()}",
        "sms.account_sid": "AC" + "c4" * 16,
        "sms.from_number": "+8610690000001",
    }
    settings = [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GATEWAY_PBX_MAIN_SECRET": secret,
        "GATEWAY_SMS_AUTH_TOKEN": secrets.token_urlsafe(16),
        "GATEWAY_WEB_API_TOKEN": secrets.token_urlsafe(16),
    }
    log = data / "gateway.log"
    seed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *settings, "db", "seed", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if await seed.wait() != 0:
        raise RuntimeError("gateway db seed failed")
    with log.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *settings, "run", cwd=ROOT, env=env,
            stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        await _wait_ready(proc, web_port, log)
        yield proc.pid
    finally:
        await _stop(proc)
        print_complaints(log)


def print_complaints(log: Path, top: int = 8) -> None:
    """The gateway's most frequent warnings and errors: where a round broke, in its words."""
    counts: collections.Counter[str] = collections.Counter()
    for line in log.read_text("utf-8", "replace").splitlines():
        # "2026-11-30 23:18:31,805 WARNING gateway.run: message"
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
            counts[f"{parts[2]} {parts[3][:160]}"] += 1
    if counts:
        print("gateway's warnings and errors (most frequent first):", file=sys.stderr)
        for text, count in counts.most_common(top):
            print(f"  {count:>6} x {text}", file=sys.stderr)


def _tail(log: Path) -> str:
    return log.read_text("utf-8", "replace")[-3000:]


async def _wait_ready(proc: asyncio.subprocess.Process, web_port: int, log: Path) -> None:
    """Until /health says the store and the PBX link answer (Twilio is a closed port)."""
    async with asyncio.timeout(60):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}:\n{_tail(log)}")
            with contextlib.suppress(OSError, ValueError):
                reader, writer = await asyncio.open_connection("127.0.0.1", web_port)
                writer.write(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
                response = await reader.read()
                writer.close()
                checks = json.loads(response.split(b"\r\n\r\n", 1)[1])["checks"]
                if all(checks[k]["status"] == "ok" for k in ("store", "pbx")):
                    return
            await asyncio.sleep(0.2)


class ReplayClient:
    """A minimal AsyncAGI client: answers every result with the next command of a fixed
    sequence, doing no other work; the baseline for the simulator's own cost."""

    def __init__(self, sequence: list[str]) -> None:
        self.sequence = sequence or ["ASYNCAGI BREAK"]
        self.position: dict[str, int] = {}
        self.writer: asyncio.StreamWriter | None = None
        self._action = 0

    async def run(self, port: int, secret: str, connected: asyncio.Event) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            self._send([("Action", "Login"), ("Username", USER), ("Secret", secret)])
            parser = FrameParser()
            while chunk := await reader.read(65536):
                for frame in parser.feed(chunk):
                    if isinstance(frame, Frame):
                        self._on_frame(frame, connected)
        finally:
            self.writer.close()

    def _send(self, headers: list[tuple[str, str]]) -> None:
        assert self.writer is not None
        self._action += 1
        lines = [f"{k}: {v}" for k, v in [*headers, ("ActionID", str(self._action))]]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _on_frame(self, frame: Frame, connected: asyncio.Event) -> None:
        if frame.get_ci("Response") is not None and not connected.is_set():
            connected.set()
            return
        event = frame.get_ci(n.H_EVENT)
        if event not in (n.EV_ASYNC_AGI_START, n.EV_ASYNC_AGI_EXEC):
            return
        channel = frame.get_ci(n.H_CHANNEL) or ""
        step = self.position.get(channel, 0)
        self.position[channel] = step + 1
        command = self.sequence[step] if step < len(self.sequence) else "ASYNCAGI BREAK"
        self._send([("Action", "AGI"), (n.H_CHANNEL, channel), (n.H_COMMAND, command)])


@dataclass
class Round:
    mode: str  # "gateway" or "baseline"
    calls: int
    sim: dict[str, Any]
    seconds: float
    sim_cpu: float
    gateway_cpu: float = 0.0
    gateway_rss_growth: int = 0

    def row(self) -> str:
        step = self.sim["steps"]["all"]
        per_call = self.calls or 1
        return (
            f"{self.mode:<9}{self.calls:>6}{self.sim['peak_agi']:>6}{self.seconds:>8.1f}"
            f"{step['count']:>7}{step['p50_ms']:>8.1f}{step['p99_ms']:>8.1f}{step['max_ms']:>8.1f}"
            + (
                f"{self.gateway_cpu * 1000 / per_call:>9.2f}"
                f"{self.gateway_rss_growth / 1024 / per_call:>9.1f}"
                if self.mode == "gateway"
                else f"{'-':>9}{'-':>9}"
            )
            + f"{self.sim_cpu * 1000 / per_call:>9.2f}"
            f"{self.calls - self.sim['walked']:>7}{self.sim['timed_out']:>7}"
        )


HEADER = (
    f"{'mode':<9}{'calls':>6}{'peak':>6}{'secs':>8}{'steps':>7}{'p50ms':>8}{'p99ms':>8}"
    f"{'maxms':>8}{'gwCPUms':>9}{'gwKiB':>9}{'simCPUms':>9}{'failed':>7}{'tmout':>7}"
)


async def timed_round(sim: Simulator, mode: str, count: int, deadline: float, gw_pid: int) -> Round:
    """One round of ``count`` calls; ``gw_pid`` 0 when no gateway runs (the baseline)."""
    cpu_sim = cpu_seconds(sim.proc.pid)
    cpu_gw = cpu_seconds(gw_pid) if gw_pid else 0.0
    rss_before = rss_bytes(gw_pid) if gw_pid else 0
    started = time.perf_counter()
    with PeakRss(gw_pid) if gw_pid else contextlib.nullcontext() as peak:
        result = await sim.round(count, deadline)
    return Round(
        mode,
        count,
        result,
        time.perf_counter() - started,
        cpu_seconds(sim.proc.pid) - cpu_sim,
        cpu_seconds(gw_pid) - cpu_gw if gw_pid else 0.0,
        max(0, peak.peak - rss_before) if peak is not None else 0,
    )


async def measure(
    counts: list[int],
    *,
    time_scale: float,
    deadline: float,
    out: Any = sys.stdout,
    profile: str | None = None,
) -> list[Round]:
    """Runs every round (gateway, then the baseline) and prints the table and summary."""
    secret = secrets.token_urlsafe(16)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        async with simulator(secret, time_scale, profile) as sim:
            async with gateway(sim.ami, secret, Path(tmp)) as gw_pid:
                for count in counts:
                    rounds.append(await timed_round(sim, "gateway", count, deadline, gw_pid))
            sequence: list[str] = rounds[0].sim["sequence"]
            client = ReplayClient(sequence)
            connected = asyncio.Event()
            task = asyncio.get_running_loop().create_task(client.run(sim.ami, secret, connected))
            try:
                async with asyncio.timeout(10):
                    await connected.wait()
                for count in counts:
                    client.position.clear()
                    rounds.append(await timed_round(sim, "baseline", count, deadline, 0))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await asyncio.sleep(0.2)  # the simulator ends that session before it stops
    report(rounds, sequence, out)
    return rounds


def report(rounds: list[Round], sequence: list[str], out: Any) -> None:
    print(f"walk: {len(sequence)} AGI commands per call: {' | '.join(sequence)}", file=out)
    print(HEADER, file=out)
    for r in rounds:
        print(r.row(), file=out)
    print("\nper AGI step (gateway rounds), by the command that came next:", file=out)
    for r in rounds:
        if r.mode != "gateway":
            continue
        for kind, s in sorted(r.sim["steps"].items()):
            if kind != "all":
                print(
                    f"  {r.calls:>5} calls  {kind:<22}{s['count']:>7}"
                    f"  p50 {s['p50_ms']:7.1f}  p99 {s['p99_ms']:7.1f}  max {s['max_ms']:7.1f} ms",
                    file=out,
                )
    largest = max((r for r in rounds if r.mode == "gateway"), key=lambda r: r.calls)
    base = next(r for r in rounds if r.mode == "baseline" and r.calls == largest.calls)
    step = largest.sim["steps"]["all"]
    print(
        f"ivr_concurrency: calls={largest.calls} p99_step_ms={step['p99_ms']:.1f} "
        f"max_step_ms={step['max_ms']:.1f} gateway_cpu_s={largest.gateway_cpu:.2f} "
        f"sim_cpu_s={largest.sim_cpu:.2f} sim_alone_cpu_s={base.sim_cpu:.2f} "
        f"failed={largest.calls - largest.sim['walked']} timed_out={largest.sim['timed_out']}",
        file=out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", default="100,300,1000", help="comma-separated round sizes")
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per round")
    parser.add_argument("--profile-sim", metavar="FILE", help="cProfile the simulator into FILE")
    parser.add_argument("--sim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="", help=argparse.SUPPRESS)
    parser.add_argument("--secret", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sim:
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_sim(args))
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        return
    try:
        counts = [int(c) for c in args.calls.split(",")]
    except ValueError:
        parser.error(f"--calls takes numbers separated by commas, got {args.calls!r}")
    if not counts or min(counts) <= 0:
        parser.error("--calls needs positive numbers")
    asyncio.run(
        measure(
            counts, time_scale=args.time_scale, deadline=args.deadline, profile=args.profile_sim
        )
    )


if __name__ == "__main__":
    main()
