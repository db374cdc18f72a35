"""The receiver as a Flask view (Flask stays optional: it is imported on first request).

    from hookline.receiver.flask import webhook_view

    app.add_url_rule("/webhooks", view_func=webhook_view(receiver), methods=["POST"])

The view verifies, stores and acknowledges; the receiver's workers run in a background
thread of each process (pass ``workers=False`` to run them elsewhere, with
``hookline receive``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookline.receiver._background import BackgroundReceiver
from hookline.receiver.intake import too_large

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver


class FlaskWebhookView:
    """A callable Flask view; ``.background.stop()`` shuts the receiver down."""

    def __init__(self, receiver: Receiver, *, workers: bool = True) -> None:
        self.background = BackgroundReceiver(receiver, workers=workers)
        self.__name__ = "hookline_webhook"  # Flask names the endpoint after the view

    def __call__(self) -> Any:
        from flask import Response, request

        limit = self.background.receiver.intake.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            receipt = too_large(limit)
        else:
            body = request.stream.read(limit + 1)  # one byte past the limit tells "too big"
            receipt = self.background.receive(dict(request.headers), body)
        return Response(receipt.body, status=receipt.status, mimetype="application/json")


def webhook_view(receiver: Receiver, *, workers: bool = True) -> FlaskWebhookView:
    return FlaskWebhookView(receiver, workers=workers)
