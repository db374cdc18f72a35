"""Drive ``seed_receiver.js``: a receiver built only from Selz's published Node.js example.

Tests use it as the referee for wire compatibility. It is a separate program in another
language, so a signing mistake shared by hookline's sender and receiver cannot make both
sides agree with each other and still be wrong.

    with SeedReceiver(key="k") as seed:
        post(seed.url, ...)
        assert seed.requests()[-1].verdict == "accepted"
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SCRIPT = Path(__file__).with_name("seed_receiver.js")
NODE = shutil.which("node") or "/usr/bin/node"
READY_TIMEOUT = 10.0


def node_available() -> bool:
    return Path(NODE).exists()


def seed_signatures(vectors: Iterable[tuple[str, str, str]]) -> list[str]:
    """Sign each ``(key, timestamp, token)`` with the seed's Node.js function, in one run."""
    payload = [{"key": k, "timestamp": ts, "token": tok} for k, ts, tok in vectors]
    done = subprocess.run(
        [NODE, str(SCRIPT), "--sign"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.splitlines()


@dataclass(frozen=True, slots=True)
class SeedRequest:
    """One request as the seed receiver saw it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int
    verdict: str  # "accepted", "bad_signature", "bad_json" or "method_not_allowed"

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class SeedReceiver:
    """The seed receiver as a child process on a free loopback port.

    Usable as a context manager or through ``start()``/``stop()`` from a pytest fixture.
    The node process picks the port itself (``--port 0``), which avoids the race of
    choosing a free port here and binding it there.
    """

    def __init__(self, key: str, *, path: str = "/webhook") -> None:
        self.key = key
        self.path = path
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="seed-receiver-")
        self.log_path = Path(self._dir.name) / "requests.jsonl"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            [NODE, str(SCRIPT), "--port", "0", "--log", str(self.log_path)],
            env={**os.environ, "SEED_KEY": self.key},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = self._wait_ready(self._proc)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._close_pipes(self._proc)
            self._proc = None
        self._dir.cleanup()

    def requests(self) -> list[SeedRequest]:
        """Every request received so far, oldest first."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [SeedRequest(**json.loads(line)) for line in lines if line]

    def verdicts(self) -> list[str]:
        return [r.verdict for r in self.requests()]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[str]) -> int:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                line = proc.stdout.readline()
                if line.startswith("listening "):
                    return int(line.split()[1])
            if proc.poll() is not None:
                break
        proc.kill()
        proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        SeedReceiver._close_pipes(proc)
        raise RuntimeError(f"seed receiver did not start: {err.strip() or 'timed out'}")

    @staticmethod
    def _close_pipes(proc: subprocess.Popen[str]) -> None:
        # Closed explicitly: with filterwarnings=error a leaked pipe fails the test.
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
