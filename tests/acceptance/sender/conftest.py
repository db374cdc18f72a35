"""Fixtures for the sender's acceptance tests: the real ``hookline serve``, its API, and a
recording endpoint on loopback.

A test changes the sender's environment by parametrising ``serve_env``:

    @pytest.mark.parametrize("serve_env", [{"HOOKLINE_RETRY_SCHEDULE": "0,1.2,1.2"}])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hookline_proc import Api, ServeProcess
from tests.support.recorder import Recorder


@pytest.fixture
def serve_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def serve(tmp_path: Path, serve_env: dict[str, str]) -> AsyncIterator[ServeProcess]:
    process = ServeProcess(tmp_path / "sender.db", env=serve_env)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
        # Shown by pytest only when the test failed.
        print(process.log())


@pytest.fixture
async def api(serve: ServeProcess) -> AsyncIterator[Api]:
    async with serve.api() as client:
        yield client


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec
