"""Each transport over real sockets on loopback: the same answers, the same errors in the
same words, and the address policy on the address that is connected to.

Names are resolved by a fake resolver (names under ``.invalid`` that real DNS never
answers), so a request that reaches a listener went to the address the transport was
given, checked and pinned, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from hookline.clock import ManualClock
from hookline.sender.transport import AiohttpTransport, ReqwestTransport, Transport, pinning
from hookline.sender.transport.base import Resolve
from hookline.store.records import Job
from tests.conftest import free_port
from tests.support.listener import ConnectionCounter
from tests.support.pki import TestCa
from tests.support.recorder import Answer, Recorder, redirect

JOB = Job(
    delivery_id=1, token="t" * 48, attempts=0, endpoint_id="ep_1", lane="u", user_id="u",
    app_id="app_1", event_type="order_completed", event_id="evt_1", data="{}",
    url="http://127.0.0.1:9/", timeout=5.0, keys=("k",),
)  # fmt: skip
HEADERS = {"Content-Type": "application/json", "X-Selz-Signature": "sig"}
KINDS: dict[str, Callable[..., Transport]] = {
    "aiohttp": AiohttpTransport,
    "reqwest": ReqwestTransport,
}


def resolver(table: dict[str, Sequence[str]]) -> Resolve:
    async def resolve(host: str) -> Sequence[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


async def _post(transport: Transport, url: str, **job: object):  # type: ignore[no-untyped-def]
    try:
        return await transport.post(replace(JOB, url=url, **job), b'{"a":1}', HEADERS)  # type: ignore[arg-type]
    finally:
        await transport.close()


async def test_an_answer_is_read_the_same_way(kind: str, recorder: Recorder) -> None:
    body = "é" * 700  # 1,400 bytes, of which the excerpt is the first KiB
    url = recorder.script("/x", then=Answer(503, body=body, headers={"Retry-After": "7"}))
    reply = await _post(KINDS[kind](allow_private=True), url)
    assert (reply.status, reply.retry_after, reply.error) == (503, "7", None)
    assert reply.excerpt == "é" * 512
    (hit,) = recorder.hits("/x")
    assert hit.body == b'{"a":1}' and hit.headers["X-Selz-Signature"] == "sig"
    assert "Accept-Encoding" not in hit.headers  # the excerpt is the answer as sent
    assert hit.headers["User-Agent"].startswith("hookline/")


async def test_redirects_are_not_followed(kind: str, recorder: Recorder) -> None:
    url = recorder.script("/from", then=redirect(recorder.url("/to")))
    reply = await _post(KINDS[kind](allow_private=True), url)
    assert reply.status == 302 and recorder.hits("/to") == []


async def test_the_endpoints_timeout_ends_the_attempt(kind: str, recorder: Recorder) -> None:
    url = recorder.script("/slow", then=Answer(hang=True))
    reply = await _post(KINDS[kind](allow_private=True), url, timeout=0.5)
    assert reply == type(reply)(error="no answer within the endpoint's timeout of 0.5 s")
    await recorder.wait_for(lambda: recorder.hits("/slow")[0].cancelled)  # connection dropped


async def test_a_refused_connection_is_named(kind: str) -> None:
    port = free_port()
    reply = await _post(KINDS[kind](allow_private=True), f"http://127.0.0.1:{port}/")
    assert reply.error == f"connection refused by 127.0.0.1:{port}"


async def test_a_name_that_does_not_resolve_is_named(kind: str) -> None:
    transport = KINDS[kind](allow_private=False, resolve=resolver({}))
    reply = await _post(transport, "http://nowhere.invalid/")
    assert reply.error == "cannot resolve nowhere.invalid: Name or service not known"


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "hooks.invalid", "Hooks.INVALID."])
async def test_loopback_is_refused_by_name_or_address_and_never_dialled(
    kind: str, host: str
) -> None:
    async with ConnectionCounter() as listener:
        transport = KINDS[kind](
            allow_private=False,
            resolve=resolver({"hooks.invalid": ["::1"], "hooks.invalid.": ["127.0.0.1"]}),
        )
        reply = await _post(transport, f"http://{host}:{listener.port}/")
    assert reply.status is None and "refused by the address policy" in (reply.error or "")
    if "invalid" in host:
        assert reply.error.startswith(host.lower() + ": refused by the address policy")  # type: ignore[union-attr]
    assert listener.accepted == []


@pytest.mark.parametrize(
    "host", ["hooks.invalid", "HOOKS.invalid", "hooks.invalid.", "bücher.invalid"]
)
async def test_a_name_goes_to_the_address_it_was_pinned_to(host: str, recorder: Recorder) -> None:
    # Real DNS never answers .invalid: reaching the recorder proves the pin was used.
    names = ["hooks.invalid", "hooks.invalid.", "xn--bcher-kva.invalid"]
    transport = ReqwestTransport(
        allow_private=True, resolve=resolver({name: ["127.0.0.1"] for name in names})
    )
    reply = await _post(transport, f"http://{host}:{recorder.port}/pinned")
    assert reply.status == 200, reply
    assert len(recorder.hits("/pinned")) == 1


async def test_after_the_ttl_a_name_is_resolved_again_and_the_new_address_used() -> None:
    answers = {"hooks.invalid": ["127.0.0.1"]}
    clock = ManualClock()
    transport = ReqwestTransport(
        allow_private=True, resolve=resolver(answers), pin_ttl=0.2, clock=clock
    )
    try:
        async with ConnectionCounter() as listener:
            url = f"http://hooks.invalid:{listener.port}/"
            await transport.post(replace(JOB, url=url, timeout=2), b"{}", HEADERS)
            answers["hooks.invalid"] = ["::1"]
            clock.advance(0.3)  # past the pin's TTL
            await transport.post(replace(JOB, url=url, timeout=2), b"{}", HEADERS)
        assert [sockname[0] for sockname in listener.accepted] == ["127.0.0.1", "::1"]
    finally:
        await transport.close()


async def test_a_bounded_number_of_clients_is_kept(recorder: Recorder) -> None:
    names = {f"h{n}.invalid": ["127.0.0.1"] for n in range(5)}
    transport = ReqwestTransport(allow_private=True, resolve=resolver(names), max_clients=2)
    try:
        for name in names:
            url = f"http://{name}:{recorder.port}/bounded"
            reply = await transport.post(replace(JOB, url=url), b"{}", HEADERS)
            assert reply.status == 200
        assert len(transport.clients) == 2
    finally:
        await transport.close()
    assert len(recorder.hits("/bounded")) == 5


async def _tls_server(ca: TestCa, directory: Path) -> tuple[asyncio.Server, int]:
    """An HTTPS listener on 127.0.0.1 with a certificate from ``ca``, answering 200."""
    issued = ca.issue("127.0.0.1", server=True)
    (directory / "server.pem").write_text(issued.cert + issued.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.pem")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def test_a_certificate_from_an_unknown_ca_is_named_and_the_ca_bundle_trusts_it(
    kind: str, tmp_path: Path
) -> None:
    ca = TestCa()
    server, port = await _tls_server(ca, tmp_path)
    url = f"https://127.0.0.1:{port}/"
    try:
        untrusted = await _post(KINDS[kind](allow_private=True), url)
        trusted = await _post(
            KINDS[kind](allow_private=True, ca_bundle=str(ca.write(tmp_path))), url
        )
    finally:
        server.close()
    print(untrusted.error)
    assert (untrusted.error or "").startswith(
        f"the TLS certificate of 127.0.0.1:{port} is not valid: "
    )
    assert trusted.status == 200, trusted


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_a_literal_address_is_dialled_as_written_where_private_targets_are_allowed(
    kind: str, host: str
) -> None:
    async with ConnectionCounter() as listener:
        reply = await _post(KINDS[kind](allow_private=True), f"http://{host}:{listener.port}/")
    assert reply.status is None  # the counter closes without answering
    assert [sockname[0] for sockname in listener.accepted] == [host.strip("[]")]


async def test_a_name_that_turns_forbidden_after_the_ttl_is_refused_on_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The policy as if 127.0.0.1 were a public address (only loopback may be dialled
    # here) while ::1 stays forbidden: the name first resolves to the allowed address,
    # then is rebound to the forbidden one.
    real_reason = pinning.forbidden_reason
    monkeypatch.setattr(
        pinning,
        "forbidden_reason",
        lambda address: None if str(address) == "127.0.0.1" else real_reason(address),
    )
    answers = {"hooks.invalid": ["127.0.0.1"]}
    clock = ManualClock()
    transport = ReqwestTransport(
        allow_private=False, resolve=resolver(answers), pin_ttl=0.2, clock=clock
    )
    try:
        async with ConnectionCounter() as listener:
            url = f"http://hooks.invalid:{listener.port}/"
            await transport.post(replace(JOB, url=url, timeout=2), b"{}", HEADERS)
            answers["hooks.invalid"] = ["::1"]
            clock.advance(0.3)  # past the pin's TTL
            refused = await transport.post(replace(JOB, url=url, timeout=2), b"{}", HEADERS)
        assert refused.error == "hooks.invalid: refused by the address policy: ::1 is loopback"
        assert [sockname[0] for sockname in listener.accepted] == ["127.0.0.1"]
        assert len(transport.clients) == 0  # the old pin is gone with it
    finally:
        await transport.close()
