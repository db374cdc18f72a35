"""Request and response bodies of the REST API; they make up /openapi.json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from hookline.events import EVENT_TYPES, check_event_filter

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
DeliveryStatus = Literal["pending", "delivered", "failed"]
Identifier = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


def _epoch(value: Any) -> Any:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value


Time = Annotated[datetime, BeforeValidator(_epoch)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class AppOut(BaseModel):
    id: str
    name: str
    verification_key: str
    created_at: Time


class AppCreated(AppOut):
    api_key: str = Field(description="Shown once; hookline keeps only a hash of it.")


class InstallationIn(Strict):
    user_id: Identifier


class InstallationOut(BaseModel):
    app_id: str
    user_id: str
    created_at: Time


class EndpointIn(Strict):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/webhooks"])
    event_types: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES))
    timeout: float = Field(10.0, gt=0, le=60, description="Seconds to wait for an answer.")
    ordered: bool = Field(True, description="One delivery at a time per user, in event order.")
    max_in_flight: int | None = Field(None, ge=1, le=1000)

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return check_event_filter(value)


class EndpointOut(BaseModel):
    id: str
    app_id: str
    url: str
    event_types: list[str]
    timeout: float
    ordered: bool
    max_in_flight: int | None
    enabled: bool
    disabled_reason: str | None
    created_at: Time
    updated_at: Time


class EventIn(Strict):
    event_type: EventType
    user_id: Identifier
    data: dict[str, Any]
    event_id: Identifier | None = None


class EventBatchIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventOut(BaseModel):
    id: str
    event_type: str
    user_id: str
    created_at: Time
    duplicate: bool = Field(description="True when this event_id was already published.")
    deliveries: int = Field(description="Deliveries this publication created.")


class EventBatchOut(BaseModel):
    events: list[EventOut]


class AttemptOut(BaseModel):
    attempted_at: Time
    outcome: str
    status_code: int | None
    latency_ms: float | None
    response_excerpt: str | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    endpoint_id: str
    user_id: str
    event_type: str
    token: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Time | None
    last_status_code: int | None
    last_error: str | None
    created_at: Time
    updated_at: Time
    attempt_log: list[AttemptOut]


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
