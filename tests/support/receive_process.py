"""Run the real ``hookline receive`` in a subprocess, and a sender that never gives up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.eventually import eventually, eventually_sync

ROOT = Path(__file__).resolve().parents[2]
HOOKLINE = str(Path(sys.executable).with_name("hookline"))


class ReceiveProcess:
    """``hookline receive tests.support.receiver_app:receiver`` on a port of its own."""

    def __init__(
        self, database: str, port: int, log: Path, *extra: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.database, self.port, self.log, self.extra = database, port, log, extra
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        # To a file, not a pipe: a pipe nobody reads fills up and blocks the process.
        self.stderr_path = log.with_name(f"receive-{port}.stderr")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def start(self) -> ReceiveProcess:
        env = {**os.environ, "HOOKLINE_TEST_LOG": str(self.log), **self.env}
        command = [
            HOOKLINE, "receive", "tests.support.receiver_app:receiver",
            "--database", self.database, "--port", str(self.port),
            "--lease-seconds", "5", "--poll-interval", "0.05", *self.extra,
        ]  # fmt: skip
        with self.stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr)
        proc = self.proc
        eventually_sync(
            lambda: listening(self.port) or proc.poll() is not None,
            timeout=30,
            message="hookline receive to listen",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"hookline receive exited: {self.stderr()}")
        return self

    def stderr(self) -> str:
        """What the process wrote to stderr so far (its warnings and errors)."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def deliver(
    session: aiohttp.ClientSession, urls: list[str], headers: dict[str, str], body: bytes
) -> str:
    """Post until some receiver answers 2xx, as a sender does; return its status word."""
    attempts = 0

    async def post_once() -> str | None:
        nonlocal attempts
        url = urls[attempts % len(urls)]
        attempts += 1
        try:
            async with session.post(url, data=body, headers=headers) as response:
                answer: Any = await response.json(content_type=None)
                if response.status == 200:
                    return str(answer["status"])
                assert response.status >= 500, (response.status, answer)
        except (TimeoutError, aiohttp.ClientError):
            pass
        return None

    return await eventually(post_once, message="a receiver to accept the webhook")
