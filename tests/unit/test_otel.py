"""When tracing is on, and that nothing of OpenTelemetry loads where it is off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hookline import otel

ENDPOINT = "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "shop"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_where_an_otlp_endpoint_is_configured(env: dict[str, str], on: bool) -> None:
    assert otel.configured(env) is on
    if not on:
        assert otel.provider_from_env("hookline", env) is None


def test_the_service_is_named_hookline_unless_the_environment_names_it() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}
    provider = otel.provider_from_env("hookline", env)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "hookline"
    provider.shutdown()


def test_nothing_of_opentelemetry_is_imported_where_tracing_is_off() -> None:
    """The sender's API, engine and CLI, and the receiver's workers, as a process without
    OTEL_* variables loads them."""
    code = """
import sys
from hookline.server import create_server
from hookline.cli.sender import _tracing
from hookline.receiver.tracing import configure_from_env, handler_tracer
from hookline.receiver.workers import Workers
from hookline.sender.engine import Engine
assert _tracing() is None and configure_from_env() is None and handler_tracer() is None
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
"""
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
