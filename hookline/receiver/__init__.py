"""The receiver: verify Selz-style webhooks, acknowledge in milliseconds, handle each once.

    from hookline.receiver import Receiver

    receiver = Receiver(keys=["your_webhook_verification_key"])

    @receiver.on("order_completed")
    async def fulfil(event):
        ...

Serve it with ``hookline receive myapp:receiver``; see docs/receiver.md.
"""

from __future__ import annotations

from hookline.receiver._config import DEFAULT_INBOX_URL, ReceiverSettings
from hookline.receiver._receiver import Receiver
from hookline.receiver.asgi import webhook_endpoint
from hookline.receiver.event import Event
from hookline.receiver.intake import Receipt

__all__ = [
    "DEFAULT_INBOX_URL",
    "Event",
    "Receipt",
    "Receiver",
    "ReceiverSettings",
    "webhook_endpoint",
]
