"""What every handler reads from a request, checked the same way everywhere.

* :func:`read_json` — the JSON body: not JSON, not UTF-8, or nested deeper than
  :data:`MAX_JSON_DEPTH` is a 400 naming the problem (never a ``RecursionError``);
* :func:`path_id` — a numeric id from the URL: out of SQLite's integer range is
  simply not found (404), never an ``OverflowError``;
* :func:`path_reference` — a reference from the URL, within :mod:`gateway.limits`;
* :func:`query_whole` — a whole number from the query, within its range.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.limits import BadText, check_reference
from gateway.web.errors import ApiError

MAX_JSON_DEPTH = 32
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True if ``value`` nests lists/objects deeper than ``limit`` levels (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 that says what is wrong with it."""
    raw = await request.read()
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the body is not UTF-8 text") from None
    except RecursionError:
        raise ApiError(
            400, "too_deep", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise ApiError(400, "too_deep", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def path_id(request: web.Request, name: str = "id", error_id: str = "not_found") -> int:
    """A positive integer id from the URL; anything SQLite cannot hold is a 404 with the
    same ``error_id`` the endpoint gives for an id it does not hold."""
    text = request.match_info[name]
    if not text.isdigit() or len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        raise ApiError(404, error_id, f"no such {name}", {name: text[:32]})
    return int(text)


def path_reference(request: web.Request, name: str) -> str:
    """A reference from the URL, within the documented limits; else 404 (it cannot exist)."""
    text = request.match_info[name]
    try:
        return check_reference(text, name)
    except BadText as exc:
        raise ApiError(404, "not_found", f"no such {name}: {exc.reason}") from None


def string_fields(body: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """A JSON object of string ``fields`` (missing ones empty): anything else is a 400
    naming the field (an unknown one, or one that is not a string)."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(
            400, "bad_field", f"{unknown[0]}: unknown field", {"field": unknown[0], "known": fields}
        )
    values: dict[str, str] = {}
    for name in fields:
        value = body.get(name, "")
        if not isinstance(value, str):
            raise ApiError(400, "bad_field", f"{name}: must be a string", {"field": name})
        values[name] = value
    return values


def query_whole(request: web.Request, name: str, most: int) -> int | None:
    """The query's whole number ``name`` (1 to ``most``), None if not given; else a 400."""
    given = request.query.get(name)
    if given is None:
        return None
    if not given.isdigit() or not 1 <= int(given) <= most:
        raise ApiError(400, f"bad_{name}", f"{name} must be a whole number from 1 to {most}")
    return int(given)
