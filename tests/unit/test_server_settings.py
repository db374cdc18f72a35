"""ServerSettings: documented defaults, the environment, and refusals that say why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from uvicorn.server import ServerState

from hookline.cli import main
from hookline.exceptions import ConfigError
from hookline.serving import ServerSettings, uvicorn_options
from hookline.serving.protocol import GuardedHttpToolsProtocol


def test_defaults_are_the_documented_ones() -> None:
    settings = ServerSettings()
    assert (settings.max_connections, settings.max_header_bytes, settings.max_header_count) == (
        1000,
        32 * 1024,
        100,
    )
    assert (settings.idle_timeout, settings.header_timeout, settings.body_timeout) == (5, 10, 30)
    assert (settings.max_body_bytes, settings.max_batch_body_bytes) == (2**20, 16 * 2**20)
    assert settings.drain_bytes == 32 * 2**20


def test_the_environment_sets_each_value() -> None:
    settings = ServerSettings.from_env(
        {
            "HOOKLINE_MAX_CONNECTIONS": "50",
            "HOOKLINE_HEADER_TIMEOUT": "2.5",
            "HOOKLINE_MAX_BATCH_BODY_BYTES": "1000000",
            "HOOKLINE_UNRELATED": "x",
        }
    )
    assert (settings.max_connections, settings.header_timeout) == (50, 2.5)
    assert settings.max_batch_body_bytes == 1_000_000
    assert settings.idle_timeout == 5


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("HOOKLINE_HEADER_TIMEOUT", "soon", "is not a number"),
        ("HOOKLINE_IDLE_TIMEOUT", "0", "more than 0 seconds"),
        ("HOOKLINE_MAX_HEADER_BYTES", "-1", "must not be negative"),
        ("HOOKLINE_MAX_CONNECTIONS", "0.5", "at least 1"),
        ("HOOKLINE_MAX_CONNECTIONS", "inf", "finite"),
        ("HOOKLINE_IDLE_TIMEOUT", "nan", "finite"),
    ],
)
def test_a_bad_value_names_its_variable_or_setting(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        ServerSettings.from_env({name: value})


def test_serve_refuses_a_bad_value_in_one_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sender.db'}"
    result = CliRunner().invoke(
        main, ["serve", "--database", database], env={"HOOKLINE_BODY_TIMEOUT": "later"}
    )
    assert result.exit_code != 0
    assert "HOOKLINE_BODY_TIMEOUT='later' is not a number" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir()), "nothing may be created before the settings are read"


def test_connections_stay_below_half_the_open_file_limit() -> None:
    settings = ServerSettings(max_connections=1000)
    assert settings.connection_cap(256) == 128
    assert settings.connection_cap(1_048_576) == 1000


def test_uvicorn_gets_the_guarded_protocol_with_these_limits() -> None:
    settings = ServerSettings(max_header_count=7)
    protocol = uvicorn_options(settings)["http"]
    assert issubclass(protocol, GuardedHttpToolsProtocol)
    assert protocol.limits is settings
    assert 1 <= protocol.max_connections <= 1000


def test_uvicorn_still_has_what_the_protocol_relies_on() -> None:
    """The subclass reaches into uvicorn's protocol: a uvicorn that renamed or dropped one
    of these must fail here, not as a slow leak in production."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    from hookline.serving.protocol import UVICORN_ATTRIBUTES, UVICORN_METHODS

    for name in UVICORN_METHODS:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    protocol = uvicorn_options(ServerSettings())["http"]
    config = uvicorn.Config(_app)
    connection = protocol(config, ServerState(), {}, _loop=asyncio.new_event_loop())
    try:
        for name in UVICORN_ATTRIBUTES:
            assert hasattr(connection, name), name
    finally:
        connection.loop.close()
    cycle_attributes = {"response_complete", "keep_alive", "body"}
    assert cycle_attributes <= set(RequestResponseCycle.__init__.__code__.co_names)


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
    pass
