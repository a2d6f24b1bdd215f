"""Checking a real response against the OpenAPI document (for any API test).

    assert_documented(document, "POST", "/api/cases", 201, body)

finds the operation's schema for that status in the merged document and validates
``body`` with jsonschema (JSON Schema 2020-12, OpenAPI 3.1's dialect); ``$ref``s
resolve inside the document.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:gateway-api"


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def response_schema(
    document: dict[str, Any],
    method: str,
    path: str,
    status: int,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """A ``$ref`` to the documented schema of ``method path`` answering ``status``."""
    operation = document["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path} does not document status {status}"
    response = responses[str(status)]
    where = ("paths", path, method.lower(), "responses", str(status))
    ref = response.get("$ref")
    if ref is not None:
        where = tuple(ref.removeprefix("#/").split("/"))
        response = document
        for part in where:
            response = response[part]
    assert content_type in response.get("content", {}), (
        f"{method} {path} {status}: no {content_type} content documented"
    )
    return {"$ref": DOCUMENT_URI + "#" + _pointer(*where, "content", content_type, "schema")}


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft202012Validator(schema, registry=registry)


def documented_errors(
    document: dict[str, Any], method: str, path: str, status: int, body: Any
) -> list[str]:
    """What is wrong with ``body`` as ``method path``'s answer ``status`` (empty: valid)."""
    check = validator(document, response_schema(document, method, path, status))
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}"
        for e in check.iter_errors(body)
    ]


def assert_documented(
    document: dict[str, Any], method: str, path: str, status: int, body: Any
) -> None:
    errors = documented_errors(document, method, path, status, body)
    assert not errors, f"{method} {path} {status} does not match its schema: {errors}"
