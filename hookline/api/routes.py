"""The /api/v1 routes, one module per resource. Handlers check who may call, then call
the store; nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.security import HTTPBearer

from hookline.api import apps, deliveries, endpoints, events
from hookline.api.common import ERRORS

#: States the bearer scheme in the OpenAPI document; ``hookline.api.auth`` checks it.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The admin token, or an app's API key (that app's routes only).",
)

router = APIRouter(prefix="/api/v1", responses=ERRORS, dependencies=[Depends(BEARER)])
for module in (apps, endpoints, events, deliveries):
    router.include_router(module.router)
