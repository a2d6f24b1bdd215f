"""The PBX host's clock: its UTC offset, asked over AMI.

Cdr and CEL times are written in the PBX host's local time. The call log learns
the offset from the events themselves (see :mod:`gateway.calllog.builder`); this
asks for it directly, right after a login and for ``run --check``: ``Getvar``
without a channel reads a dialplan function on a dummy channel, and
``STRFTIME(,,%z)`` is the host's offset now, e.g. ``+0800``. It needs the
``call`` or ``reporting`` write class, which the shipped manager user has.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.ami import names
from gateway.ami.frames import Frame
from gateway.calllog.builder import format_offset
from gateway.errors import GatewayError

OFFSET_PROBE = "STRFTIME(,,%z)"
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


class ActionSender(Protocol):
    """What the probe needs of an AMI session (``gateway.pbx.session.AmiSession``)."""

    async def action(
        self, headers: dict[str, str | list[str]], *, reply_timeout: float | None = None
    ) -> Frame: ...


class PbxClockError(GatewayError):
    """The PBX did not tell its clock's offset."""


def parse_utc_offset(text: str) -> timedelta:
    """``+0800`` / ``-03:30`` → a timedelta; anything else raises ValueError."""
    match = _OFFSET.match(text.strip())
    if match is None:
        raise ValueError(f"not a UTC offset: {text!r}")
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=14) or int(minutes) >= 60:
        raise ValueError(f"not a UTC offset: {text!r}")
    return -offset if sign == "-" else offset


async def probe_pbx_offset(session: ActionSender, *, reply_timeout: float = 5.0) -> timedelta:
    """Ask the PBX for its UTC offset now. Raises PbxClockError (one line) or the
    session's own errors (not connected, refused, timed out)."""
    reply = await session.action(
        {names.H_ACTION: names.ACTION_GETVAR, names.H_VARIABLE: OFFSET_PROBE},
        reply_timeout=reply_timeout,
    )
    value = reply.get(names.H_VALUE) or ""
    try:
        return parse_utc_offset(value)
    except ValueError:
        raise PbxClockError(
            f"the PBX answered {OFFSET_PROBE} with {value!r}, not a UTC offset"
        ) from None


async def check_pbx_clock(
    session: ActionSender, pbx: str, configured: str = "", *, reply_timeout: float = 5.0
) -> tuple[bool, str]:
    """For ``run --check``: whether the PBX's clock is known, and one line saying it.

    ``configured`` is ``pbx.<name>.timezone`` (empty: not set); a setting whose
    offset now differs from what the PBX says is reported, not trusted."""
    try:
        offset = await probe_pbx_offset(session, reply_timeout=reply_timeout)
    except Exception as exc:  # the session's errors carry their own one-line message
        return False, (
            f"PBX {pbx} clock: could not ask ({exc}); Cdr times are read with the offset"
            " learned from its first call"
        )
    line = f"PBX {pbx} clock: UTC{format_offset(offset)} (asked with Getvar {OFFSET_PROBE})"
    if not configured:
        return True, line
    try:
        zone = ZoneInfo(configured)
    except (ZoneInfoNotFoundError, ValueError):
        return False, f"{line}; pbx.{pbx}.timezone {configured!r} is not a timezone"
    expected = datetime.now(zone).utcoffset()
    if expected != offset:
        return False, (
            f"{line}; pbx.{pbx}.timezone {configured} is UTC"
            f"{format_offset(expected or timedelta(0))} now: the PBX's own clock is used"
        )
    return True, f"{line}, as pbx.{pbx}.timezone {configured} says"
