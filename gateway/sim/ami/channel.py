"""A simulated channel and the header blocks Asterisk 22 builds from it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sim.ami.caller import CallerSide

Headers = list[tuple[str, str]]

STATE_DOWN = 0
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6
STATE_DESC = {STATE_DOWN: "Down", STATE_RING: "Ring", STATE_RINGING: "Ringing", STATE_UP: "Up"}

# Q.850 causes and the text Asterisk prints for them (ast_cause2str).
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    34: "Circuit/channel congestion",
}


@dataclass(eq=False)
class SimChannel:
    """One channel of the simulated PBX; ``inbox`` carries digits, speech and hangup to its app."""

    name: str
    uniqueid: str
    linkedid: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: int = 1
    state: int = STATE_DOWN
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    language: str = "en"
    accountcode: str = ""
    dnid: str = "unknown"
    created: float = 0.0  # simulated epoch seconds
    answered_at: float | None = None
    app: str = ""
    appdata: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    bridge_id: str = ""
    hangup_requested: bool = False
    hangup_cause: int = 16
    gone: bool = False
    in_agi: bool = False
    collecting: bool = False  # an AGI command is listening for digits
    recording: bool = False  # a RECORD FILE is running
    speaking_until: float = 0.0  # loop time the caller's current speech ends
    caller: CallerSide | None = None
    inbox: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    agi_commands: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    hungup: asyncio.Event = field(default_factory=asyncio.Event)
    last_app: str = ""
    last_data: str = ""
    dest_channel: str = ""

    @property
    def state_desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")

    @property
    def tech(self) -> str:
        return self.name.split("/", 1)[0]

    def snapshot(self, prefix: str = "") -> Headers:
        """The channel block Asterisk puts in call events (``Dest`` prefix for the other party)."""
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", self.state_desc),
            (f"{p}CallerIDNum", self.caller_num or "<unknown>"),
            (f"{p}CallerIDName", self.caller_name or "<unknown>"),
            (f"{p}ConnectedLineNum", self.connected_num or "<unknown>"),
            (f"{p}ConnectedLineName", self.connected_name or "<unknown>"),
            (f"{p}Language", self.language),
            (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]
