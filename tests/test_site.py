"""A site folder outside the source tree: `gateway init`, config-relative paths, packaged files.

The commands run as a separate `python -m gateway` process with its working folder
outside the checkout, as an operator's installed gateway would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.sim.ami import SimConfig, SimulatedPbx
from gateway.sim.twilio import SimulatedTwilio
from tests.sms_support import gateway_process
from tests.test_run import ACCOUNT, ROOT, free_port


async def gateway(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the gateway command in ``cwd``; its exit code and its output (stdout + stderr)."""
    process = await gateway_process(*args, cwd=cwd, env=env)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working folder outside the checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert ROOT not in folder.resolve().parents
    return folder


async def test_init_writes_a_site_folder_that_checks_and_runs_from_anywhere(
    tmp_path: Path, elsewhere: Path
) -> None:
    """`gateway init DIR` writes gateway.toml, flows and prompts; `flows check` and
    `run --check` with `-c DIR/gateway.toml` pass from another folder."""
    site = tmp_path / "site"
    code, out = await gateway(elsewhere, "init", str(site))
    assert code == 0, out
    assert (site / "gateway.toml").read_text() == (ROOT / "gateway.example.toml").read_text()
    assert sorted(p.name for p in (site / "flows").iterdir()) == ["hotline.yaml", "survey.yaml"]
    assert (site / "recordings" / "prompts.yaml").is_file()
    assert (site / "recordings" / "zh" / "hotline" / "welcome.wav").is_file()
    assert (site / "recordings" / "zh" / "queue" / "youarenext.txt").is_file()
    toml = str(site / "gateway.toml")

    code, out = await gateway(elsewhere, "-c", toml, "flows", "check")
    assert code == 0, out
    assert f"{site / 'flows' / 'hotline.yaml'}: flow" in out

    async with (
        SimulatedPbx(SimConfig(port=0, secret="s3cret", time_scale=0.01)) as pbx,
        SimulatedTwilio(ACCOUNT, "tok") as twilio,
    ):
        code, out = await gateway(
            elsewhere,
            "-c",
            toml,
            "--set",
            f"pbx.main.port={pbx.port}",
            "--set",
            f"sms.api_base_url={twilio.base_url}",
            "--set",
            f"sms.account_sid={ACCOUNT}",
            "--set",
            "sms.from_number=+8610690000001",
            "--set",
            f"web.port={free_port()}",
            "run",
            "--check",
            env={"GATEWAY_PBX_MAIN_SECRET": "s3cret", "GATEWAY_SMS_AUTH_TOKEN": "tok"},
        )
    assert code == 0, out
    assert "all peers answer" in out
    # The store went to the data folder named in the file, beside the file.
    assert (site / "gateway-data" / "gateway.sqlite3").is_file()
    assert not (elsewhere / "gateway-data").exists()


async def test_init_never_overwrites_a_site(tmp_path: Path, elsewhere: Path) -> None:
    """A folder already holding a gateway.toml is refused with one line; nothing is written."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "gateway.toml").write_text("# mine\n")
    code, out = await gateway(elsewhere, "init", str(site))
    assert code == 1
    assert out.strip().splitlines() == [
        f"gateway init: {site} already holds gateway.toml; nothing written "
        "(choose an empty folder, or move them away first)"
    ]
    assert sorted(p.name for p in site.iterdir()) == ["gateway.toml"]
    assert (site / "gateway.toml").read_text() == "# mine\n"


def test_relative_paths_in_a_file_are_read_from_its_folder(tmp_path: Path) -> None:
    """Relative paths written in the file are anchored at its folder; absolute ones, and
    those given on the command line, are kept as given."""
    path = tmp_path / "conf" / "gateway.toml"
    path.parent.mkdir()
    path.write_text(
        '[gateway]\ndata_dir = "data"\n[ivr]\nflows_dir = "my-flows"\n'
        f'prompts = "{tmp_path / "p.yaml"}"\n'
    )
    loaded = config_module.load(path, env={}, overrides=["store.path=here.sqlite3"])
    assert loaded.gateway.data_dir == path.parent / "data"
    assert Path(loaded.ivr.flows_dir) == path.parent / "my-flows"
    assert Path(loaded.ivr.prompts) == tmp_path / "p.yaml"
    assert loaded.store_path == Path("here.sqlite3")
    assert config_module.load(None, env={}).ivr.flows_dir == "flows"


def test_the_package_carries_the_site_files(tmp_path: Path) -> None:
    """Building the package copies the flows, prompts and example configuration into it,
    as real files, so an installed gateway has them."""
    build = tmp_path / "build"
    setup = "from setuptools import setup; setup()"
    subprocess.run(
        [sys.executable, "-c", setup, "-q", "build_py", "--build-lib", str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    site = build / "gateway" / "site"
    shipped = {
        p.relative_to(site).as_posix()
        for p in site.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix != ".py"
    }
    source = {f"flows/{p.name}" for p in (ROOT / "flows").glob("*.yaml")}
    source |= {
        "recordings/" + p.relative_to(ROOT / "recordings").as_posix()
        for p in (ROOT / "recordings" / "zh").rglob("*")
        if p.suffix in (".wav", ".txt")
    }
    source |= {"recordings/prompts.yaml", "gateway.example.toml"}
    assert shipped == source
