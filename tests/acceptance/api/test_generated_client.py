"""A client generated from /openapi.json, as a platform would make one, used for real.

``openapi-python-client`` (run offline: no project metadata, no formatting hooks) turns
the document of a real ``hookline serve`` on loopback into a package; the test imports
it, checks that every operation made it in under its own readable name with one
``EventType`` enum, and then publishes and reads deliveries through it, with the bearer
token, against the same server.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hookline.events import EVENT_TYPES
from tests.support.hookline_proc import ADMIN_TOKEN, ServeProcess

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "hookline_client"  # from the document's title, "hookline"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path_factory.mktemp("generated") / "sender.db")
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())


@pytest.fixture(scope="module")
def generated(
    serve: ServeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, set[str], str]]:
    """The generated package (imported), the document's operationIds, and what the
    generator said."""

    async def fetch() -> dict[str, Any]:
        async with serve.api() as api:
            found: dict[str, Any] = (await api.call("GET", "/openapi.json")).body
            return found

    document = asyncio.run(fetch())
    operation_ids = {
        op["operationId"] for item in document["paths"].values() for op in item.values()
    }
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(json.dumps(document))
    (where / "config.json").write_text(json.dumps({"post_hooks": []}))
    started = time.monotonic()
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--config",
            str(where / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(where / "out" / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=where,
    )
    print(f"openapi-python-client took {time.monotonic() - started:.1f} s")
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    sys.path.insert(0, str(where / "out"))
    try:
        yield importlib.import_module(PACKAGE), operation_ids, said
    finally:
        sys.path.remove(str(where / "out"))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _submodules(package: ModuleType) -> dict[str, ModuleType]:
    return {
        info.name: importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    }


def test_every_operation_is_generated_under_its_own_name(
    generated: tuple[ModuleType, set[str], str],
) -> None:
    package, operation_ids, said = generated
    assert "Warning" not in said and "Unable" not in said, said
    modules = _submodules(package)
    operations = {
        name.rsplit(".", 1)[-1]
        for name in modules
        if name.startswith(f"{PACKAGE}.api.") and name.count(".") == 3
    }
    assert operations == operation_ids
    # FastAPI's default ids made create_app_api_v1_apps_post and
    # get_health_healthz_get of them, as module and function names.
    calls = {
        f"{module_name}.{name}"
        for module_name, module in modules.items()
        if module_name.startswith(f"{PACKAGE}.api.")
        for name, _ in inspect.getmembers(module, inspect.isfunction)
    }
    assert not [n for n in calls if re.search(r"_api_v1_|_(get|post|patch|delete)\b", n)]

    models = package.models
    classes = {name: getattr(models, name) for name in models.__all__}
    print(", ".join(sorted(classes)))
    assert not [n for n in classes if re.search(r"Healthz|Get$|Post$|Response|^Body", n)]
    event_type_enums = [
        name
        for name, cls in classes.items()
        if isinstance(cls, enum.EnumMeta) and set(EVENT_TYPES) <= {m.value for m in cls}
    ]
    assert event_type_enums == ["EventType"]


def _operation(package: ModuleType, tag: str, name: str) -> Any:
    """The generated module of one operation (``sync``, ``sync_detailed``, ...)."""
    return importlib.import_module(f"{package.__name__}.api.{tag}.{name}")


def test_the_generated_client_publishes_and_reads_deliveries(
    generated: tuple[ModuleType, set[str], str], serve: ServeProcess
) -> None:
    package, _, _ = generated
    m = package.models
    # trust_env off: a proxy set in the environment must not see these loopback calls.
    client = package.AuthenticatedClient(
        base_url=serve.base_url, token=ADMIN_TOKEN, httpx_args={"trust_env": False}
    )
    with client:
        app = _operation(package, "apps", "create_app").sync(
            client=client, body=m.AppIn(name="generated")
        )
        assert isinstance(app, m.AppCreated) and app.api_key, app
        user = f"store-{app.id}"
        installed = _operation(package, "installations", "create_installation").sync(
            app.id, client=client, body=m.InstallationIn(user_id=user)
        )
        assert isinstance(installed, m.InstallationOut), installed
        endpoint = _operation(package, "endpoints", "create_endpoint").sync(
            app.id,
            client=client,
            body=m.EndpointIn(
                url="http://127.0.0.1:9/webhooks", event_types=[m.EventType.ORDER_COMPLETED]
            ),
        )
        assert isinstance(endpoint, m.EndpointOut), endpoint
        assert endpoint.event_types == [m.EventType.ORDER_COMPLETED]

        data = m.EventInData.from_dict({"id": "o-1", "total": 12.5, "lines": [[1, 2]]})
        event = _operation(package, "events", "publish_event").sync(
            client=client,
            body=m.EventIn(event_type=m.EventType.ORDER_COMPLETED, user_id=user, data=data),
        )
        assert isinstance(event, m.EventOut) and event.deliveries == 1, event

        page = _operation(package, "deliveries", "list_deliveries").sync(
            app.id, client=client, event_type=m.EventType.ORDER_COMPLETED
        )
        assert isinstance(page, m.DeliveryList), page
        [delivery] = page.data
        assert (delivery.event_id, delivery.endpoint_id) == (event.id, endpoint.id)
        assert delivery.event_type is m.EventType.ORDER_COMPLETED
        assert isinstance(delivery.status, m.DeliveryStatus)

        # An error answer is the document's ErrorOut, with its status.
        missing = _operation(package, "apps", "get_app").sync_detailed("app_missing", client=client)
        assert missing.status_code == 404 and isinstance(missing.parsed, m.ErrorOut)
        assert missing.parsed.error.code == "not_found"
