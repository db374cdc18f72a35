"""The REST API at /api/v1, with /healthz, /metrics and its OpenAPI document.

``app.create_api`` builds it; ``hookline.server`` gives it the store and the engine and
mounts the dashboard beside it. The routes are one module per resource (``apps``,
``endpoints``, ``events``, ``deliveries``); what they share is in ``common``, and what
the dashboard shares with them in ``hookline.front``.
"""
