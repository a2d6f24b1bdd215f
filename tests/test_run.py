"""`gateway run --check` against a simulated PBX and Twilio: every peer checked, a wrong
secret reported."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.run import run_gateway
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.twilio import SimulatedTwilio

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "AC" + "0f" * 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("secret", "expected"), [("s3cret", 0), ("wrong", 1)])
async def test_run_check_reports_whether_peers_answer(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    secret: str,
    expected: int,
) -> None:
    """With the right secret every peer answers (exit 0); a wrong one is named (exit 1).
    With no FastAGI listener configured, the check warns that the shipped dialplan's
    callers would all skip the menu, and with no account that nobody can log in to the
    dashboard."""
    async with (
        SimulatedPbx(SimConfig(port=0, secret="s3cret", time_scale=0.01)) as pbx,
        SimulatedTwilio(ACCOUNT, "tok") as twilio,
    ):
        config = config_module.load(
            env={"GATEWAY_PBX_MAIN_SECRET": secret, "GATEWAY_SMS_AUTH_TOKEN": "tok"},
            overrides=[
                f"gateway.data_dir={tmp_path}",
                f"pbx.main.port={pbx.port}",
                "pbx.main.login_attempts=1",
                "pbx.main.connect_timeout=1",
                f"sms.api_base_url={twilio.base_url}",
                f"sms.account_sid={ACCOUNT}",
                "sms.from_number=+8610690000001",
                f"web.port={free_port()}",
                f"ivr.flows_dir={ROOT / 'flows'}",
                f"ivr.prompts={ROOT / 'recordings' / 'prompts.yaml'}",
            ],
        )
        code = await run_gateway(config, argparse.Namespace(check=True))
    captured = capsys.readouterr()
    assert code == expected
    assert "agi.listen_port is 0" in caplog.text
    assert "no active accounts, nobody can log in" in caplog.text
    if expected == 0:
        assert "all peers answer" in captured.out
    else:
        assert "login as 'gateway' refused" in captured.err
        assert "some peers do not answer" in captured.out
