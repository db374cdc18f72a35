"""The servers the receiver benchmark compares, each started in a process of its own.

- ``bare_app``: an ASGI app that answers 200 and does nothing else, under the same uvicorn
  (uvloop, httptools) that ``hookline receive`` uses: the ceiling of this HTTP stack.
- ``receiver``: a hookline ``Receiver`` with a no-op handler, served by ``hookline receive``.
  Its workers run during the benchmark, as they would in production.
- ``flask_app``: the usual Python way: a Flask view under gunicorn that verifies the
  signature (with hookline's own ``Verifier``, so both do the same crypto) and enqueues a
  Celery task to Redis. No duplicate detection, and Redis's default persistence: it does
  less than hookline does.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from flask import Flask, request

from hookline.exceptions import SignatureError
from hookline.receiver import Event, Receiver
from hookline.signing import Verifier

KEY = "bench-verification-key"
BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/14")
QUEUE = "hookline-bench-receiver"  # our own queue, so a purge touches nothing else

# -- the ceiling ---------------------------------------------------------------------------


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as any real server must
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


# -- hookline --------------------------------------------------------------------------------

receiver = Receiver(keys=[KEY])


@receiver.on("*")
async def handled(event: Event) -> None:
    """No work: the benchmark measures acknowledging, and the workers still mark each done."""


# -- Flask + Celery ------------------------------------------------------------------------------

celery_app = Celery("bench_receiver_peer", broker=BROKER)
celery_app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)


@celery_app.task(name="bench.handle_webhook")  # type: ignore[untyped-decorator]
def handle_webhook(body: str) -> None:
    """Where the app's work would go; the benchmark runs no Celery worker."""


flask_app = Flask(__name__)
VERIFIER = Verifier((KEY,))


@flask_app.post("/webhooks")
def webhook() -> Any:
    body = request.get_data()
    try:
        VERIFIER.verify(request.headers, body)
    except SignatureError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}, 400
    handle_webhook.delay(body.decode())
    return {"status": "accepted"}
