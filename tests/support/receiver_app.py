"""The app that acceptance tests serve with ``hookline receive``.

Each handler run appends a start and an end line to ``$HOOKLINE_TEST_LOG`` (JSON, one
write each), with the process id and a monotonic clock shared by all processes of the
host, so the test can tell which runs overlapped, in what order, and in which process.
While the file ``$HOOKLINE_TEST_FAIL_FLAG`` exists, handlers fail (dead-letter tests);
``HOOKLINE_TEST_SELZ_ONLY=1`` builds it with ``require_standard=False``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from hookline.config import RetryPolicy
from hookline.receiver import Event, Receiver
from tests.support.receiver import KEY, log_line

receiver = Receiver(
    keys=[os.environ.get("HOOKLINE_TEST_KEY", KEY)],
    retry=RetryPolicy(schedule=(0, 0.05, 0.05), jitter=0),
    require_standard=os.environ.get("HOOKLINE_TEST_SELZ_ONLY") != "1",
)
LOG = os.environ.get("HOOKLINE_TEST_LOG", os.devnull)
SLEEP = float(os.environ.get("HOOKLINE_TEST_SLEEP", "0.002"))
FAIL_FLAG = os.environ.get("HOOKLINE_TEST_FAIL_FLAG", "")


@receiver.on("*")
async def record(event: Event) -> None:
    run = f"{os.getpid()}-{secrets.token_hex(6)}"
    common = {"run": run, "event_id": event.event_id, "user_id": event.user_id, "pid": os.getpid()}
    seq = event.data.get("seq", 0)
    log_line(LOG, {**common, "phase": "start", "seq": seq, "t": time.monotonic_ns()})
    await asyncio.sleep(SLEEP)
    if FAIL_FLAG and os.path.exists(FAIL_FLAG):
        raise RuntimeError("failing on purpose: the fail flag is set")
    log_line(LOG, {**common, "phase": "end", "t": time.monotonic_ns()})
