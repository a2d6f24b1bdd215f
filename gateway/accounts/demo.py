"""The demo's people: a leader who sees every unit and the chief of 东关派出所, who sees
his station only, each with a fresh random password that the demo prints once."""

from __future__ import annotations

import secrets

from gateway.accounts.service import AccountService
from gateway.config import WebSection
from gateway.store import Store

# username → (role, unit code, name): officers of the demo city (demo-city.toml).
DEMO_PEOPLE = {
    "leader": ("leader", "LZ", "杜杰"),
    "dongguan": ("station", "LZ-DC-01", "周伟"),
}


async def add_demo_people(store: Store, web: WebSection) -> dict[str, str]:
    """Add the demo's accounts; their passwords by username."""
    accounts = AccountService(store, web)
    passwords = {}
    for username, (role, unit, name) in DEMO_PEOPLE.items():
        password = secrets.token_urlsafe(12)
        await accounts.add(username, role, unit, password, display_name=name, actor="demo")
        passwords[username] = password
    return passwords
