"""The per-stage histogram: with HOOKLINE_RECEIVER_STAGES set, a receiver times each
accepted webhook's stages and writes them out on SIGUSR1 and when it stops."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from hookline.receiver import Receiver, stages
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receiver import post, serving, signed_webhook


def lines(path: Path) -> list[dict[str, dict[str, dict[str, float]]]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_each_accepted_webhook_is_timed_stage_by_stage(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "stages.jsonl"
    monkeypatch.setenv(stages.STAGES_ENV, str(out))
    receiver = Receiver(keys=["k"], database=database_url)
    async with serving(receiver, free_port()) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await post(session, url, *signed_webhook(["k"])))[0] == 200
        refused = signed_webhook(["other"])
        assert (await post(session, url, *refused))[0] == 401
        os.kill(os.getpid(), signal.SIGUSR1)
        await eventually(lambda: len(lines(out)) == 1)
        assert (await post(session, url, *signed_webhook(["k"])))[0] == 200
    first, last = lines(out)
    assert set(first["stages"]) == set(stages.STAGES)
    # Refusals are not counted: only webhooks that went through every stage.
    assert {h["count"] for h in first["stages"].values()} == {3}
    assert {h["count"] for h in last["stages"].values()} == {1}
    total = first["stages"]["total"]
    assert 0 < total["p50_ms"] <= total["p99_ms"] <= total["p99.9_ms"] <= total["max_ms"]
    assert stages.recorder is None  # stopping the receiver stopped the recording


def test_percentiles_fall_within_a_bucket_of_the_truth() -> None:
    histogram = stages.Histogram()
    for i in range(1, 1001):
        histogram.add(i / 1e6 * 100)  # 0.1 ms to 100 ms
    for q, truth in ((50, 0.05), (99, 0.099), (99.9, 0.0999)):
        assert truth <= histogram.percentile(q) <= truth * 1.1
    assert histogram.percentile(100) == pytest.approx(0.1)
