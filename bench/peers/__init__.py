"""What hookline is measured against, and the sink everything sends to.

- ``sink``: the local receiver that counts arrivals (run as its own process);
- ``bare_sender``: the ceiling, a bare aiohttp loop with nothing stored;
- ``celery_sender``: Celery + requests, how webhooks are usually sent from Python.

None of them imports hookline: they build the wire format from SPEC.md (``_wire``).
"""
