"""``gateway sim ami`` and ``gateway sim twilio``: each simulator alone, for any client."""

from __future__ import annotations

import importlib
from typing import Any

# Each module has register(sim_subparsers) adding its own subcommand.
SIM_MODULES = (
    "gateway.sim.ami.commands",
    "gateway.sim.twilio.commands",
)


def register(sub: Any) -> None:
    sim = sub.add_parser("sim", help="run a simulated peer (PBX or Twilio) on its own")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="PEER", required=True)
    for name in SIM_MODULES:
        importlib.import_module(name).register(sim_sub)
