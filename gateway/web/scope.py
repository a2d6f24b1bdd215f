"""What the person (or machine) behind a request may see: the role's :class:`Scope`.

Handlers ask with :func:`scope_of` and filter by ``scope.unit_ids`` (None: every
unit). Until people have accounts of their own, the only credential is the API's
bearer token, which :func:`gateway.web.app.auth_middleware` has checked before any
``/api/`` handler runs: whoever holds it sees every unit and the hotline.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

# The role of a machine client (the API's bearer token): sees everything.
MACHINE = "machine"


@dataclass(frozen=True)
class Scope:
    role: str
    username: str
    unit_ids: frozenset[int] | None  # None: sees all units
    hotline: bool  # may see the hotline's figures and wall

    def sees_unit(self, unit_id: int | None) -> bool:
        """True if a thing of ``unit_id`` is visible; a thing of no unit only to those
        who see all units."""
        if self.unit_ids is None:
            return True
        return unit_id is not None and unit_id in self.unit_ids


MACHINE_SCOPE = Scope(MACHINE, "api", None, True)


def scope_of(request: web.Request) -> Scope:
    """The scope of the request's credential: the API's bearer token, checked already."""
    return MACHINE_SCOPE
