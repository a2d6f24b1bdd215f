"""What a signed-in person may see: a role, and the units whose figures it covers.

    scope = scope_of(request)
    if not scope.sees_unit(case.owner_unit_id): raise 404

Pages and APIs filter their SQL by :attr:`Scope.unit_ids` (None: every unit).
Until people have their own accounts, the one dashboard login (``web.api_token``)
is the leaders' view: all units and the hotline.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

ALL_UNITS_ROLE = "leader"


@dataclass(frozen=True)
class Scope:
    role: str
    username: str
    unit_ids: frozenset[int] | None  # None: sees all units
    hotline: bool  # may see the hotline's figures and wall

    def sees_unit(self, unit_id: int | None) -> bool:
        """True if this person may see what belongs to ``unit_id`` (None: no owner yet,
        seen only by those who see every unit)."""
        if self.unit_ids is None:
            return True
        return unit_id is not None and unit_id in self.unit_ids


LEADER = Scope(role=ALL_UNITS_ROLE, username="dashboard", unit_ids=None, hotline=True)
SCOPE = web.RequestKey("scope", Scope)


def scope_of(request: web.Request) -> Scope:
    """The scope the authentication step gave this request; the shared login's otherwise."""
    given = request.get(SCOPE)
    return given if isinstance(given, Scope) else LEADER
