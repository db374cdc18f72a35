"""The smallest receiver: ``hookline receive examples.receiver.basic:receiver``.

Set HOOKLINE_VERIFICATION_KEY to your app's webhook verification key (and, to keep the
inbox elsewhere than ./hookline-inbox.db, HOOKLINE_INBOX_URL).
"""

from __future__ import annotations

import logging
import os

from hookline.receiver import Event, Receiver

log = logging.getLogger("shop")
# Requests must carry webhook-signature (hookline's sender always sends it). For a sender
# that signs only X-Selz-Signature (Selz itself), add require_standard=False and read the
# risk in docs/receiver.md, "Modes".
receiver = Receiver(keys=[os.environ.get("HOOKLINE_VERIFICATION_KEY", "change-me")])
sent_emails: list[str] = []


def send_receipt_email(address: str, reference: str) -> None:
    """Stands in for a real mailer: it records what it would send."""
    sent_emails.append(f"{address}: receipt for {reference}")


@receiver.on("order_payment_succeeded")
async def email_receipt(event: Event) -> None:
    order = event.model()
    customer = event.data.get("customer") or {}
    # Handlers run at least once; once() makes the email go out once, not twice.
    await event.once(
        f"receipt-email:{order.id}",
        send_receipt_email,
        customer.get("email", ""),
        event.data.get("reference_id", order.id),
    )


@receiver.on("*")
def audit(event: Event) -> None:
    log.info("%s for %s: %s", event.event_type, event.user_id, event.data.get("id"))
