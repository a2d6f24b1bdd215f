"""Passwords: what a new one must be, and hashing with argon2id (argon2-cffi's
defaults, RFC 9106's second recommendation) off the event loop."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 128

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the name is unknown, so that a wrong name costs what a
    wrong password costs and the time taken does not tell which names exist."""
    return _HASHER.hash("not a password of anyone")


class BadPassword(ValueError):
    """A new password that does not meet the rules; the message says which."""


def check_new(password: str) -> str:
    """``password`` if it may be set, else :class:`BadPassword` saying why."""
    if len(password) < MIN_LENGTH:
        raise BadPassword(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise BadPassword(f"the password must be at most {MAX_LENGTH} characters long")
    if not password.isprintable():
        raise BadPassword("the password must not contain control characters")
    if len(set(password)) < 5:
        raise BadPassword("the password is too weak: use at least 5 different characters")
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify(stored: str | None, password: str) -> tuple[bool, bool]:
    """(right, needs a new hash): ``stored`` None checks against a dummy hash and is
    never right."""
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    try:
        _HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False, False
    if stored is None:
        return False, False
    return True, _HASHER.check_needs_rehash(stored)
