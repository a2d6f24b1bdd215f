"""The chaos run's short form: a callback day under kills, link cuts, Twilio storms and a
locked store, with the gateway and the simulators in their own processes (the long form
is ``python tests/chaos/run.py --seeds 20``)."""

from __future__ import annotations

from chaos.run import run_chaos


async def test_callback_day_survives_kills_cuts_storms_and_locks() -> None:
    """After every fault kind, each item ends settled, no citizen is called twice at once,
    no attempt is dialled twice, each text row is one Twilio message and orders are texted."""
    report = await run_chaos(seed=11, items=40, seconds=30.0)
    print(report.line())
    assert report.items >= 40
    assert set(report.faults) >= {"kill", "ami-cut", "twilio-429", "twilio-5xx", "lock"}
    assert report.calls > 0 and report.texts_at_twilio > 0
    assert not report.problems, "\n".join(report.problems[:30])
