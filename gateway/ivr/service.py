"""Wiring the flow engine from the configuration: flows, prompts, hours, message folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.clock import Clock
from gateway.config import Config, ConfigError
from gateway.ivr.actions import ActionRegistry
from gateway.ivr.flow import Flow, load_flows
from gateway.ivr.hours import HoursError, WorkingHours
from gateway.ivr.prompts import PromptCatalogue, load_catalogue
from gateway.ivr.runner import FlowRunner, MessageFolder


@dataclass(frozen=True)
class Ivr:
    """The loaded flows and the runner that plays them; one per application."""

    flows: dict[str, Flow]
    catalogue: PromptCatalogue
    runner: FlowRunner

    def flow(self, name: str) -> Flow:
        return self.flows[name]


def working_hours(config: Config, clock: Clock) -> WorkingHours:
    """The hotline's working hours from ``[hotline]``, in the clock's local timezone."""
    section = config.hotline
    try:
        return WorkingHours.parse(
            section.working_hours, section.working_days, section.holidays, clock.tz
        )
    except HoursError as exc:
        raise ConfigError("hotline.working_hours", config.source, str(exc)) from None


def load_ivr(config: Config, actions: ActionRegistry, clock: Clock) -> Ivr:
    """Load and check every flow and the prompt catalogue (blocking: run it in a thread).

    Raises :class:`gateway.ivr.errors.FlowError` for a bad flow or catalogue and
    :class:`ConfigError` for bad working hours.
    """
    catalogue = load_catalogue(Path(config.ivr.prompts))
    flows = load_flows(Path(config.ivr.flows_dir), catalogue)
    runner = FlowRunner(
        actions=actions,
        clock=clock,
        catalogue=catalogue,
        messages=MessageFolder(config.gateway.data_dir / config.ivr.messages_dir, clock),
        hours=working_hours(config, clock),
    )
    return Ivr(flows, catalogue, runner)
