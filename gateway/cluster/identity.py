"""This gateway's name among the gateways on one database (``[gateway] name``).

The name owns what this gateway holds in the store (outbox leases, callback attempts)
and is how ``/health`` and the logs tell gateways apart. It is stable across restarts
(by default derived from the host name), so a restarted gateway knows its own rows
again; two gateways on one database must have different names.
"""

from __future__ import annotations

import re
import socket

NAME_PATTERN = r"[A-Za-z0-9_-]{1,32}"
NAME_FORM = "1–32 letters, digits, '_' or '-'"
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def name_from_host(host: str) -> str:
    """A valid name from a host name: its first label, other characters as '-', at most
    32 characters; "gateway" when nothing is left."""
    label = host.split(".", 1)[0]
    name = _NOT_NAME.sub("-", label).strip("-")[:32].strip("-")
    return name or "gateway"


def default_name() -> str:
    """The name of a gateway that sets none: this host's (the same after a restart)."""
    return name_from_host(socket.gethostname())
