"""The receiver inside a FastAPI app: ``uvicorn examples.receiver.fastapi_app:app``.

The endpoint is added to your app's routes; the receiver's workers run in its lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from examples.receiver.basic import receiver
from hookline.receiver import webhook_endpoint


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with receiver.running():
        yield


app = FastAPI(lifespan=lifespan)
app.add_route("/webhooks/selz", webhook_endpoint(receiver), methods=["POST"])


@app.get("/")
async def index() -> dict[str, str]:
    return {"app": "shop"}
