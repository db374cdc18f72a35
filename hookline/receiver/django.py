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
from hookline.receiver.intake import too_large

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
        limit = self.background.receiver.intake.max_body_bytes
        declared = request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            receipt = too_large(limit)
        else:
            body = request.read(limit + 1)
            receipt = self.background.receive(dict(request.headers), body)
        return HttpResponse(receipt.body, status=receipt.status, content_type="application/json")


def webhook_view(receiver: Receiver, *, workers: bool = True) -> DjangoWebhookView:
    return DjangoWebhookView(receiver, workers=workers)
