"""The OpenAPI document: merged from the fragments, true to the routes and to the
responses the running gateway gives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from gateway import config as config_module
from gateway.app import create_app
from gateway.appeals.service import CHANNEL_ORDER
from gateway.appeals.service import CHANNELS as INTAKE_CHANNELS
from gateway.callbacks.report import OUTCOME_NAMES
from gateway.callbacks.report import STATUS_NAMES as ITEM_STATUS_NAMES
from gateway.clock import ScaledClock
from gateway.demo.stack import Stack, running_stack
from gateway.sms.templates import AUDIENCES, PURPOSES
from gateway.store.cases import CATEGORIES, STATUSES
from gateway.store.cases import CHANNELS as CASE_CHANNELS
from gateway.web.openapi import METHODS, OPENAPI_PATH, OpenApiError, load_document
from tests.openapi_support import assert_documented, documented_errors

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
NOISE_AGAIN = "楼下烧烤摊天天营业到凌晨两点，噪音很大孩子睡不着，希望派出所处理。"


def routed_operations(prefixes: tuple[str, ...]) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of the real application under ``prefixes``."""
    app = create_app(config_module.load(env={}))
    found = set()
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not canonical.startswith(prefixes):
            continue  # aiohttp adds HEAD beside each GET
        found.add((route.method, canonical))
    return found


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    }


def test_every_api_route_is_documented_and_every_documented_operation_is_routed() -> None:
    """A route under /api/ without its fragment, or a fragment for no route, fails here."""
    document = load_document()
    routed = routed_operations(("/api/",))
    documented = documented_operations(document)
    assert routed - documented == set(), "routes under /api/ missing from the OpenAPI fragments"
    everything_routed = routed_operations(("/",))
    assert documented - everything_routed == set(), "documented but not routed"
    assert {("POST", "/api/cases"), ("GET", "/api/sms/messages/{id}")} <= routed


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    """Each component schema and each operation's schemas pass the 2020-12 meta-schema."""
    document = load_document()
    assert document["openapi"].startswith("3.1.")
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for item in document["paths"].values():
        for method in METHODS:
            for status, response in item.get(method, {}).get("responses", {}).items():
                assert status.isdigit() and 100 <= int(status) < 600
                for content in response.get("content", {}).values():
                    Draft202012Validator.check_schema(content["schema"])


def test_documented_enumerations_are_the_codes() -> None:
    """The documented statuses, categories, channels and purposes are the code's own."""
    schemas = load_document()["components"]["schemas"]
    assert schemas["CaseStatus"]["enum"] == list(STATUSES)
    assert schemas["CaseCategory"]["enum"] == list(CATEGORIES)
    assert schemas["IntakeChannel"]["enum"] == list(INTAKE_CHANNELS)
    assert schemas["Case"]["properties"]["channel"]["enum"] == list(CASE_CHANNELS)
    shown = schemas["CaseFile"]["allOf"][1]["properties"]["channels"]["propertyNames"]["enum"]
    assert shown == list(CHANNEL_ORDER)
    assert schemas["TextPurpose"]["enum"] == list(PURPOSES)
    assert schemas["TextOrder"]["properties"]["audience"]["enum"] == list(AUDIENCES)
    assert schemas["ItemStatus"]["enum"] == list(ITEM_STATUS_NAMES)
    detail = schemas["ServedItemDetail"]["allOf"][1]["properties"]
    outcomes = {key.split(":", 1)[1] for key in OUTCOME_NAMES}
    assert set(detail["attempts"]["items"]["properties"]["outcome"]["enum"]) == outcomes


# -- the loader refuses fragments that do not hold together ---------------------------

CASE = "components:\n  schemas:\n    Case: {type: object}\n"
ROUTE = "paths:\n  /api/x:\n    get:\n      responses: {'200': {description: ok}}\n"
GONE = "paths:\n  /api/x:\n    get:\n      responses:\n        '200': {$ref: '#/x/Gone'}\n"
UNDECLARED = ROUTE.replace("/api/x", "/api/x/{id}")


def fragments(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"appeals": CASE, "bookings": CASE},
            "components.schemas.Case: defined in both appeals.yaml and bookings.yaml",
        ),
        ({"a": ROUTE, "b": ROUTE}, "GET /api/x: documented in both a.yaml and b.yaml"),
        ({"a": GONE}, "a.yaml: /api/x.get.responses.200: $ref '#/x/Gone' names no component"),
        ({"a": UNDECLARED}, "a.yaml: GET /api/x/{id}: path parameter {id} is not declared"),
        ({"a": "paths:\n  /api/x:\n    fetch: {}\n"}, "a.yaml: /api/x: 'fetch' is not"),
        ({"a": "paths:\n  /api/x:\n    get: {}\n"}, "a.yaml: GET /api/x: has no responses"),
        ({"a": "paths: [\n"}, "a.yaml line 2: not YAML"),
        ({"a": "info: {title: x}\n"}, "a.yaml: unknown key 'info'"),
        ({"a": "components:\n  headers: {}\n"}, "a.yaml: components.headers: unknown kind"),
    ],
)
def test_a_fragment_that_does_not_fit_is_refused_naming_it(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    """Duplicates name both fragments; a dangling $ref or bad shape names the fragment."""
    with pytest.raises(OpenApiError) as caught:
        load_document(fragments(tmp_path, **files))
    assert str(caught.value).startswith(message)


def test_fragments_merge_paths_and_components(tmp_path: Path) -> None:
    """Two parts' operations on one path and their schemas land in one document."""
    folder = fragments(
        tmp_path,
        a="paths:\n  /api/x/{id}:\n    parameters: [{$ref: '#/components/parameters/Id'}]\n"
        "    get:\n      responses: {'200': {description: ok}}\n"
        "components:\n  parameters:\n    Id: {name: id, in: path, required: true}\n",
        b="paths:\n  /api/x/{id}:\n    parameters: [{$ref: '#/components/parameters/Id'}]\n"
        "    post:\n      responses:\n        '201':\n          description: made\n"
        "          content: {application/json: {schema: {$ref: '#/components/schemas/X'}}}\n"
        "components:\n  schemas:\n    X: {type: object}\n",
    )
    document = load_document(folder)
    assert set(document["paths"]["/api/x/{id}"]) == {"parameters", "get", "post"}
    assert document["components"]["schemas"] == {"X": {"type": "object"}}
    assert "bearer" in document["components"]["securitySchemes"]


# -- the running gateway ------------------------------------------------------------------

TOKENS = {"web": "web-portal-0123456789abc", "12345": "city-12345-0123456789abc"}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The gateway (no scheduler, no outbox) with the web and 12345 channels open."""
    clock = ScaledClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC), 1.0)
    overrides = [f"appeals.channels_{name}_token={token}" for name, token in TOKENS.items()]
    async with running_stack(
        tmp_path / "data", clock, run_scheduler=False, run_outbox=False, overrides=overrides
    ) as running:
        yield running


async def call(
    stack: Stack,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    bearer: bool = True,
) -> tuple[int, Any]:
    sent = {"Authorization": f"Bearer {stack.api_token}"} if bearer else {}
    sent.update(headers or {})
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, stack.url + path, json=body, headers=sent) as response,
    ):
        return response.status, await response.json()


async def test_the_document_is_served_to_api_clients_only(stack: Stack) -> None:
    """GET /api/openapi.json needs the bearer token and serves the merged document."""
    status, refused = await call(stack, "GET", OPENAPI_PATH, bearer=False)
    assert (status, refused["error"]) == (401, "unauthorized")
    status, document = await call(stack, "GET", OPENAPI_PATH)
    assert status == 200
    assert document["servers"] == [{"url": stack.url}]
    assert {k: v for k, v in document.items() if k != "servers"} == json.loads(
        json.dumps(load_document())
    )
    assert_documented(document, "GET", OPENAPI_PATH, 200, document)
    assert_documented(document, "GET", OPENAPI_PATH, 401, refused)


async def test_real_responses_match_their_documented_schemas(stack: Stack) -> None:
    """Cases, served items, orders, the summary and texts answer as documented."""
    _, document = await call(stack, "GET", OPENAPI_PATH)

    def check(method: str, path: str, status: int, body: Any) -> None:
        assert_documented(document, method, path, status, body)

    web = {"X-Channel-Token": TOKENS["web"]}
    appeal = {
        "channel": "web",
        "reference": "W-1",
        "citizen_number": "13912345678",
        "citizen_name": "王芳",
        "category": "complaint",
        "text": NOISE,
        "place": "幸福路12号",
    }
    status, intake = await call(stack, "POST", "/api/cases", appeal, headers=web)
    check("POST", "/api/cases", status, intake)
    assert status == 201
    status, replay = await call(stack, "POST", "/api/cases", appeal, headers=web)
    check("POST", "/api/cases", status, replay)
    transfer = {**appeal, "channel": "12345", "reference": "GD-9", "text": NOISE_AGAIN}
    status, repeat = await call(
        stack, "POST", "/api/cases", transfer, headers={"X-Channel-Token": TOKENS["12345"]}
    )
    assert (status, repeat["repeat"]) == (201, True)
    status, bad = await call(stack, "POST", "/api/cases", {**appeal, "age": 3}, headers=web)
    check("POST", "/api/cases", status, bad)
    status, refused = await call(stack, "POST", "/api/cases", transfer, headers=web)
    check("POST", "/api/cases", status, refused)
    assert status == 403
    number = intake["case"]["number"]
    status, case = await call(stack, "GET", f"/api/cases/{number}")
    check("GET", "/api/cases/{ref}", status, case)
    assert case["channels"] == {"web": 1, "12345": 1}
    status, split = await call(
        stack,
        "POST",
        f"/api/cases/{number}/split",
        {"submissions": [repeat["submission"]], "actor": "J00013"},
    )
    check("POST", "/api/cases/{ref}/split", status, split)
    status, merged = await call(
        stack, "POST", f"/api/cases/{split['number']}/merge", {"into": number, "actor": "J00013"}
    )
    check("POST", "/api/cases/{ref}/merge", status, merged)
    status, missing = await call(stack, "GET", "/api/cases/TS20991231-0001")
    check("GET", "/api/cases/{ref}", status, missing)
    assert status == 404

    served = (stack.clock.now() - timedelta(hours=2)).isoformat()
    item = {
        "reference": "HZ-1",
        "kind": "police_110",
        "unit": "LZ-DC-01",
        "citizen_number": "13800138000",
        "served_at": served,
        "citizen_name": "李强",
    }
    status, added = await call(stack, "POST", "/api/served-items", item)
    check("POST", "/api/served-items", status, added)
    assert status == 201, added
    status, batch = await call(
        stack, "POST", "/api/served-items", [item, {**item, "reference": "HZ-2", "unit": "NOPE"}]
    )
    check("POST", "/api/served-items", status, batch)
    assert status == 207
    status, detail = await call(stack, "GET", "/api/served-items/HZ-1")
    check("GET", "/api/served-items/{reference}", status, detail)
    status, orders = await call(stack, "GET", "/api/orders?all=1&limit=5")
    check("GET", "/api/orders", status, orders)
    status, summary = await call(stack, "GET", "/api/callbacks/summary?days=7")
    check("GET", "/api/callbacks/summary", status, summary)
    status, period = await call(stack, "GET", "/api/callbacks/summary?days=x")
    check("GET", "/api/callbacks/summary", status, period)
    assert status == 400

    text = {
        "to": "13800138000",
        "template": "rating_request",
        "variables": {"unit": "东城派出所", "business": "户口迁移"},
        "idempotency_key": "doc-1",
    }
    status, queued = await call(stack, "POST", "/api/sms/messages", text)
    check("POST", "/api/sms/messages", status, queued)
    assert status == 201, queued
    status, listed = await call(stack, "GET", "/api/sms/messages?limit=5")
    check("GET", "/api/sms/messages", status, listed)
    status, shown = await call(stack, "GET", f"/api/sms/messages/{queued['id']}")
    check("GET", "/api/sms/messages/{id}", status, shown)


async def test_a_response_off_its_schema_is_caught(stack: Stack) -> None:
    """The check is not blind: a case without its number, or a wrong status, fails it."""
    _, document = await call(stack, "GET", OPENAPI_PATH)
    errors = documented_errors(
        document, "GET", "/api/cases/{ref}", 200, {"status": "pending", "channels": {}}
    )
    assert any("'number' is a required property" in e for e in errors)
    assert any("'pending' is not one of" in e for e in errors)
