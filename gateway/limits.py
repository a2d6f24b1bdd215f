"""Documented limits on the text a client or an import file may send us.

Checked at the edge (HTTP handlers, CSV import) and again by the services, so a
value that breaks a limit is refused before anything is written:

* a **reference** (served item, rectification order, idempotency key) is
  1–:data:`MAX_REFERENCE` printable characters, no ``/`` or ``\\`` (it becomes a
  URL path segment), no surrounding spaces;
* a **name** (citizen, officer, actor, template, purpose) is at most
  :data:`MAX_NAME` printable characters;
* a **note** is at most :data:`MAX_NOTE` characters; line breaks and tabs are
  allowed, other control characters (NUL …) are not.
"""

from __future__ import annotations

MAX_REFERENCE = 64
MAX_NAME = 64
MAX_NOTE = 2000


class BadText(ValueError):
    """A value breaks a documented limit; ``field`` and ``reason`` say which and how."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _first_unprintable(value: str, allowed: str = "") -> str | None:
    for char in value:
        if not char.isprintable() and char not in allowed:
            return char
    return None


def check_reference(value: str, field: str = "reference") -> str:
    """``value`` stripped, if it is a valid reference; else :class:`BadText`."""
    value = value.strip()
    if not value:
        raise BadText(field, "empty")
    if len(value) > MAX_REFERENCE:
        raise BadText(field, f"longer than {MAX_REFERENCE} characters ({len(value)})")
    bad = _first_unprintable(value)
    if bad is not None:
        raise BadText(field, f"holds the control character U+{ord(bad):04X}")
    if "/" in value or "\\" in value:
        raise BadText(field, "holds a slash ('/' or '\\')")
    return value


def check_name(value: str, field: str, max_length: int = MAX_NAME) -> str:
    """``value`` stripped, if printable and at most ``max_length`` long; else :class:`BadText`."""
    value = value.strip()
    if len(value) > max_length:
        raise BadText(field, f"longer than {max_length} characters ({len(value)})")
    bad = _first_unprintable(value)
    if bad is not None:
        raise BadText(field, f"holds the control character U+{ord(bad):04X}")
    return value


def check_note(value: str, field: str = "note") -> str:
    """A free text of at most :data:`MAX_NOTE` characters; line breaks and tabs allowed."""
    value = value.strip()
    if len(value) > MAX_NOTE:
        raise BadText(field, f"longer than {MAX_NOTE} characters ({len(value)})")
    bad = _first_unprintable(value, allowed="\n\r\t")
    if bad is not None:
        raise BadText(field, f"holds the control character U+{ord(bad):04X}")
    return value
