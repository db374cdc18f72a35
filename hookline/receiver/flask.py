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

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver


class FlaskWebhookView:
    """A callable Flask view; ``.background.stop()`` shuts the receiver down."""

    def __init__(self, receiver: Receiver, *, workers: bool = True) -> None:
        self.background = BackgroundReceiver(receiver, workers=workers)
        self.__name__ = "hookline_webhook"  # Flask names the endpoint after the view

    def __call__(self) -> Any:
        from flask import Response, request

        intake = self.background.receiver.intake
        headers = dict(request.headers)
        receipt = intake.precheck(headers)  # too large, or unsigned: the body is not read
        if receipt is None:
            # One byte past the limit tells "too big" (a chunked body has no length).
            body = request.stream.read(intake.max_body_bytes + 1)
            receipt = self.background.receive(headers, body)
        return Response(receipt.body, status=receipt.status, mimetype="application/json")


def webhook_view(receiver: Receiver, *, workers: bool = True) -> FlaskWebhookView:
    return FlaskWebhookView(receiver, workers=workers)
