"""People's accounts for web tests: the demo city's leader and station chiefs."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.accounts.service import AccountService
from gateway.config import Config
from gateway.store import Store
from gateway.web.auth import SESSION_COOKIE

PASSWORD = "Lz-dashboard-2026"
# name → (role, unit); the demo city's units (gateway/store/seeds/demo-city.toml).
PEOPLE = {
    "leader": ("leader", "LZ"),
    "ducha": ("supervision", "LZ-DUCHA"),
    "dongcheng": ("bureau", "LZ-DC"),
    "dongguan": ("station", "LZ-DC-01"),
    "xiguan": ("station", "LZ-DC-02"),
    "hotline": ("hotline", "LZ-MSJW"),
}

Client = TestClient[web.Request, web.Application]


async def add_people(store: Store, config: Config, *names: str) -> None:
    """Accounts for ``names`` (keys of :data:`PEOPLE`), all with :data:`PASSWORD`."""
    accounts = AccountService(store, config.web)
    for name in names:
        role, unit = PEOPLE[name]
        await accounts.add(name, role, unit, PASSWORD, actor="test")


async def log_in(http: Client, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Log ``name`` in through the form; the cookie header of their session."""
    response = await http.post(
        "/login", data={"username": name, "password": password}, allow_redirects=False
    )
    assert response.status == 302, f"{name} could not log in: {response.status}"
    return {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"}
