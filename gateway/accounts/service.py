"""Accounts, logins and sessions of people, over the store.

* :meth:`AccountService.add` / :meth:`passwd` / :meth:`disable` check every input
  first and refuse in one line (:class:`AccountError`): an unknown role or unit, a
  role that does not fit the unit's kind, a name taken, a weak password.
* :meth:`AccountService.login` checks the failed-login limit by account name and
  by client address (counted in the store, so a restart forgets nothing), then the
  password; a wrong name and a wrong password look and take the same.
* :meth:`AccountService.session` turns a session cookie into the person's
  :class:`~gateway.web.scope.Scope`, or None if the session is not open.

Every login, failed login, logout and change of an account goes to the audit log.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from gateway.accounts.passwords import BadPassword, check_new, hash_password, verify
from gateway.accounts.roles import ROLES
from gateway.config import WebSection
from gateway.errors import GatewayError
from gateway.store import Store
from gateway.store.accounts import User
from gateway.store.db import StoreError
from gateway.store.units import Unit
from gateway.web.scope import Scope

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,31}")
MAX_DISPLAY_NAME = 32
# A name tried at the login is counted and audited cut to this length (no real name is longer).
MAX_TRIED_NAME = 64


class AccountError(GatewayError):
    """A refused change of an account; the message is one line naming the problem."""


class LoginRefused(Exception):
    """A login that did not open a session: ``wait`` > 0 if the limit was reached."""

    def __init__(self, wait: int = 0) -> None:
        super().__init__(f"login refused (wait {wait} s)" if wait else "login refused")
        self.wait = wait


@dataclass(frozen=True)
class Login:
    token: str  # the cookie's value; the store keeps only its hash
    user: User
    scope: Scope


class AccountService:
    def __init__(self, store: Store, web: WebSection) -> None:
        self.store = store
        self.web = web
        self.idle = timedelta(seconds=web.session_idle)
        self.lifetime = timedelta(seconds=web.session_lifetime)
        self.window = timedelta(seconds=web.login_failure_window)

    # -- accounts ---------------------------------------------------------------

    async def check_add(
        self, username: str, role: str, unit_code: str, display_name: str = ""
    ) -> Unit:
        """The unit of a new account, once everything but the password is checked
        (the command line checks before it asks for the password)."""
        check_username(username)
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        unit = await self.store.units.unit_by_code(unit_code)
        if unit is None:
            raise AccountError(f"unknown unit {unit_code!r}")
        kinds = ROLES[role].unit_kinds
        if unit.kind not in kinds:
            raise AccountError(
                f"role {role} needs a unit of kind {' or '.join(kinds)};"
                f" {unit_code} is a {unit.kind}"
            )
        if len(display_name) > MAX_DISPLAY_NAME or not display_name.isprintable():
            raise AccountError(f"the name must be at most {MAX_DISPLAY_NAME} printable characters")
        if await self.store.accounts.user_by_name(username) is not None:
            raise AccountError(f"user {username!r} already exists")
        return unit

    async def add(
        self,
        username: str,
        role: str,
        unit_code: str,
        password: str,
        *,
        display_name: str = "",
        actor: str,
        address: str = "",
    ) -> User:
        unit = await self.check_add(username, role, unit_code, display_name)
        hashed = await hash_password(_checked(password))
        try:
            return await self.store.accounts.add_user(
                username, role, unit.id, hashed, display_name.strip(), (actor, address)
            )
        except StoreError as exc:  # taken meanwhile by another command
            raise AccountError(str(exc)) from None

    async def passwd(self, username: str, password: str, *, actor: str, address: str = "") -> User:
        """A new password; the user's open sessions end."""
        user = await self.user(username)
        hashed = await hash_password(_checked(password))
        await self.store.accounts.set_password(user.id, hashed, (actor, address))
        return user

    async def disable(
        self, username: str, *, actor: str, address: str = "", disabled: bool = True
    ) -> User:
        """Disable an account (its sessions end at once) or enable it again."""
        user = await self.user(username)
        await self.store.accounts.set_disabled(user.id, disabled, (actor, address))
        return user

    async def user(self, username: str) -> User:
        """The account ``username``; :class:`AccountError` if there is none."""
        user = await self.store.accounts.user_by_name(username)
        if user is None:
            raise AccountError(f"no user {username!r}")
        return user

    async def scope(self, user: User) -> Scope:
        """What ``user`` may see, by their role and their unit's place in the tree."""
        role = ROLES[user.role]
        units: frozenset[int] | None
        if role.all_units:
            units = None
        elif role.unit_tree:
            units = await self.store.units.subtree(user.unit_id)
        elif role.hotline:
            units = frozenset()
        else:
            units = frozenset({user.unit_id})
        return Scope(user.role, user.username, units, role.hotline)

    # -- logins -----------------------------------------------------------------

    async def login(self, username: str, password: str, address: str) -> Login:
        """A new session, or :class:`LoginRefused` (wrong name or password, disabled, or
        the limit reached by this name or this address)."""
        accounts = self.store.accounts
        username = username[:MAX_TRIED_NAME]  # what is counted and audited of a tried name
        wait = await accounts.begin_login(
            username,
            address,
            window=self.window,
            most_by_name=self.web.login_max_failures,
            most_by_address=self.web.login_max_failures_per_address,
        )
        if wait:
            await accounts.audit(
                username,
                "login_refused",
                username,
                f"too many failures; wait {wait} s",
                address=address,
            )
            raise LoginRefused(wait)
        user = await accounts.user_by_name(username) if USERNAME.fullmatch(username) else None
        right, rehash = await verify(user.password_hash if user else None, password)
        if user is None or not right or not user.active:
            role = user.role if user else ""
            await accounts.audit(username, "login_failed", username, role=role, address=address)
            raise LoginRefused()
        if rehash:
            await accounts.rehash(user.id, user.password_hash, await hash_password(password))
        await accounts.clear_failures(username)
        token = secrets.token_urlsafe(32)
        await self.store.sessions.start(token, user.id, address, self.lifetime)
        await accounts.audit(user.username, "login", "", role=user.role, address=address)
        return Login(token, user, await self.scope(user))

    async def session(self, token: str) -> Scope | None:
        """The scope of an open session, None if it ended, idled or aged out."""
        live = await self.store.sessions.live(token, self.idle, self.lifetime)
        if live is None:
            return None
        user = await self.store.accounts.user(live.user_id)
        if user is None or not user.active:
            return None
        return await self.scope(user)

    async def logout(self, token: str, address: str) -> None:
        user_id = await self.store.sessions.end(token)
        if user_id is None:
            return
        user = await self.store.accounts.user(user_id)
        if user is not None:
            await self.store.accounts.audit(
                user.username, "logout", "", role=user.role, address=address
            )


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise AccountError(
            f"bad user name {username[:40]!r}: 2-32 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return username


def _checked(password: str) -> str:
    try:
        return check_new(password)
    except BadPassword as exc:
        raise AccountError(str(exc)) from None
