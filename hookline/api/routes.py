"""The /api/v1 routes, one module per resource. Handlers check who may call, then call
the store; nothing else."""

from __future__ import annotations

from fastapi import APIRouter

from hookline.api import apps, deliveries, endpoints, events
from hookline.api.common import ERRORS

router = APIRouter(prefix="/api/v1", responses=ERRORS)
for module in (apps, endpoints, events, deliveries):
    router.include_router(module.router)
