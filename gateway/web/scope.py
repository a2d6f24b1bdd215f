"""What the person (or machine) behind a request may see: the role's :class:`Scope`.

The authentication middleware (:mod:`gateway.web.auth`) resolves every request's
credential before its handler runs; handlers ask for the result with
:func:`scope_of` and filter their SQL by ``scope.unit_ids``::

    scope = scope_of(request)            # not logged in: 401 (API) or /login (page)
    rows = await figures.orders_page(..., units=scope.unit_ids)
    if not scope.sees_unit(case.owner_unit_id):
        raise ApiError(404, ...)         # 404, never 403: existence does not leak
    await audit(request, "view_case", case.number)

``unit_ids`` is None for those who see every unit (a leader, the supervision
office, a machine client with the API token); a set of unit ids otherwise (empty
for the hotline supervisor, who sees the hotline only).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.web.errors import ApiError

# The role of a machine client (the API's bearer token): sees what it always did.
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

    @property
    def person(self) -> bool:
        """A person logged in (not a machine client)."""
        return self.role != MACHINE


MACHINE_SCOPE = Scope(MACHINE, "api", None, True)

SCOPE: web.RequestKey[Scope] = web.RequestKey("scope", Scope)


class NotLoggedIn(ApiError):
    """No valid credential: JSON and API requests answer 401, pages go to /login."""

    def __init__(self) -> None:
        super().__init__(401, "unauthorized", "log in at /login, or give the API's bearer token")


def scope_of(request: web.Request) -> Scope:
    """The scope of the request's credential; :class:`NotLoggedIn` if it has none."""
    scope: Scope | None = request.get(SCOPE)
    if scope is None:
        raise NotLoggedIn()
    return scope


async def audit(request: web.Request, action: str, target: str = "", detail: str = "") -> None:
    """Write who (the request's person) did or viewed what to the audit log. Machine
    clients are not audited here: they are systems, each with its own logs."""
    scope = scope_of(request)
    if not scope.person:
        return
    from gateway.web.app import STORE  # the app imports this module's users

    await request.app[STORE].accounts.audit(
        scope.username,
        action,
        target,
        detail,
        role=scope.role,
        address=request.remote or "unknown",
    )
