"""The AMI session to each PBX and the AsyncAGI channels it carries."""

from gateway.pbx.channel import AgiChannel
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
    "OriginateOutcome",
    "OriginateResult",
    "PbxPool",
    "ResyncReport",
]
