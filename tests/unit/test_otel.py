"""When tracing is on. (That nothing of OpenTelemetry loads where it is off:
tests/integration/test_fresh_process.py.)"""

from __future__ import annotations

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
