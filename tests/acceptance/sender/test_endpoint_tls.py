"""Mutual TLS through the real ``hookline serve``: a loopback sink that requires a client
certificate from a test CA gets each endpoint's own certificate (never another's, over
one connection pool), and an endpoint without one fails with a clear attempt error.
The sender trusts the test CA through ``HOOKLINE_CA_BUNDLE``."""

from __future__ import annotations

import sqlite3
import ssl
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hookline.store.sealing import new_master_key
from tests.support.eventually import eventually
from tests.support.hookline_proc import Api, ServeProcess
from tests.support.pki import TestCa


@dataclass(frozen=True)
class TlsHit:
    path: str
    client: str  # the common name of the client certificate presented


class TlsSink:
    """Answers 200 over TLS to clients whose certificate the test CA signed, only.

    A plain threaded server (the standard library's): it handshakes on blocking sockets,
    so a client without a certificate gets the TLS alert a typical server sends."""

    def __init__(self, ca: TestCa, directory: Path) -> None:
        server = ca.issue("127.0.0.1", server=True)
        (directory / "server.pem").write_text(server.cert + server.key)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(directory / "server.pem")
        self.context.load_verify_locations(cadata=ca.cert)
        self.context.verify_mode = ssl.CERT_REQUIRED
        # TLS 1.2: the server checks the client's certificate within the handshake, and
        # its alert reaches the client. (Over TLS 1.3 a server that aborts at once may
        # leave the client only a reset connection, which says nothing of certificates.)
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.hits: list[TlsHit] = []
        self.port = 0

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> TlsSink:
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
                subject = dict(item[0] for item in peer.get("subject", ()))
                hits.append(TlsHit(self.path, subject.get("commonName", "")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client without a certificate: refused, as it should be

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.socket = self.context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def ca() -> TestCa:
    return TestCa()


@pytest.fixture
def serve_env(ca: TestCa, tmp_path: Path) -> dict[str, str]:
    return {
        "HOOKLINE_CA_BUNDLE": str(ca.write(tmp_path)),
        "HOOKLINE_MASTER_KEY": new_master_key(),
        "HOOKLINE_RETRY_SCHEDULE": "0",
    }


@pytest.fixture
async def sink(ca: TestCa, tmp_path: Path) -> AsyncIterator[TlsSink]:
    async with TlsSink(ca, tmp_path) as running:
        yield running


async def test_each_endpoint_presents_its_own_client_certificate(
    serve: ServeProcess, api: Api, sink: TlsSink, ca: TestCa
) -> None:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    first, second = ca.issue("client-a"), ca.issue("client-b")
    answers: list[Any] = []
    for path, client in (("/a", first), ("/b", second)):
        answers.append(
            await api.create_endpoint(
                app["id"], sink.url(path), client_cert=client.cert, client_key=client.key
            )
        )
    bare = await api.create_endpoint(app["id"], sink.url("/none"))
    assert answers[0]["client_cert"] == first.cert
    assert "client_key" not in answers[0]

    events = 6
    for seq in range(events):
        await api.publish("order_completed", "store-1", {"id": seq})
    await eventually(lambda: len(sink.hits) >= 2 * events, message=lambda: f"{sink.hits}")
    rows = await api.settled(app["id"], 3 * events)

    # One connection pool, two client certificates: never the wrong one on a connection.
    assert {(h.path, h.client) for h in sink.hits} == {("/a", "client-a"), ("/b", "client-b")}
    assert len(sink.hits) == 2 * events
    delivered = [r for r in rows if r["endpoint_id"] != bare["id"]]
    assert {r["status"] for r in delivered} == {"delivered"}
    refused = [r for r in rows if r["endpoint_id"] == bare["id"]]
    assert {r["status"] for r in refused} == {"failed"}
    errors = {r["attempt_log"][-1]["error"] for r in refused}
    print("attempt errors without a client certificate:", errors)
    assert all("asked for a client certificate" in e for e in errors), errors
    assert not any("Traceback" in e for e in errors)

    answers.append(await api.endpoints(app["id"]))
    answers.append(rows)
    await serve.stop()
    for issued in (first, second):
        secret = issued.key.splitlines()[1]  # a line of the key itself
        assert secret not in repr(answers)
        assert secret not in serve.log()
    with sqlite3.connect(serve.db_path) as db:
        stored = [r[0] for r in db.execute("SELECT client_key FROM endpoints") if r[0]]
    assert len(stored) == 2 and all(value.startswith("fernet:") for value in stored)


async def test_a_client_certificate_is_changed_and_removed_by_patch(
    serve: ServeProcess, api: Api, sink: TlsSink, ca: TestCa
) -> None:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    first, second = ca.issue("client-a"), ca.issue("client-b")
    endpoint = await api.create_endpoint(
        app["id"], sink.url("/x"), client_cert=first.cert, client_key=first.key
    )
    path = f"/api/v1/apps/{app['id']}/endpoints/{endpoint['id']}"
    await api.publish("order_completed", "store-1", {"id": 1})
    await eventually(lambda: len(sink.hits) == 1)
    await api.expect(
        200, "PATCH", path, json={"client_cert": second.cert, "client_key": second.key}
    )
    await api.publish("order_completed", "store-1", {"id": 2})
    await eventually(lambda: len(sink.hits) == 2)
    assert [h.client for h in sink.hits] == ["client-a", "client-b"]
    removed = await api.expect(200, "PATCH", path, json={"client_cert": None, "client_key": None})
    assert removed["client_cert"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"client_cert": "x"}, "give client_cert and client_key together"),
        ({"client_cert": "not a pem", "client_key": "k"}, "client_cert is not a certificate"),
        ("other key", "client_key is not the private key of client_cert"),
        ("no key", "client_key is not an unencrypted private key"),
    ],
)
async def test_bad_client_certificates_are_refused(
    api: Api, ca: TestCa, body: Any, message: str
) -> None:
    app = await api.create_app("shop")
    issued, other = ca.issue("client-a"), ca.issue("client-b")
    if body == "other key":
        body = {"client_cert": issued.cert, "client_key": other.key}
    elif body == "no key":
        body = {"client_cert": issued.cert, "client_key": issued.cert}
    reply = await api.call(
        "POST",
        f"/api/v1/apps/{app['id']}/endpoints",
        json={"url": "https://127.0.0.1:9/x", "event_types": ["*"], **body},
    )
    assert reply.status == 422, reply
    assert message in reply.body["error"]["message"]
    assert other.key.splitlines()[1] not in repr(reply.body)
