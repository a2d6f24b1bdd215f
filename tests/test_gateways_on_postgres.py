"""The proof of several gateways on one database: two ``gateway run`` processes on one
PostgreSQL database, each logged in to its own simulated PBX, share a callback day and
the hotline under ``kill -9`` and restarts, AMI link cuts, Twilio storms and a held
write lock; and two gateways on one PBX by AsyncAGI. The long form, four gateways:
``python tests/chaos/run.py --gateways 4 --pbxes a,b --postgresql [--shared-agi async]``."""

from __future__ import annotations

import pytest
from chaos.run import run_chaos

pytestmark = pytest.mark.postgres


async def test_two_gateways_on_one_database_share_a_callback_day_through_kills(
    postgres_url: str,
) -> None:
    """Counted at the simulators: every item settled, no citizen called twice at once,
    no attempt dialled twice, each text row one Twilio message, every order texted at
    every level, one complete record per call, and both PBXs carried callbacks."""
    report = await run_chaos(
        seed=21, items=40, seconds=30.0, gateways=2, pbxes=("east", "west"), store_url=postgres_url
    )
    print(report.line())
    assert report.items >= 40
    assert report.faults["kill"] >= 1 and report.faults["lock"] >= 1
    assert report.calls_by_pbx["east"] > 0 and report.calls_by_pbx["west"] > 0
    assert report.texts_at_twilio > 0 and report.hotline_calls > 0
    assert not report.problems, "\n".join(report.problems[:30])


async def test_two_gateways_on_one_pbx_by_asyncagi_run_each_call_once_through_kills(
    postgres_url: str,
) -> None:
    """Both gateways logged in to one PBX that hands its calls over by AsyncAGI (each
    ``AsyncAGIStart`` reaches both): the same counts, and no call ran two flows, while
    the gateway serving the PBX is killed and the other takes it over."""
    report = await run_chaos(
        seed=31,
        items=40,
        seconds=25.0,
        gateways=2,
        pbxes=("main",),
        store_url=postgres_url,
        shared_agi="async",
    )
    print(report.line())
    assert report.items >= 40 and report.faults["kill"] >= 1
    assert report.texts_at_twilio > 0 and report.hotline_calls > 0
    assert not report.problems, "\n".join(report.problems[:30])
