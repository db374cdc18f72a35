"""Property-based checks of the whole REST API against its own /openapi.json.

A real ``create_api`` runs under uvicorn on a loopback port (lifespan, store and all);
schemathesis generates requests for every operation of the document, with the admin
token, and checks that none answers 5xx and that every answer (status code, content
type, body) is one the document declares.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from hookline.api.app import create_api
from hookline.config import EngineSettings
from tests.conftest import free_port

ADMIN = "schemathesis-admin"
#: Per operation; keeps the whole run well under two minutes on a small machine.
MAX_EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def _serve(database: Path) -> Iterator[str]:
    app = create_api(
        database_url=f"sqlite:///{database}",
        admin_token=ADMIN,
        settings=EngineSettings(allow_private_targets=True),
        deliver=False,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("schemathesis") / "hookline.db")


def _seed(base_url: str) -> dict[str, str]:
    """An app with a user, an endpoint and a delivery, so that generated requests reach
    the handlers behind the 404s too."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ADMIN}"

    def post(path: str, body: dict[str, Any]) -> Any:
        response = http.post(f"{base_url}/api/v1{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    app = post("/apps", {"name": "seeded"})
    post(f"/apps/{app['id']}/installations", {"user_id": "u1"})
    endpoint = post(
        f"/apps/{app['id']}/endpoints", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    event = post("/events", {"event_type": "order_completed", "user_id": "u1", "data": {}})
    listing = http.get(f"{base_url}/api/v1/apps/{app['id']}/deliveries", timeout=10).json()
    return {
        "app_id": app["id"],
        "endpoint_id": endpoint["id"],
        "event_id": event["id"],
        "delivery_id": str(listing["data"][0]["id"]),
    }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"[:1500]


def test_every_operation_conforms(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    ids = _seed(base_url)
    failures: dict[str, str] = {}
    operations = 0
    for found in schema.get_all_operations():
        operation = found.ok()
        operations += 1

        @given(case=operation.as_strategy(), real=st.booleans())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case, real: bool) -> None:
            if real and case.path_parameters:  # half the time, ids that exist
                case.path_parameters = {
                    name: ids.get(name, value) for name, value in case.path_parameters.items()
                }
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all are reported
            failures[operation.label] = _describe(exc)
    assert operations >= 20
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
