"""``gateway init DIR``: a site folder with gateway.toml, the flows and the prompts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.site import CONFIG_NAME, SiteError, init_site


def register(sub: Any) -> None:
    init = sub.add_parser(
        "init",
        help="write a site folder: gateway.toml, the flows and the voice prompts, to edit",
    )
    init.add_argument("folder", type=Path, metavar="DIR", help="the folder to write (new or empty)")
    init.set_defaults(handler=_init)


async def _init(config: Config, args: argparse.Namespace) -> int:
    folder: Path = args.folder
    try:
        written = await asyncio.to_thread(init_site, folder)
    except SiteError as exc:
        print(f"gateway init: {exc}", file=sys.stderr)
        return 1
    prompts = sum(1 for path in written if path.suffix == ".wav")
    flows = sum(1 for path in written if path.parent.name == "flows")
    toml = folder / CONFIG_NAME
    print(
        f"wrote {toml}, {flows} flows in {folder / 'flows'}, {prompts} prompts in "
        f"{folder / 'recordings'}"
    )
    print(
        f"next: edit {toml} (PBX, Twilio, web address; secrets go in the environment), "
        f"copy {folder / 'recordings' / 'zh'} to Asterisk's sounds folder as zh/, then\n"
        f"  gateway -c {toml} flows check\n  gateway -c {toml} run --check\n"
        f"and give each person who reads the dashboard an account, e.g. a leader:\n"
        f"  gateway -c {toml} users add NAME --role leader --unit CITY-UNIT-CODE"
    )
    return 0
