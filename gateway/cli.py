"""The ``gateway`` command line.

Each feature keeps its commands in its own ``commands`` module with a
``register(subparsers)`` function; this module only gathers them, loads the
configuration once and runs the chosen command.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from gateway import config as config_module
from gateway import logs
from gateway.config import Config
from gateway.errors import GatewayError

log = logging.getLogger("gateway")

# Modules whose register() adds subcommands, in the order `gateway --help` lists them.
COMMAND_MODULES = (
    "gateway.run",
    "gateway.demo.commands",
    "gateway.calllog.commands",
    "gateway.cases.commands",
    "gateway.bookings.commands",
    "gateway.callbacks.commands",
    "gateway.reports.commands",
    "gateway.sms.commands",
    "gateway.ivr.commands",
    "gateway.store.commands",
    "gateway.sim.commands",
    "gateway.site.commands",
    "gateway.accounts.commands",
)

Handler = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Telephony and SMS gateway of a police citizen-service centre.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="TOML configuration file (default: $GATEWAY_CONFIG, else built-in defaults)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key; repeatable",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (gateway.data_dir)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    # Hidden: show the Python traceback of an unexpected failure, for developers.
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.data_dir is not None:
        overrides.insert(0, f"gateway.data_dir={args.data_dir}")
    path = args.config
    if path is None and os.environ.get("GATEWAY_CONFIG"):
        path = Path(os.environ["GATEWAY_CONFIG"])
    try:
        config = config_module.load(path, env=os.environ, overrides=overrides)
    except GatewayError as exc:
        print(f"gateway: configuration: {exc}", file=sys.stderr)
        return 2
    logs.setup("DEBUG" if args.verbose or args.debug else config.gateway.log_level)
    for warning in config_module.warnings_of(config):
        log.warning("%s", warning)
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(config, args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`gateway calls | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except GatewayError as exc:
        if args.debug:
            raise
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A file or a socket of the user's set-up (a folder, a port): their mistake.
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"gateway:{where} {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A bug of ours: one line here, the traceback with --debug.
        if args.debug:
            raise
        print(
            f"gateway: internal error ({type(exc).__name__}: {exc}); run again with --debug"
            " to see where",
            file=sys.stderr,
        )
        return 70
