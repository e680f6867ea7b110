"""``GET /api/openapi.json`` names every REST route the hub serves and nothing else, its
schemas come from the routes' own pydantic models, and a schemathesis run against a live hub
finds no 5xx and no answer that breaks the document."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hub.app import build_app
from hub.settings import Settings
from hub.settings.sections import AccountSettings, StorageSettings
from tests.support import Api, HubNode, start_hub_node
from tests.support.bands import create_band, create_gig
from tests.support.calls import (
    MAIN_KEY,
    MAIN_SECRET,
    FakeLiveKit,
    fake_livekit,  # noqa: F401  (fixture)
    livekit_env,
)
from tests.support.gateways import FakeGateways

# A bounded run for CI; SCHEMATHESIS_EXAMPLES / SCHEMATHESIS_SEED widen or vary it by hand.
SCHEMATHESIS_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))


def registered_routes() -> set[tuple[str, str]]:
    """(method, path) of every route build_app registers, less Socket.IO's own."""
    settings = Settings(
        storage=StorageSettings(database_url="postgresql://unused", redis_url="redis://unused"),
        accounts=AccountSettings(jwt_secret="x" * 40),
    )
    app = build_app(settings)
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method not in ("HEAD", "*") and not path.startswith("/socket.io"):
            routes.add((route.method, path))
    return routes


@pytest_asyncio.fixture
async def served_hub(
    test_env: Any,
    tmp_path: Path,
    fake_livekit: FakeLiveKit,  # noqa: F811
) -> AsyncIterator[HubNode]:
    """A hub whose upstreams answer: every LiveKit instance and both payment gateways on
    local fakes. A 5xx from it is then the hub's own fault, never a missing service."""
    gateways = await FakeGateways().start()
    env = test_env.hub_env(
        **gateways.hub_env(),
        **livekit_env(fake_livekit),
        LIVEKIT_MEET_URL="wss://meet.livekit.test",
        LIVEKIT_MEET_API_URL=fake_livekit.url,
        LIVEKIT_MEET_API_KEY=MAIN_KEY,
        LIVEKIT_MEET_API_SECRET=MAIN_SECRET,
    )
    try:
        node = await start_hub_node(env, tmp_path / "node-a", "node-a")
        try:
            yield node
        finally:
            await node.stop()
    finally:
        await gateways.stop()


async def fetch_document(api: Api) -> dict[str, Any]:
    status, document = await api.request("GET", "/api/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    return document


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


async def test_every_registered_route_is_documented_and_nothing_else(hub_node) -> None:
    document = await fetch_document(Api(hub_node.url))
    registered = registered_routes()
    assert documented(document) == registered
    assert ("GET", "/api/bands/{band_id}/calendar.ics") in registered
    assert ("PUT", "/api/gigs/{gig_id}/status") in registered
    undeclared = sorted(
        path
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if operation.get("x-undeclared")
    )
    assert undeclared == [], "declare these on rest.spec.ApiRoutes, with their models"


async def test_the_schemas_come_from_the_route_models(hub_node) -> None:
    document = await fetch_document(Api(hub_node.url))
    schemas = document["components"]["schemas"]

    def resolve(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas
            for value in node.values():
                resolve(value)
        elif isinstance(node, list):
            for value in node:
                resolve(value)

    resolve(document)
    create_gig_op = document["paths"]["/api/gigs"]["post"]
    body_ref = create_gig_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schemas[body_ref.split("/")[-1]]
    assert set(body["required"]) == {"bandId", "venueName", "date"}
    assert body["additionalProperties"] is False
    assert body["properties"]["feeAmount"]["type"] == "integer"
    assert body["properties"]["date"]["format"] == "date"
    list_op = document["paths"]["/api/gigs"]["get"]
    assert {p["name"] for p in list_op["parameters"]} == {
        "bandId", "from", "to", "status", "limit", "cursor"
    }  # fmt: skip
    feed = document["paths"]["/api/bands/{band_id}/calendar.ics"]["get"]
    assert feed["security"] == [] and "text/calendar" in feed["responses"]["200"]["content"]
    assert document["paths"]["/api/bands"]["post"]["security"] == [{"bearer": []}]
    assert "201" in document["paths"]["/api/bands"]["post"]["responses"]
    webhook = document["paths"]["/api/livekit/webhook/{instance}"]["post"]
    assert webhook["security"] == [] and "401" in webhook["description"]


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    served_hub: HubNode, tmp_path: Path
) -> None:
    """Every documented operation, fuzzed with a bounded number of examples, authenticated
    as a user who owns a band with a gig (so some generated ids hit real rows)."""
    hub_node = served_hub
    api = Api(hub_node.url)
    alice = await api.register("alice")
    band = await create_band(api, alice, await api.register("bob"))
    await create_gig(api, alice, band["id"], startTime="20:00")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{hub_node.url}/api/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "20310501"),
        "--header",
        f"Authorization: Bearer {alice.access_token}",
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "all",
        "--exclude-path-regex",
        "^/api/auth/logout$",  # would close Alice's session mid-run
        "--no-color",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(tmp_path),
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:] + "\n" + hub_node.log()[-4000:]
    assert "Operations:" in report and " 0 selected" not in report


@pytest.mark.parametrize("path", ["/api/openapi.json"])
async def test_the_document_needs_no_token(hub_node, path: str) -> None:
    status, _ = await Api(hub_node.url).request("GET", path)
    assert status == 200
