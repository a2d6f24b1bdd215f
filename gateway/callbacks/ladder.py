"""Who holds a matter at each of the four escalation levels, and who is texted there.

The one place that turns the escalation policy's levels (``policy.LEVEL_NAMES``) into
units and people, for rectification orders and overdue cases alike:

1. the unit itself (a station), 2. its parent (the sub-bureau or county bureau),
3. the supervision office (``callbacks.supervision_unit``), 4. the leadership
(``callbacks.leadership_units``). At each level the chiefs of the holding units are
texted, or their leaders when a unit has no chief on file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.callbacks.policy import next_level
from gateway.config import CallbacksSection
from gateway.store.units import Officer, UnitRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    """The first level from a starting one at which somebody can be texted."""

    level: int
    recipients: tuple[Officer, ...]
    # Levels passed over on the way, each with the names of its heads without a mobile.
    skipped: tuple[tuple[int, tuple[str, ...]], ...]


class Ladder:
    def __init__(self, units: UnitRepository, settings: CallbacksSection) -> None:
        self.units = units
        self.settings = settings

    async def holding_units(self, unit_id: int | None, level: int) -> list[int]:
        """The units that hold a matter of ``unit_id`` at ``level`` (none below level 3
        for a matter without a unit)."""
        if level == 1:
            return [unit_id] if unit_id is not None else []
        if level == 2:
            if unit_id is None:
                return []
            parents = await self.units.ancestors(unit_id)
            return [parents[0].id] if parents else []
        codes = (self.settings.supervision_unit,) if level == 3 else self.settings.leadership_units
        units = []
        for code in codes:
            unit = await self.units.unit_by_code(code)
            if unit is None:
                log.error("escalation: level %d unit %r is not in the unit tree", level, code)
                continue
            units.append(unit.id)
        return units

    async def recipients(self, unit_id: int | None, level: int) -> tuple[list[Officer], list[str]]:
        """Who heads the matter at ``level``, split into reachable and without a mobile."""
        reachable: list[Officer] = []
        missing: list[str] = []
        for holder in await self.holding_units(unit_id, level):
            heads = await self.units.officers(holder, "chief")
            heads = heads or await self.units.officers(holder, "leader")
            for officer in heads:
                if officer.mobile:
                    reachable.append(officer)
                else:
                    missing.append(officer.name)
        return reachable, missing

    async def reachable_from(self, unit_id: int | None, level: int) -> Rung | None:
        """The first level at or above ``level`` with somebody to text; None if nobody
        at any level up to the top can be reached."""
        skipped: list[tuple[int, tuple[str, ...]]] = []
        current: int | None = level
        while current is not None:
            reachable, missing = await self.recipients(unit_id, current)
            if reachable:
                return Rung(current, tuple(reachable), tuple(skipped))
            skipped.append((current, tuple(missing)))
            current = next_level(current)
        return None
