"""Over real HTTP, on each inbox backend: what is refused, what is a duplicate, what is stored.

Every refusal is a 4xx that says why and leaves the inbox untouched; an exact repeat of an
accepted webhook is a 2xx and is handled once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from hookline.events import format_timestamp
from hookline.receiver import Event, Receiver
from hookline.signing import sign_headers
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receiver import KEY, all_done, post, serving, signed_webhook, statuses


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def handled() -> list[Event]:
    return []


@pytest.fixture
def receiver(database_url: str, handled: list[Event]) -> Receiver:
    receiver = Receiver(keys=["old-key", KEY], database=database_url, max_body_bytes=64 * 1024)

    @receiver.on("*")
    async def record(event: Event) -> None:
        handled.append(event)

    return receiver


@pytest.fixture
async def url(receiver: Receiver) -> AsyncIterator[str]:
    async with serving(receiver, free_port()) as url:
        yield url


async def test_a_signed_webhook_is_accepted_and_handled(
    url: str, session: aiohttp.ClientSession, handled: list[Event]
) -> None:
    headers, body = signed_webhook(user_id="u1", data={"id": "ord_1", "total": "9.99"})
    status, answer = await post(session, url, headers, body)
    assert (status, answer) == (200, {"status": "accepted"})
    await eventually(lambda: len(handled) == 1)
    event = handled[0]
    envelope = orjson.loads(body)
    assert event.event_id == envelope["event_id"]
    assert event.token == envelope["token"]
    assert event.timestamp == envelope["timestamp"]
    assert (event.event_type, event.user_id) == ("order_completed", "u1")
    assert event.data == {"id": "ord_1", "total": "9.99"}


async def test_an_exact_repeat_is_a_duplicate_handled_once(
    url: str, session: aiohttp.ClientSession, handled: list[Event], receiver: Receiver
) -> None:
    headers, body = signed_webhook()
    answers = [await post(session, url, headers, body) for _ in range(3)]
    assert answers[0] == (200, {"status": "accepted"})
    assert answers[1:] == [(200, {"status": "duplicate"})] * 2
    await all_done(receiver, 1)
    assert len(handled) == 1


async def test_a_retry_with_a_new_timestamp_is_a_duplicate(
    url: str, session: aiohttp.ClientSession, handled: list[Event]
) -> None:
    """The sender's retry keeps token and event_id; its timestamp and signatures are new."""
    first = signed_webhook(token="T" * 48, event_id="evt_retry", unix_ts=int(time.time()) - 60)
    retry = signed_webhook(token="T" * 48, event_id="evt_retry")
    assert first[1] != retry[1]
    assert (await post(session, url, *first))[0] == 200
    assert await post(session, url, *retry) == (200, {"status": "duplicate"})
    await eventually(lambda: len(handled) == 1)


async def test_the_same_event_id_under_a_new_token_is_a_duplicate(
    url: str, session: aiohttp.ClientSession, handled: list[Event]
) -> None:
    assert (await post(session, url, *signed_webhook(event_id="evt_same")))[0] == 200
    again = signed_webhook(event_id="evt_same")
    assert await post(session, url, *again) == (200, {"status": "duplicate"})
    await eventually(lambda: len(handled) == 1)


async def test_a_key_being_rotated_out_is_still_accepted(
    url: str, session: aiohttp.ClientSession, handled: list[Event]
) -> None:
    status, _ = await post(session, url, *signed_webhook(keys=["old-key"]))
    assert status == 200


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad_signature", 401, "bad_signature"),
        ("selz_only", 401, "bad_signature"),
        ("bad_body_signature", 401, "bad_signature"),
        ("unknown_key", 401, "bad_signature"),
        ("altered_body", 401, "bad_signature"),
        ("stale", 401, "stale_timestamp"),
        ("future", 401, "stale_timestamp"),
        ("not_json", 400, "malformed_webhook"),
        ("not_an_envelope", 400, "malformed_webhook"),
        ("unknown_type", 400, "malformed_webhook"),
        ("oversized", 413, "body_too_large"),
    ],
)
async def test_refusals_say_why_and_store_nothing(
    url: str,
    session: aiohttp.ClientSession,
    handled: list[Event],
    receiver: Receiver,
    case: str,
    status: int,
    code: str,
) -> None:
    headers, body = _refused(case)
    got_status, answer = await post(session, url, headers, body)
    assert got_status == status
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    # Nothing was stored: a valid webhook is the first and only one handled.
    assert (await post(session, url, *signed_webhook(event_id="evt_after")))[0] == 200
    await all_done(receiver, 1)
    assert [e.event_id for e in handled] == ["evt_after"]


def _refused(case: str) -> tuple[dict[str, str], bytes]:
    now = int(time.time())
    if case == "bad_signature":
        headers, body = signed_webhook()
        return {**headers, "X-Selz-Signature": "AAAA" + headers["X-Selz-Signature"][4:]}, body
    if case == "selz_only":
        return signed_webhook(standard=False)
    if case == "bad_body_signature":
        headers, body = signed_webhook()
        return {**headers, "webhook-signature": "v1," + "A" * 44}, body
    if case == "unknown_key":
        return signed_webhook(keys=["someone-elses-key"])
    if case == "altered_body":
        headers, body = signed_webhook(data={"id": "ord_1", "total": "9.99"})
        return headers, body.replace(b"9.99", b"0.01")
    if case == "stale":
        return signed_webhook(unix_ts=now - 301)
    if case == "future":
        return signed_webhook(unix_ts=now + 400)
    if case == "not_json":
        return resigned(b"<xml>not json</xml>")
    if case == "not_an_envelope":
        return resigned(b'["a", "list"]')
    if case == "unknown_type":
        _, body = signed_webhook()
        return resigned(body.replace(b"order_completed", b"order_teleported"))
    assert case == "oversized"
    return signed_webhook(data={"id": "big", "blob": "x" * 70_000})


def resigned(body: bytes) -> tuple[dict[str, str], bytes]:
    """Headers that sign ``body`` correctly, whatever it holds (to reach the body checks)."""
    now = int(time.time())
    headers = sign_headers(
        [KEY], timestamp=format_timestamp(float(now)), token="T" * 48, msg_id="m1",
        unix_ts=now, body=body,
    )  # fmt: skip
    return {**headers, "Content-Type": "application/json"}, body


def _captured_and_forged(
    *, standard: bool
) -> tuple[tuple[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    """A captured request, and an attacker's copy: the same headers (timestamp, token,
    signatures) with altered data. X-Selz-Signature does not cover data; webhook-signature
    does."""
    headers, body = signed_webhook(standard=standard, data={"id": "ord_1", "total": "9.99"})
    forged = body.replace(b'"total":"9.99"', b'"total":"0.01"')
    assert forged != body
    return (headers, body), (headers, forged)


async def test_a_forged_replay_of_a_captured_request_is_refused_by_default(
    url: str, session: aiohttp.ClientSession, handled: list[Event], receiver: Receiver
) -> None:
    """The attack of a captured request: replayed with other data, before or after the
    genuine one arrives. The body signature gives it away either way."""
    genuine, forged = _captured_and_forged(standard=True)
    status, answer = await post(session, url, *forged)  # before the genuine one
    assert (status, answer["error"]["code"]) == (401, "bad_signature")
    assert "body was altered" in answer["error"]["message"]
    # With the body signature stripped, only the valid X-Selz-Signature is left: refused.
    selz_only = {k: v for k, v in forged[0].items() if not k.startswith("webhook-")}
    assert (await post(session, url, selz_only, forged[1]))[0] == 401
    assert (await post(session, url, *genuine))[0] == 200
    assert (await post(session, url, *forged))[0] == 401  # and after it
    assert (await post(session, url, selz_only, forged[1]))[0] == 401
    await all_done(receiver, 1)
    assert [e.data for e in handled] == [{"id": "ord_1", "total": "9.99"}]


async def test_a_selz_only_request_is_refused_by_default(
    database_url: str, session: aiohttp.ClientSession
) -> None:
    """A valid X-Selz-Signature alone is not enough: 401, nothing stored, no handler run."""
    receiver = Receiver(keys=[KEY], database=database_url)
    handled: list[Event] = []
    receiver.on("*")(handled.append)
    async with serving(receiver, free_port()) as url:
        status, answer = await post(session, url, *signed_webhook(standard=False))
        assert status == 401
        assert "webhook-signature" in answer["error"]["message"]
        inbox = await receiver.open_inbox()
        assert await statuses(inbox) == {}
        assert (await post(session, url, *signed_webhook(event_id="evt_signed")))[0] == 200
        await all_done(receiver, 1)
    assert [e.event_id for e in handled] == ["evt_signed"]


async def test_selz_only_mode_accepts_the_selz_signature_and_warns_at_start(
    database_url: str, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver(keys=[KEY], database=database_url, require_standard=False)
    handled: list[Event] = []
    receiver.on("*")(handled.append)
    with caplog.at_level(logging.WARNING, logger="hookline.receiver"):
        async with serving(receiver, free_port()) as url:
            genuine, forged = _captured_and_forged(standard=False)
            assert await post(session, url, *genuine) == (200, {"status": "accepted"})
            # A captured token replayed with other data after the genuine one: 409.
            status, answer = await post(session, url, *forged)
            assert (status, answer["error"]["code"]) == (409, "replayed_token")
            # A body signature, when one is sent, is still checked.
            headers, body = signed_webhook(data={"id": "ord_2", "total": "5.00"})
            tampered = body.replace(b"5.00", b"0.05")
            assert (await post(session, url, headers, tampered))[0] == 401
            await all_done(receiver, 1)
    assert [e.data for e in handled] == [{"id": "ord_1", "total": "9.99"}]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("require_standard=False" in r.getMessage() for r in warnings)
    assert any("replayed" in r.getMessage() for r in warnings)


async def test_the_default_receiver_logs_no_such_warning(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hookline.receiver"):
        async with Receiver(keys=[KEY], database=database_url).running():
            pass
    assert not [r for r in caplog.records if "require_standard" in r.getMessage()]
