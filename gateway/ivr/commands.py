"""``gateway flows check [FILES]``: load and check flow files as the gateway would."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.ivr.errors import FlowError
from gateway.ivr.flow import Flow, load_flow
from gateway.ivr.prompts import PromptCatalogue, load_catalogue


def register(sub: Any) -> None:
    flows = sub.add_parser("flows", help="the IVR flows in flows/")
    flows_sub = flows.add_subparsers(dest="flows_command", metavar="ACTION", required=True)
    check = flows_sub.add_parser(
        "check", help="check flow files (default: every *.yaml in ivr.flows_dir)"
    )
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")
    check.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="the prompt catalogue (default: ivr.prompts)",
    )
    check.set_defaults(handler=_check)


def check_files(files: list[Path], catalogue: PromptCatalogue) -> tuple[list[Flow], list[str]]:
    """Load every file; return the good flows and one message per bad file."""
    flows: list[Flow] = []
    errors: list[str] = []
    names: dict[str, str] = {}
    for path in files:
        try:
            flow = load_flow(path, catalogue)
        except FlowError as exc:
            errors.append(str(exc))
            continue
        if flow.name in names:
            errors.append(f"{path}: flow name {flow.name!r} is also used by {names[flow.name]}")
            continue
        names[flow.name] = str(path)
        flows.append(flow)
    return flows, errors


async def _check(config: Config, args: argparse.Namespace) -> int:
    prompts = args.prompts or Path(config.ivr.prompts)
    files: list[Path] = list(args.files)
    if not files:
        folder = Path(config.ivr.flows_dir)
        files = sorted(await asyncio.to_thread(lambda: list(folder.glob("*.yaml"))))
        if not files:
            print(f"gateway flows check: no flow files (*.yaml) in {folder}", file=sys.stderr)
            return 1
    try:
        catalogue = await asyncio.to_thread(load_catalogue, prompts)
    except FlowError as exc:
        print(f"gateway flows check: prompt catalogue: {exc}", file=sys.stderr)
        return 1
    flows, errors = await asyncio.to_thread(check_files, files, catalogue)
    for flow in flows:
        print(f"{flow.file}: flow {flow.name!r}, {len(flow.nodes)} nodes, start {flow.start!r}: ok")
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(
            f"gateway flows check: {len(errors)} of {len(files)} files have problems",
            file=sys.stderr,
        )
        return 1
    print(f"{len(flows)} flows ok ({len(catalogue)} prompts in {prompts})")
    return 0
