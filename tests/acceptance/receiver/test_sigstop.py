"""The limit that remains, shown as docs/receiver.md states it ("Leases and their limit"):
a ``hookline receive`` process paused (SIGSTOP) for longer than its lease, in the middle of
a handler, loses the user to another process, which runs the webhook again and goes on
with that user's later webhooks. When the paused process resumes, its handler finishes,
and the process logs an ERROR and records nothing: the other process's run is the one
recorded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import aiohttp
import pytest

from hookline.receiver.inbox import open_inbox
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receive_process import ReceiveProcess, deliver
from tests.support.receiver import inbox_settled, read_runs, signed_webhook, statuses

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 3.0


async def test_a_process_paused_past_its_lease_loses_the_user_and_records_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    log = tmp_path / "runs.jsonl"
    log.touch()
    lease = ("--lease-seconds", str(LEASE))
    # The paused process's handlers take 5 s: long enough to be stopped inside one, even
    # on a busy machine (the time it is stopped counts, so it costs nothing more).
    paused = ReceiveProcess(
        postgres_url, free_port(), log, *lease, env={"HOOKLINE_TEST_SLEEP": "5"}
    ).start()
    other: ReceiveProcess | None = None
    base = int(time.time()) - 60

    def runs_of(event_id: str, pid: int, *, ended: bool = False) -> int:
        return sum(
            1
            for run in read_runs(log)
            if run.event_id == event_id and run.pid == pid and (run.end or not ended)
        )

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            first = signed_webhook(user_id="u", event_id="evt-1", unix_ts=base, data={"seq": 1})
            assert await deliver(session, [paused.url], *first) == "accepted"
            await eventually(lambda: runs_of("evt-1", paused.pid) == 1, message="evt-1 to start")
            paused.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            stopped_at = time.monotonic()

            other = ReceiveProcess(postgres_url, free_port(), log, *lease).start()
            await eventually(
                lambda: runs_of("evt-1", other.pid, ended=True) == 1,
                timeout=60,
                message="the other process to run evt-1 again",
            )
            taken_over_after = time.monotonic() - stopped_at
            second = signed_webhook(user_id="u", event_id="evt-2", unix_ts=base + 1)
            assert await deliver(session, [other.url], *second) == "accepted"
            await eventually(
                lambda: runs_of("evt-2", other.pid, ended=True) == 1,
                timeout=60,
                message="the other process to go on with the user's next webhook",
            )

            paused.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            await eventually(
                lambda: "lost the lease of user 'u' while webhook 1 ran" in paused.stderr(),
                timeout=60,
                message=lambda: f"the ERROR in the resumed process's log:\n{paused.stderr()}",
            )
            assert runs_of("evt-1", paused.pid, ended=True) == 1  # its handler did finish
            # The resumed process goes on working.
            third = signed_webhook(user_id="v", event_id="evt-3", unix_ts=base + 2)
            assert await deliver(session, [paused.url], *third) == "accepted"
            await eventually(
                lambda: any(r.event_id == "evt-3" and r.end for r in read_runs(log)),
                timeout=60,
                message="evt-3 to be handled",
            )
            await eventually(lambda: inbox_settled(postgres_url, 3), message="all three done")
    finally:
        if paused.proc is not None and paused.proc.poll() is None:
            paused.proc.send_signal(signal.SIGCONT)
        paused.stop()
        if other is not None:
            other.stop()

    print(
        f"\n  the other process ran evt-1 {taken_over_after:.1f} s after the pause"
        f" (lease {LEASE} s)"
    )
    assert taken_over_after >= LEASE - 1.0  # not before the lease could have run out
    error_lines = [line for line in paused.stderr().splitlines() if "lost the lease" in line]
    assert len(error_lines) == 1 and "is not recorded" in error_lines[0]
    # evt-1 ran twice, once in each process, and the two runs overlapped: the paused run
    # was still inside its handler when the other process ran it again. That is the limit.
    runs = [run for run in read_runs(log) if run.event_id == "evt-1"]
    assert sorted(run.pid for run in runs) == sorted([paused.pid, other.pid])
    mine, theirs = sorted(runs, key=lambda run: run.pid != paused.pid)
    assert mine.start < theirs.start and theirs.end is not None and mine.end is not None
    assert mine.end > theirs.start
    # Recorded once, by the process that held the lane: one run, done.
    inbox = open_inbox(postgres_url)
    await inbox.open()
    try:
        row = await inbox.get_webhook(1)
        counts = await statuses(inbox)
    finally:
        await inbox.close()
    assert row is not None and (row["status"], row["attempts"]) == ("done", 1)
    assert counts == {"done": 3}
