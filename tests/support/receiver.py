"""Helpers for receiver tests: signed webhooks, an in-process server, handler run logs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn

from hookline.events import encode_envelope, format_timestamp, new_token
from hookline.receiver import Receiver
from hookline.receiver.inbox import Inbox, open_inbox
from hookline.signing import sign_headers
from tests.support.eventually import eventually

KEY = "test-verification-key"


async def statuses(inbox: Inbox) -> dict[str, int]:
    """How many webhooks the inbox holds in each status (none: left out), from the
    listing ``hookline dead-letters list`` reads."""
    found = {s: len(await inbox.list_webhooks(s, 100_000)) for s in ("pending", "done", "dead")}
    return {status: n for status, n in found.items() if n}


def signed_webhook(
    keys: list[str] | None = None,
    *,
    event_type: str = "order_completed",
    user_id: str = "user-1",
    event_id: str | None = None,
    token: str | None = None,
    data: dict[str, Any] | None = None,
    unix_ts: int | None = None,
    standard: bool = True,
) -> tuple[dict[str, str], bytes]:
    """A webhook as hookline's sender would send it: headers and body."""
    keys = keys or [KEY]
    unix_ts = int(time.time()) if unix_ts is None else unix_ts
    timestamp = format_timestamp(float(unix_ts))
    token = token or new_token()
    event_id = event_id or "evt_" + token[:12]
    body = encode_envelope(
        webhook_id="ep_test",
        event_type=event_type,
        timestamp=timestamp,
        token=token,
        event_id=event_id,
        user_id=user_id,
        data_json=orjson.dumps(data if data is not None else {"id": event_id}),
    )
    headers = sign_headers(
        keys, timestamp=timestamp, token=token, msg_id=event_id, unix_ts=unix_ts, body=body
    )
    if not standard:
        headers = {"X-Selz-Signature": headers["X-Selz-Signature"]}
    headers["Content-Type"] = "application/json"
    return headers, body


async def post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


@asynccontextmanager
async def serving(receiver: Receiver, port: int) -> AsyncIterator[str]:
    """Run ``receiver`` (HTTP and workers) in this process; yield its webhook URL."""
    config = uvicorn.Config(
        receiver.asgi_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), message="the receiver to start")
    if not server.started:
        task.result()  # raises what stopped it
        raise AssertionError("the receiver stopped before it started")
    try:
        yield f"http://127.0.0.1:{port}/webhooks"
    finally:
        server.should_exit = True
        await task


async def all_done(receiver: Receiver, count: int) -> None:
    """Until exactly ``count`` webhooks are stored and every one has run to the end.

    Then nothing is left that could run a handler again: a test that checks something
    did *not* happen (a duplicate handled twice, a refused request run) waits for this,
    not for a while.
    """
    inbox = await receiver.open_inbox()

    async def done() -> bool:
        return await statuses(inbox) == {"done": count}

    await eventually(done, message=f"{count} webhook(s) stored, all done")


async def inbox_settled(url: str, count: int) -> bool:
    """Whether the inbox at ``url`` (another process's) holds at least ``count`` webhooks
    and none is pending: each is done or dead, so no handler can run one again."""
    inbox = open_inbox(url)
    await inbox.open()
    try:
        counts = await statuses(inbox)
    finally:
        await inbox.close()
    return "pending" not in counts and sum(counts.values()) >= count


@dataclass(frozen=True)
class Run:
    """One run of a handler, as the test handlers log it."""

    event_id: str
    user_id: str
    seq: int
    pid: int
    start: int
    end: int | None


def log_line(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line in a single write, so lines of concurrent writers never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, json.dumps(record).encode() + b"\n")
    finally:
        os.close(fd)


def read_runs(path: str | Path) -> list[Run]:
    """Pair each handler's start and end records (a run killed mid-way has no end)."""
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        if record["phase"] == "start":
            starts[record["run"]] = record
        else:
            ends[record["run"]] = record["t"]
    return sorted(
        (
            Run(r["event_id"], r["user_id"], r["seq"], r["pid"], r["t"], ends.get(run))
            for run, r in starts.items()
        ),
        key=lambda run: run.start,
    )


def check_no_overlap(runs: list[Run]) -> None:
    """One user's runs never overlap: each starts after the previous one ended."""
    by_user: dict[str, list[Run]] = {}
    for run in runs:
        by_user.setdefault(run.user_id, []).append(run)
    for user, user_runs in by_user.items():
        for before, after in itertools.pairwise(user_runs):
            # A run cut short by kill -9 has no end; the next run starts after the kill.
            if before.end is not None:
                assert after.start >= before.end, f"runs of {user} overlap: {before} {after}"
