"""Each endpoint's TLS context: built once per version of the endpoint, its own."""

from __future__ import annotations

import dataclasses
import ssl

from hookline.sender.tls import ClientTls
from hookline.store import Job
from tests.support.pki import TestCa

JOB = Job(
    delivery_id=1, token="t", attempts=0, endpoint_id="ep_1", lane="u", user_id="u",
    app_id="app", event_type="order_completed", event_id="e", data="{}",
    url="https://127.0.0.1/x", timeout=5.0, keys=("k",),
)  # fmt: skip


def test_contexts_are_cached_per_endpoint_version() -> None:
    issued = TestCa().issue("client-a")
    tls = ClientTls()
    assert tls.context(JOB) is True  # no client certificate: the session's default
    job = dataclasses.replace(
        JOB, client_cert=issued.cert, client_key=issued.key, endpoint_version=1.0
    )
    first = tls.context(job)
    assert isinstance(first, ssl.SSLContext)
    assert tls.context(job) is first
    assert tls.context(dataclasses.replace(job, endpoint_version=2.0)) is not first
    assert tls.context(dataclasses.replace(job, endpoint_id="ep_2")) is not first
