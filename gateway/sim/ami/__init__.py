"""A simulated Asterisk 22 speaking AMI over TCP: logins, actions, events, AsyncAGI,
scripted callers, outbound callbacks to simulated citizens, queues of agent seats,
and faults on demand.

Public names::

    SimulatedPbx, SimConfig, SimCall, CallOutcome
    CallerScript, WaitForPrompt, Press, Silence, Speak, HangUp, WaitForAgent
    CitizenBehaviour = Answer | Busy | NoAnswer | Unreachable
    random_caller, generate_calls
"""

from gateway.sim.ami.config import SimConfig
from gateway.sim.ami.population import generate_calls, random_caller
from gateway.sim.ami.script import (
    Answer,
    Busy,
    CallerScript,
    CallOutcome,
    CitizenBehaviour,
    HangUp,
    NoAnswer,
    Press,
    Silence,
    Speak,
    Step,
    Unreachable,
    WaitForAgent,
    WaitForPrompt,
)
from gateway.sim.ami.server import SimulatedPbx
from gateway.sim.ami.world import SimCall

__all__ = [
    "Answer",
    "Busy",
    "CallOutcome",
    "CallerScript",
    "CitizenBehaviour",
    "HangUp",
    "NoAnswer",
    "Press",
    "Silence",
    "SimCall",
    "SimConfig",
    "SimulatedPbx",
    "Speak",
    "Step",
    "Unreachable",
    "WaitForAgent",
    "WaitForPrompt",
    "generate_calls",
    "random_caller",
]
