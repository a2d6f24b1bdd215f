"""The API's OpenAPI 3.1 document, merged from one fragment per part, served at
``GET /api/openapi.json``.

Each part documents its own routes in ``gateway/web/openapi/<part>.yaml``: a
mapping with ``paths:`` and optionally ``components:`` (``schemas``, ``responses``,
``parameters``). :func:`load_document` merges them into one document and refuses,
naming the fragment(s):

* a component name defined in two fragments (``components.schemas.Case: defined in
  both appeals.yaml and bookings.yaml``), or an operation (method and path) in two;
* a ``$ref`` that is not a ``#/components/...`` name some fragment defines;
* a path parameter ``{name}`` that the operation does not declare, an operation
  without ``responses``, a key that is not a known method or component kind.

The document is read once when the application starts, so a broken fragment stops
the gateway at start (and the suite, ``tests/test_openapi.py``), never a request.
It is served under ``/api/`` behind the API's bearer token like every route it
describes: it holds no secret, but it maps a police system's surface and only the
API's clients need it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml
from aiohttp import web

import gateway
from gateway.errors import GatewayError
from gateway.web.app import CONFIG
from gateway.web.scope import scope_of

OPENAPI_PATH = "/api/openapi.json"
OPENAPI_VERSION = "3.1.0"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
COMPONENT_KINDS = ("schemas", "responses", "parameters")
_PATH_FIELDS = frozenset({*METHODS, "parameters", "summary", "description"})
_REF = re.compile(r"^#/components/(schemas|responses|parameters)/([A-Za-z0-9._-]+)$")
_TEMPLATE = re.compile(r"\{([^}/]+)\}")

DOCUMENT = web.AppKey("openapi_document", bytes)

# What the merged document carries besides the fragments: who the API is for and how
# it is authenticated (the schemes are named by the fragments' ``security``).
_BASE: dict[str, Any] = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "Citizen-service gateway API",
        "description": (
            "Served items for callbacks, rectification orders, texts, appeals (cases) from"
            " every channel, and Twilio's webhooks. Every route under /api/ takes"
            " `Authorization: Bearer <web.api_token>`; an address that sends too many wrong"
            " tokens gets 429. Errors are JSON `{error, message, details}`."
        ),
        "version": gateway.__version__,
    },
    "security": [{"bearer": []}],
}
_SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The gateway's `web.api_token`.",
    },
    "channelToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Channel-Token",
        "description": (
            "An intake channel's own credential (`appeals.channels.<name>.token`); a channel"
            " may only submit as itself."
        ),
    },
}


class OpenApiError(GatewayError):
    """A fragment that does not hold together with the others; the message names it."""


def fragment_files(folder: Traversable | None = None) -> list[Traversable]:
    """The fragments shipped with the gateway (or in ``folder``), by name."""
    folder = folder or resources.files("gateway.web").joinpath("openapi")
    return sorted(
        (f for f in folder.iterdir() if f.name.endswith(".yaml") and f.is_file()),
        key=lambda f: f.name,
    )


def parse_fragment(name: str, text: str) -> dict[str, Any]:
    """One fragment's YAML, checked for shape; :class:`OpenApiError` naming ``name``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise OpenApiError(f"{name}{where}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise OpenApiError(f"{name}: must be a mapping with paths: and components:")
    unknown = sorted(set(data) - {"paths", "components"})
    if unknown:
        raise OpenApiError(f"{name}: unknown key {unknown[0]!r} (a fragment has paths, components)")
    paths = data.get("paths") or {}
    components = data.get("components") or {}
    if not isinstance(paths, dict) or not isinstance(components, dict):
        raise OpenApiError(f"{name}: paths and components must be mappings")
    for kind, entries in components.items():
        if kind not in COMPONENT_KINDS:
            raise OpenApiError(
                f"{name}: components.{kind}: unknown kind (known: {', '.join(COMPONENT_KINDS)})"
            )
        if not isinstance(entries, dict):
            raise OpenApiError(f"{name}: components.{kind} must be a mapping")
    for path, item in paths.items():
        _check_path(name, path, item)
    return {"paths": paths, "components": components}


def _check_path(name: str, path: Any, item: Any) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise OpenApiError(f"{name}: path {path!r} must start with /")
    if not isinstance(item, dict):
        raise OpenApiError(f"{name}: {path}: must be a mapping of methods")
    unknown = sorted(str(k) for k in set(item) - _PATH_FIELDS)
    if unknown:
        raise OpenApiError(f"{name}: {path}: {unknown[0]!r} is not an HTTP method")
    for method in METHODS:
        operation = item.get(method)
        if operation is None:
            continue
        where = f"{name}: {method.upper()} {path}"
        if not isinstance(operation, dict):
            raise OpenApiError(f"{where}: must be a mapping")
        responses = operation.get("responses")
        if not isinstance(responses, dict) or not responses:
            raise OpenApiError(f"{where}: has no responses")


def _check_path_parameters(
    paths: dict[str, dict[str, Any]],
    parameters: dict[str, Any],
    owner: dict[tuple[str, str], str],
) -> None:
    """Every ``{name}`` of a path is declared ``in: path`` by each of its operations."""

    def declared(listed: Any) -> set[str]:
        names: set[str] = set()
        for parameter in listed or ():
            if isinstance(parameter, dict) and isinstance(parameter.get("$ref"), str):
                parameter = parameters.get(parameter["$ref"].rsplit("/", 1)[-1], {})
            if isinstance(parameter, dict) and parameter.get("in") == "path":
                names.add(str(parameter.get("name")))
        return names

    for path, item in paths.items():
        shared = declared(item.get("parameters"))
        for method in METHODS:
            if method not in item:
                continue
            names = shared | declared(item[method].get("parameters"))
            for parameter in _TEMPLATE.findall(path):
                if parameter not in names:
                    raise OpenApiError(
                        f"{owner[(path, method)]}: {method.upper()} {path}:"
                        f" path parameter {{{parameter}}} is not declared"
                    )


def merge_fragments(fragments: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One document from parsed fragments ``(name, fragment)``; :class:`OpenApiError`
    naming both fragments when a component or an operation is defined twice, or the
    fragment with a ``$ref`` to nothing."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {kind: {} for kind in COMPONENT_KINDS}
    owner: dict[tuple[str, str], str] = {}  # (kind or path, name or method) → fragment
    refs: list[tuple[str, str, str]] = []  # fragment, where, $ref
    for name, fragment in fragments:
        for kind, entries in fragment["components"].items():
            for key, value in entries.items():
                first = owner.setdefault((kind, key), name)
                if first != name:
                    raise OpenApiError(
                        f"components.{kind}.{key}: defined in both {first} and {name}"
                    )
                components[kind][key] = value
                refs.extend((name, w, r) for w, r in _refs(value, f"components.{kind}.{key}"))
        for path, item in fragment["paths"].items():
            merged = paths.setdefault(path, {})
            for key, value in item.items():
                if key not in METHODS:
                    if key in merged and merged[key] != value:
                        raise OpenApiError(f"{path}: {key} differs between fragments ({name})")
                    merged[key] = value
                    continue
                first = owner.setdefault((path, key), name)
                if first != name:
                    raise OpenApiError(
                        f"{key.upper()} {path}: documented in both {first} and {name}"
                    )
                merged[key] = value
            refs.extend((name, w, r) for w, r in _refs(item, path))
    for name, where, ref in refs:
        match = _REF.match(ref)
        if match is None or match.group(2) not in components[match.group(1)]:
            raise OpenApiError(f"{name}: {where}: $ref {ref!r} names no component")
    _check_path_parameters(paths, components["parameters"], owner)
    return {
        **_BASE,
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": _SECURITY_SCHEMES,
            **{kind: dict(sorted(v.items())) for kind, v in components.items() if v},
        },
    }


def _refs(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every ``$ref`` under ``value`` with where it is (iteratively: no recursion limit)."""
    stack = [(value, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield at, ref
            stack.extend((v, f"{at}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))


def load_document(folder: Traversable | None = None) -> dict[str, Any]:
    """The merged document of every fragment (blocking file reads: call it off the loop)."""
    files = fragment_files(folder)
    if not files:
        raise OpenApiError("no OpenAPI fragments found")
    return merge_fragments(
        (f.name, parse_fragment(f.name, f.read_text(encoding="utf-8"))) for f in files
    )


# -- the web feature -------------------------------------------------------------------


def add_openapi(app: web.Application) -> None:
    """The feature: the document, read at start, and its route."""
    app.cleanup_ctx.append(_document_context)
    app.router.add_get(OPENAPI_PATH, get_document)


async def _document_context(app: web.Application) -> AsyncIterator[None]:
    document = await asyncio.to_thread(load_document)
    document["servers"] = [{"url": app[CONFIG].web.public_url.rstrip("/")}]
    app[DOCUMENT] = json.dumps(document, ensure_ascii=False, indent=1).encode()
    yield


async def get_document(request: web.Request) -> web.Response:
    scope_of(request)  # anyone who may read the API, and no one else
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")
