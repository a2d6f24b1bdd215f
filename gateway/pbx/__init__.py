"""The AMI session to each PBX and the AGI calls it serves.

``session`` wires the parts: ``transport`` (bytes ↔ frames), ``dispatch``
(actions and listeners), ``link`` (login, keep-alive, reconnect), ``resync``,
``originate``, and the ``agi_router`` that runs a flow for each call brought
by either AGI transport, ``asyncagi`` (over AMI) or ``fastagi`` (its own TCP
server). ``pool`` holds one session per configured PBX.
"""

from gateway.pbx.channel import AgiChannel
from gateway.pbx.exceptions import OriginateOutcomeUnknown
from gateway.pbx.fastagi import FastAgiServer
from gateway.pbx.session import (
    AmiSession,
    ChannelInfo,
    OriginateOutcome,
    OriginateResult,
    PbxPool,
    ResyncReport,
)

__all__ = [
    "AgiChannel",
    "AmiSession",
    "ChannelInfo",
    "FastAgiServer",
    "OriginateOutcome",
    "OriginateOutcomeUnknown",
    "OriginateResult",
    "PbxPool",
    "ResyncReport",
]
