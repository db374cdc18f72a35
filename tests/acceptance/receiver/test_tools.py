"""The developer tools against the real ``hookline receive``: ``send-test`` for every type,
and the dead-letter commands (list, show, replay)."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hookline.events import EVENT_TYPES
from tests.conftest import free_port
from tests.support.eventually import eventually_sync
from tests.support.receive_process import HOOKLINE, ROOT, ReceiveProcess
from tests.support.receiver import KEY, read_runs, signed_webhook


def hookline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


@pytest.mark.slow
def test_send_test_delivers_every_type(tmp_path: Path, sqlite_url: str) -> None:
    log = tmp_path / "runs.jsonl"
    log.touch()
    receiver = ReceiveProcess(sqlite_url, free_port(), log).start()
    try:
        for event_type in EVENT_TYPES:
            result = hookline(
                "send-test", "--url", receiver.url, "--key", KEY, "--event", event_type
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith('200 {"status":"accepted"}')
        eventually_sync(lambda: len([r for r in read_runs(log) if r.end]) == len(EVENT_TYPES))
        wrong = hookline(
            "send-test", "--url", receiver.url, "--key", "nope", "--event", "order_completed"
        )
        assert wrong.returncode == 1 and "bad_signature" in wrong.stdout
    finally:
        receiver.stop()


def test_dead_letters_are_listed_shown_and_replayed(tmp_path: Path, sqlite_url: str) -> None:
    log, flag = tmp_path / "runs.jsonl", tmp_path / "fail"
    log.touch()
    flag.touch()
    os.environ["HOOKLINE_TEST_FAIL_FLAG"] = str(flag)
    try:
        receiver = ReceiveProcess(sqlite_url, free_port(), log).start()
    finally:
        del os.environ["HOOKLINE_TEST_FAIL_FLAG"]

    def dead_letters(*args: str) -> subprocess.CompletedProcess[str]:
        return hookline("dead-letters", *args, "--database", sqlite_url)

    try:
        sent = hookline(
            "send-test", "--url", receiver.url, "--key", KEY, "--event", "order_completed"
        )
        assert sent.returncode == 0, sent.stderr
        eventually_sync(lambda: "order_completed" in dead_letters("list").stdout)
        listed = dead_letters("list").stdout
        assert "failing on purpose" in listed and " 3 " in listed  # three runs, then dead

        shown = dead_letters("show", "1")
        assert shown.returncode == 0, shown.stderr
        assert "XZHQ59WA" in shown.stdout and "RuntimeError: failing on purpose" in shown.stdout

        flag.unlink()
        replayed = dead_letters("replay", "1")
        assert replayed.returncode == 0 and "Replaying 1 webhook(s): 1" in replayed.stdout
        eventually_sync(lambda: any(r.end for r in read_runs(log)))
        eventually_sync(lambda: dead_letters("list").stdout.strip() == "No dead letters.")
        assert dead_letters("replay", "1").returncode == 1  # not a dead letter any more
        assert dead_letters("replay", "--all").stdout.startswith("Replaying 0")
    finally:
        receiver.stop()


def _post(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


@pytest.mark.parametrize("selz_only", [False, True])
def test_receive_refuses_selz_only_requests_unless_built_for_them_and_then_warns(
    tmp_path: Path, sqlite_url: str, selz_only: bool
) -> None:
    log = tmp_path / "runs.jsonl"
    log.touch()
    env = {"HOOKLINE_TEST_SELZ_ONLY": "1"} if selz_only else {}
    receiver = ReceiveProcess(sqlite_url, free_port(), log, env=env).start()
    try:
        status = _post(receiver.url, *signed_webhook(standard=False, event_id="evt-selz"))
        assert status == (200 if selz_only else 401)
        assert _post(receiver.url, *signed_webhook(event_id="evt-both")) == 200
        expected = {"evt-selz", "evt-both"} if selz_only else {"evt-both"}
        eventually_sync(lambda: {r.event_id for r in read_runs(log) if r.end} == expected)
    finally:
        receiver.stop()
    warned = "require_standard=False" in receiver.stderr()
    assert warned is selz_only, receiver.stderr()
