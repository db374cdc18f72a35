"""reqwest's errors in the words of every transport: the chain of causes reqwest gives
becomes the message an attempt records (the same as the aiohttp transport's)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pyreqwest.exceptions import ConnectError, PyreqwestError, ReadError

from hookline.config import EngineSettings
from hookline.exceptions import ConfigError
from hookline.sender.transport.reqwest_client import reqwest_error
from hookline.store.records import Job

JOB = Job(
    delivery_id=1, token="t", attempts=0, endpoint_id="ep_1", lane="u", user_id="u",
    app_id="app", event_type="order_completed", event_id="e", data="{}",
    url="https://hooks.example.com/x", timeout=5.0, keys=("k",),
)  # fmt: skip
TARGET = "hooks.example.com:443"


def _error(kind: type[PyreqwestError], *causes: str) -> PyreqwestError:
    chain = ["error sending request for url (https://hooks.example.com/x)", *causes]
    return kind("connection error", {"causes": [{"message": c} for c in chain]})


@pytest.mark.parametrize(
    ("causes", "message"),
    [
        (
            ("client error (Connect)", "tcp connect error", "Connection refused (os error 111)"),
            f"connection refused by {TARGET}",
        ),
        (
            (
                "client error (Connect)",
                "tcp connect error",
                "Network is unreachable (os error 101)",
            ),
            f"cannot connect to {TARGET}: Network is unreachable (os error 101)",
        ),
        (
            ("client error (Connect)", "invalid peer certificate: UnknownIssuer"),
            f"the TLS certificate of {TARGET} is not valid: UnknownIssuer",
        ),
        (
            ("client error (Connect)", "received corrupt message of type InvalidContentType"),
            f"TLS with {TARGET} failed: received corrupt message of type InvalidContentType",
        ),
        (
            ("client error (Connect)", "received fatal alert: HandshakeFailure"),
            "the endpoint asked for a client certificate (TLS alert: handshake failure) and "
            "none is set; give the endpoint client_cert and client_key",
        ),
    ],
)
def test_connect_errors(causes: tuple[str, ...], message: str) -> None:
    assert reqwest_error(_error(ConnectError, *causes), TARGET, JOB) == message


def test_a_refused_client_certificate() -> None:
    job = replace(JOB, client_cert="cert", client_key="key")
    error = _error(ConnectError, "client error (Connect)", "received fatal alert: UnknownCA")
    assert reqwest_error(error, TARGET, job) == (
        "the endpoint refused its client certificate (TLS alert: unknown CA)"
    )


def test_other_errors_name_their_kind_and_root_cause() -> None:
    error = _error(ReadError, "error reading a body from connection", "connection reset")
    assert reqwest_error(error, TARGET, JOB) == "ReadError: connection reset"


def test_the_transport_is_chosen_by_name() -> None:
    assert EngineSettings().transport == "reqwest"
    assert EngineSettings.from_env({"HOOKLINE_TRANSPORT": "aiohttp"}).transport == "aiohttp"
    with pytest.raises(ConfigError, match="HOOKLINE_TRANSPORT='curl' is not a transport"):
        EngineSettings.from_env({"HOOKLINE_TRANSPORT": "curl"})
