"""A receiver app whose keys come from ``$HOOKLINE_TEST_KEYS`` (comma-separated), as an
app deploys its receiver with a new key list during a verification-key rotation. Every
event handled is appended (its event_id) to ``$HOOKLINE_TEST_LOG``."""

from __future__ import annotations

import os

from hookline.receiver import Event, Receiver

receiver = Receiver(keys=os.environ["HOOKLINE_TEST_KEYS"].split(","))
LOG = os.environ.get("HOOKLINE_TEST_LOG", os.devnull)


@receiver.on("*")
def record(event: Event) -> None:
    with open(LOG, "a") as log:
        log.write(event.event_id + "\n")
