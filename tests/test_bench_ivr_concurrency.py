"""The IVR concurrency benchmark's measurement, run at a tiny size (no speed asserted)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench" / "ivr_concurrency.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ivr_concurrency", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_five_calls_are_measured_against_the_gateway_and_the_baseline() -> None:
    """Five walks through the real gateway and through the replay client: every step timed."""
    bench = load_bench()
    out = io.StringIO()
    rounds = await bench.measure([5], time_scale=0.2, deadline=120.0, out=out)
    by_mode = {r.mode: r for r in rounds}
    assert set(by_mode) == {"gateway", "baseline"}
    for r in rounds:
        assert r.sim["walked"] == 5 and r.sim["timed_out"] == 0, r.sim
        steps = r.sim["steps"]["all"]
        # six commands a walk: ANSWER, welcome, menu, number, not found, what next
        assert steps["count"] == 30
        assert 0 < steps["p50_ms"] <= steps["p99_ms"] <= steps["max_ms"]
        assert r.sim_cpu > 0
    gateway = by_mode["gateway"]
    assert gateway.sim["sequence"][0] == "ANSWER"
    assert gateway.gateway_cpu > 0
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("ivr_concurrency: calls=5 p99_step_ms=")
    assert "failed=0 timed_out=0" in last
