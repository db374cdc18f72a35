"""The receiver as a Django view, in a one-file Django project.

In a real project the ``urlpatterns`` line goes into your ``urls.py``.
"""

from __future__ import annotations

from django.urls import path

from examples.receiver.basic import receiver
from hookline.receiver.django import webhook_view

urlpatterns = [path("webhooks/selz", webhook_view(receiver))]
