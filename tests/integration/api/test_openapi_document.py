"""What /openapi.json promises besides the input rules (which schemathesis holds it to):
readable operation ids, the bearer scheme, 503s; and 405s that name the methods."""

from __future__ import annotations

import aiohttp

from tests.support.api_server import ADMIN, running_api


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
