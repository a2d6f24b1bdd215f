"""Who is looking and at which day: what every dashboard page asks first.

* :func:`viewer` — the :class:`~gateway.web.scope.Scope` the authentication
  middleware found; a page without a session goes to ``/login``, JSON answers 401;
* :func:`shown_day` — the day the page reports on: ``?day=YYYY-MM-DD`` if given
  (not in the future, at most :data:`MAX_DAYS_BACK` days back; anything else is a
  400 saying so), else today, or, when today holds nothing the viewer may see yet,
  the latest day that does (after the demo's simulated day, its day stays on show).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from gateway.callbacks.report import Period, period_of
from gateway.web.app import CLOCK, STORE
from gateway.web.errors import ApiError
from gateway.web.scope import NotLoggedIn, Scope, scope_of

MAX_DAYS_BACK = 731
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


async def viewer(request: web.Request, *, page: bool) -> Scope:
    """The scope of the signed-in person (or machine client); else to /login (a page)
    or 401 (JSON)."""
    try:
        return scope_of(request)
    except NotLoggedIn:
        if page:
            raise web.HTTPFound("/login") from None
        raise


@dataclass(frozen=True)
class ShownDay:
    day: date
    today: date
    period: Period  # the day as a UTC span
    latest: bool  # today held nothing to show: this is the latest day that does

    @property
    def label(self) -> str:
        return self.day.isoformat()


def parse_day(text: str, today: date) -> date:
    """A day as typed in the picker; a 400 naming the mistake otherwise."""
    if not _DAY.match(text):
        raise ApiError(400, "bad_day", f"day must be a date as YYYY-MM-DD, not {text[:32]!r}")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_day", f"{text} is not a date on the calendar") from None
    if day > today:
        raise ApiError(400, "bad_day", f"{text} is in the future (today is {today})")
    if day < today - timedelta(days=MAX_DAYS_BACK):
        raise ApiError(400, "bad_day", f"{text} is more than {MAX_DAYS_BACK} days back")
    return day


async def shown_day(request: web.Request, scope: Scope) -> ShownDay:
    clock = request.app[CLOCK]
    today = clock.local().date()
    given = request.query.get("day", "").strip()
    if given:
        day = parse_day(given, today)
        return ShownDay(day, today, period_of(clock, day, day), latest=False)
    tomorrow = datetime(today.year, today.month, today.day, tzinfo=clock.tz) + timedelta(days=1)
    latest = await request.app[STORE].dashboard.latest_day(scope.unit_ids, tomorrow.astimezone(UTC))
    if latest is not None and latest < today:
        return ShownDay(latest, today, period_of(clock, latest, latest), latest=True)
    return ShownDay(today, today, period_of(clock, today, today), latest=False)
