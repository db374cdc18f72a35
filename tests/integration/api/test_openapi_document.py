"""What /openapi.json promises besides the input rules (which schemathesis holds it to):
readable operation ids and schema names, the bearer scheme, the errors each operation
can give, enums where the values are fixed; and 405s that name the methods."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.support.api_server import ADMIN, running_api


@pytest.fixture
async def document(sqlite_url: str) -> dict[str, Any]:
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession(base) as http:
        async with http.get("/openapi.json") as response:
            found: dict[str, Any] = await response.json()
    return found


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        op["operationId"]: (path, op)
        for path, item in document["paths"].items()
        for op in item.values()
    }


async def test_the_document_names_operations_security_and_outages(sqlite_url: str) -> None:
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession(base) as http:
        async with http.get("/openapi.json") as response:
            document = await response.json()
    operations = {
        op["operationId"]: op for path in document["paths"].values() for op in path.values()
    }
    for name in ("create_app", "list_deliveries", "publish_events", "retry_delivery"):
        assert name in operations
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token, or an app's API key (that app's routes only).",
    }
    for name, operation in operations.items():
        if name not in ("get_health", "get_metrics"):
            assert operation["security"] == [{"bearer": []}], name
            assert "503" in operation["responses"], name


async def test_a_405_names_every_method_of_the_path(sqlite_url: str) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        running_api(sqlite_url, deliver=False) as base,
        aiohttp.ClientSession(base, headers=auth) as http,
    ):
        for path, allowed in [
            ("/api/v1/apps", "GET, POST"),
            ("/api/v1/apps/app_x", "DELETE, GET, PATCH"),
            ("/api/v1/events/batch", "POST"),
            ("/healthz", "GET"),
        ]:
            async with http.request("TRACE", path) as response:
                assert response.status == 405, path
                assert response.headers["Allow"] == allowed, path
                assert (await response.json())["error"]["code"] == "method_not_allowed"


#: The operations whose handler can meet a conflict with what is stored.
CONFLICTS = {
    "create_endpoint",  # the app has the most endpoints it may have
    "delete_endpoint",  # the app's operational endpoint goes with its operator_url only
    "rotate_verification_key",  # a rotation is in its grace period
    "rotate_endpoint_key",  # the same, for an endpoint's own key
    "publish_event",  # the same event_id with other data
    "publish_events",
    "retry_delivery",  # the delivery is still pending
}


def test_each_operation_lists_the_errors_it_can_give(document: dict[str, Any]) -> None:
    """Authentication and parameter checks on every /api/v1 route; 403 wherever a token
    can be the wrong one (all but list_apps, which shows an app's key its own app);
    404 where the path names something; a JSON body's own refusals where there is one."""
    for name, (path, operation) in _operations(document).items():
        expected: set[str] = set()
        if path.startswith("/api/v1/"):
            expected |= {"401", "422", "429", "503"}
            expected |= set() if name == "list_apps" else {"403"}
            expected |= {"404"} if "{" in path else set()
            expected |= {"400", "413", "415"} if "requestBody" in operation else set()
            expected |= {"409"} if name in CONFLICTS else set()
        elif name == "get_metrics":
            expected = {"503"}
        errors = {code for code in operation["responses"] if not code.startswith("2")}
        assert errors == expected, name
        for code in errors:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (name, code)
            assert operation["responses"][code]["description"], (name, code)


def test_fixed_values_are_named_enums_and_names_read_well(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    assert schemas["AttemptOut"]["properties"]["outcome"] == ref("AttemptOutcome")
    assert schemas["AttemptOutcome"]["enum"] == ["delivered", "retry", "failed", "gone"]
    assert schemas["DeliveryOut"]["properties"]["status"] == ref("DeliveryStatus")
    (_, listing) = _operations(document)["list_deliveries"]
    parameters = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert ref("DeliveryStatus") in parameters["status"]["anyOf"]
    assert ref("EventType") in parameters["event_type"]["anyOf"]
    assert ref("OperationalEventType") in parameters["event_type"]["anyOf"]
    assert schemas["DeliveryOut"]["properties"]["event_type"]["anyOf"] == [
        ref("EventType"),
        ref("OperationalEventType"),
    ]
    assert schemas["OperationalEventType"]["enum"] == [
        "endpoint.disabled", "endpoint.enabled", "endpoint.recovering", "delivery.failed"
    ]  # fmt: skip
    assert ref("OperationalEventType") not in schemas["EventIn"]["properties"]["event_type"].get(
        "anyOf", []
    )
    for model in ("EndpointIn", "EndpointPatch", "EndpointOut"):
        lists = schemas[model]["properties"]["event_types"]
        lists = lists["oneOf"] if "oneOf" in lists else lists["anyOf"][0]["oneOf"]
        operational = [ref("OperationalEventType")] if model == "EndpointOut" else []
        assert [one["items"] for one in lists] == [
            ref("EventType"),
            ref("AllEventTypes"),
            *operational,
        ]
    assert schemas["AllEventTypes"]["enum"] == ["*"]
    # Every name is a model's own, none made up by FastAPI from a route
    # (HealthzHealthzGetResponseHealthzHealthzGet, Body_create_app_api_v1_apps_post).
    for name in schemas:
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", name), name
        assert not re.search(r"Get$|Post$|Response|^Body|Api", name), name
    for name, (_, operation) in _operations(document).items():
        assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", name) and "api_v1" not in name, name
        for answer in operation["responses"].values():
            for content in answer.get("content", {}).values():
                assert "title" not in content["schema"], name
    (_, health) = _operations(document)["get_health"]
    assert health["responses"]["200"]["content"]["application/json"]["schema"] == ref("HealthOut")


def test_metrics_states_its_content_type(document: dict[str, Any]) -> None:
    (_, metrics) = _operations(document)["get_metrics"]
    assert metrics["responses"]["200"]["content"] == {
        "text/plain; version=0.0.4": {"schema": {"type": "string"}}
    }


async def test_a_body_sent_to_a_route_that_reads_none_is_not_a_media_type_error(
    sqlite_url: str,
) -> None:
    """GET /apps reads no body: a bad ?limit= is the 422 the document lists, whatever
    body came along (not a 415, which it does not list)."""
    auth = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "text/plain"}
    async with (
        running_api(sqlite_url, deliver=False) as base,
        aiohttp.ClientSession(base, headers=auth) as http,
    ):
        async with http.get("/api/v1/apps?limit=0", data=b"hello") as response:
            assert response.status == 422
            assert (await response.json())["error"]["code"] == "invalid_request"
