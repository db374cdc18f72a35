"""Property-based checks of the whole REST API against its own /openapi.json.

A real ``create_server`` runs under uvicorn on a loopback port (lifespan, store and all),
on SQLite and on PostgreSQL (which cannot hold NUL in text, and schemathesis sends it);
schemathesis (its own runner, ``st run``) generates requests for every operation of the
document, with the admin token, in all its phases (examples, coverage, fuzzing) and
modes (valid and invalid data), and runs **all** its checks: no 5xx; every answer (status
code, content type, headers, body) one the document declares; every request the
document calls valid accepted (so the document states each input rule the server
enforces) and every invalid one refused; 405 answers carry ``Allow``; invalid
credentials get 401.

It runs twice: with the ids it makes up (mostly 404s behind the checks), and with valid
data and the ids of a seeded app, endpoint, event and delivery, so that requests reach
the handlers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.api_server import ADMIN, api_in_thread

#: Tens of seconds per database: the everyday run (-m "not slow") leaves it to CI.
pytestmark = pytest.mark.slow

#: Per operation and phase; keeps each run well under a minute on a small machine.
MAX_EXAMPLES = 25
ST = Path(sys.executable).with_name("st")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def base_url(module_database_url: str) -> Iterator[str]:
    with api_in_thread(module_database_url, allow_private_targets=True) as base:
        yield base


def _seed(base_url: str) -> dict[str, str]:
    """An app with a user, an endpoint and a delivery."""
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


def _run(base_url: str, config: Path, mode: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            str(ST),
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--mode",
            mode,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--seed",
            "20261201",
            "--generation-deterministic",
            "--header",
            f"Authorization: Bearer {ADMIN}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.acceptance.api.schemathesis_hooks",
        },
        cwd=config.parent,  # schemathesis keeps a cache in its working directory
    )
    print(f"st run took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]


#: How many deliveries a publish makes depends on the endpoints stored by then (a run makes
#: many, for the same few users), so a schema-valid batch may be refused with 413 (too
#: many deliveries for one publish) as a repeated event_id with other data is with 409.
FAN_OUT = """
[[operations]]
include-path = "/api/v1/events/batch"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
"""


def test_every_operation_conforms_with_made_up_ids(base_url: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(FAN_OUT)
    _run(base_url, config, "all")


def test_every_operation_conforms_with_real_ids(base_url: str, tmp_path: Path) -> None:
    ids = _seed(base_url)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        + "".join(f'"path.{name}" = "{value}"\n' for name, value in ids.items())
        + FAN_OUT
    )
    # Valid data only: an invalid id would be replaced by the real one given here.
    _run(base_url, config, "positive")
