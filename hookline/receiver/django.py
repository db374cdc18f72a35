"""The receiver as a Django view (Django stays optional: it is imported on first request).

    # urls.py
    from hookline.receiver.django import webhook_view

    urlpatterns = [path("webhooks", webhook_view(receiver))]

The view is exempt from CSRF (webhooks carry a signature instead) and answers POST only.
The receiver's workers run in a background thread of each process (``workers=False`` to
run them elsewhere, with ``hookline receive``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookline.receiver._background import BackgroundReceiver

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver


class DjangoWebhookView:
    """A callable Django view; ``.background.stop()`` shuts the receiver down."""

    csrf_exempt = True  # what django.views.decorators.csrf.csrf_exempt sets

    def __init__(self, receiver: Receiver, *, workers: bool = True) -> None:
        self.background = BackgroundReceiver(receiver, workers=workers)

    def __call__(self, request: Any) -> Any:
        from django.http import HttpResponse, HttpResponseNotAllowed

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        intake = self.background.receiver.intake
        headers = dict(request.headers)
        receipt = intake.precheck(headers)  # too large, or unsigned: the body is not read
        if receipt is None:
            body = request.read(intake.max_body_bytes + 1)
            receipt = self.background.receive(headers, body)
        return HttpResponse(receipt.body, status=receipt.status, content_type="application/json")


def webhook_view(receiver: Receiver, *, workers: bool = True) -> DjangoWebhookView:
    return DjangoWebhookView(receiver, workers=workers)
