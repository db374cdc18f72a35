"""The app that acceptance tests serve with ``hookline receive``.

Each handler run appends a start and an end line to ``$HOOKLINE_TEST_LOG`` (JSON, one
write each), with the process id and a monotonic clock shared by all processes of the
host, so the test can tell which runs overlapped, in what order, and in which process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from hookline.receiver import Event, Receiver
from tests.support.receiver import KEY, log_line

receiver = Receiver(keys=[KEY])
LOG = os.environ.get("HOOKLINE_TEST_LOG", os.devnull)
SLEEP = float(os.environ.get("HOOKLINE_TEST_SLEEP", "0.002"))


@receiver.on("*")
async def record(event: Event) -> None:
    run = f"{os.getpid()}-{secrets.token_hex(6)}"
    common = {"run": run, "event_id": event.event_id, "user_id": event.user_id, "pid": os.getpid()}
    seq = event.data.get("seq", 0)
    log_line(LOG, {**common, "phase": "start", "seq": seq, "t": time.monotonic_ns()})
    await asyncio.sleep(SLEEP)
    log_line(LOG, {**common, "phase": "end", "t": time.monotonic_ns()})
