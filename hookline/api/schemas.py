"""Request and response bodies of the REST API; they make up /openapi.json."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from hookline import rules
from hookline.api.types import (
    AnyEventType,
    AppName,
    BasicPassword,
    BasicUsername,
    BearerToken,
    EventData,
    EventFilter,
    EventId,
    EventType,
    EventTypes,
    HeaderChanges,
    Headers,
    RateBurst,
    RateLimit,
    TimeIn,
    Url,
    UserId,
    WholeNumber,
)


class DeliveryStatus(StrEnum):
    """Where a delivery is: on its way (retries included), or done either way."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class AttemptOutcome(StrEnum):
    """What one attempt came to: ``retry`` means another is scheduled; ``gone`` is a 410,
    which disables the endpoint."""

    delivered = "delivered"
    retry = "retry"
    failed = "failed"
    gone = "gone"


InFlight = Annotated[int, Field(ge=1, le=rules.IN_FLIGHT_MAX), WholeNumber]


def _epoch(value: Any) -> Any:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value


Time = Annotated[datetime, BeforeValidator(_epoch)]


class Strict(BaseModel):
    """A request body: unknown fields are refused, and numbers and booleans are taken
    only as themselves (``0`` is not ``false``, ``false`` is not ``0``), as the
    document states them."""

    model_config = ConfigDict(extra="forbid")


OPERATOR_URL_DESCRIPTION = (
    "Where hookline sends its own signed events about the app's endpoints (disabled, "
    "enabled again, recovering; deliveries failed for good), in the wire format of every "
    "delivery. Kept as the app's operational endpoint. null: none."
)


class AppIn(Strict):
    name: AppName
    operator_url: Url | None = Field(None, description=OPERATOR_URL_DESCRIPTION)


class AppPatch(Strict):
    """Only what is given changes; ``operator_url: null`` removes the operator URL (with
    the operational endpoint and its deliveries)."""

    name: AppName | None = None
    operator_url: Url | None = Field(None, description=OPERATOR_URL_DESCRIPTION)


class AppOut(BaseModel):
    id: str
    name: str
    verification_key: str = Field(description="The key that signs X-Selz-Signature now.")
    next_verification_key: str | None = Field(
        description="During a key rotation: the new key. Add it to your receiver now."
    )
    key_switch_at: Time | None = Field(
        description="During a key rotation: when X-Selz-Signature switches to the new key."
    )
    operator_url: str | None = Field(None, description=OPERATOR_URL_DESCRIPTION)
    created_at: Time


class AppCreated(AppOut):
    api_key: str = Field(description="Shown once; hookline keeps only a hash of it.")


#: How long both verification keys sign before the switch, unless the rotation says.
DEFAULT_GRACE_SECONDS = 86400.0


class KeyRotationIn(Strict):
    grace_seconds: float = Field(
        DEFAULT_GRACE_SECONDS,
        strict=True,
        ge=0,
        le=30 * 86400,
        description="How long both keys sign before X-Selz-Signature switches to the new one.",
    )


class InstallationIn(Strict):
    user_id: UserId


class InstallationOut(BaseModel):
    app_id: str
    user_id: str
    created_at: Time


HEADERS_DESCRIPTION = (
    "Headers sent with every delivery to this endpoint (an API key of the receiver, "
    "say). Values are sealed at rest and never shown back in full. Content-Type, "
    "Content-Length, Host and the signature headers are hookline's own and refused."
)


class BasicAuthIn(Strict):
    """HTTP basic auth."""

    type: Literal["basic"]
    username: BasicUsername
    password: BasicPassword


class BearerAuthIn(Strict):
    """A bearer token."""

    type: Literal["bearer"]
    token: BearerToken


AuthIn = Annotated[
    BasicAuthIn | BearerAuthIn,
    Field(
        discriminator="type",
        description="Writes the Authorization header (Basic ... or Bearer ...), which is "
        "then kept like any other header: give no Authorization in headers with it.",
    ),
]


class EndpointAuth(Strict):
    auth: AuthIn | None = None

    def authorization(self) -> dict[str, Any]:
        """``rules.with_authorization``'s arguments."""
        auth = self.auth
        return {
            "basic": (auth.username, auth.password) if isinstance(auth, BasicAuthIn) else None,
            "bearer": auth.token if isinstance(auth, BearerAuthIn) else None,
        }


CLIENT_CERT_DESCRIPTION = (
    "For endpoints that require mutual TLS: the client certificate hookline presents, in "
    "PEM (a chain: the endpoint's own first). Give client_key with it."
)
CLIENT_KEY_DESCRIPTION = (
    "The unencrypted PEM private key of client_cert. Sealed at rest; never shown back."
)


class EndpointIn(EndpointAuth):
    url: Url = Field(examples=["https://example.com/webhooks"])
    event_types: EventFilter
    timeout: float = Field(
        10.0,
        strict=True,
        gt=0,
        le=rules.TIMEOUT_MAX,
        description="Seconds to wait for an answer.",
    )
    ordered: bool = Field(
        True, strict=True, description="One delivery at a time per user, in event order."
    )
    max_in_flight: InFlight | None = None
    headers: Headers = Field(default_factory=dict, description=HEADERS_DESCRIPTION)
    client_cert: str | None = Field(
        None, max_length=rules.MAX_PEM, description=CLIENT_CERT_DESCRIPTION
    )
    client_key: str | None = Field(
        None, max_length=rules.MAX_PEM, description=CLIENT_KEY_DESCRIPTION
    )
    own_verification_key: bool = Field(
        False,
        strict=True,
        description="Sign this endpoint's deliveries with a key of its own instead of the "
        "app's (shown in verification_key).",
    )
    rate_limit: RateLimit | None = None
    rate_limit_burst: RateBurst = 1


class EndpointOut(BaseModel):
    id: str
    app_id: str
    url: str
    event_types: EventTypes
    timeout: float
    ordered: bool
    max_in_flight: int | None
    enabled: bool
    disabled_reason: str | None
    operational: bool = Field(
        False,
        description="The app's operational endpoint: its URL is the app's operator_url, "
        "and it gets hookline's own events only.",
    )
    headers: dict[str, str] = Field(
        description="The endpoint's headers, each value masked (its last four characters "
        "at most): they are never shown back in full."
    )
    client_cert: str | None = Field(
        description="The client certificate presented for mutual TLS (its key is never shown)."
    )
    verification_key: str | None = Field(
        description="The endpoint's own key that signs X-Selz-Signature now; null: the "
        "app's key signs."
    )
    next_verification_key: str | None = Field(
        description="During a rotation of the endpoint's key: the new key. Add it to the "
        "receiver now."
    )
    key_switch_at: Time | None = Field(
        description="During a rotation: when X-Selz-Signature switches to the new key."
    )
    rate_limit: float | None = Field(
        description="At most this many deliveries a second, across every worker; null: no limit."
    )
    rate_limit_burst: int = Field(
        description="How many deliveries may go at once after a quiet spell, under rate_limit."
    )
    pace: float = Field(
        description="Read-only. Seconds hookline now leaves between two requests to the "
        "endpoint because it answered 429 or 503 (0: not slowed down). It doubles with "
        "each such answer and shrinks back to 0 as answers are good again; with "
        "rate_limit, the stricter of the two holds."
    )
    paused_until: Time | None = Field(
        description="Read-only. No request goes to the endpoint before this moment (a "
        "Retry-After it asked for, or its pace); null: none is held back."
    )
    created_at: Time
    updated_at: Time


class EndpointPatch(EndpointAuth):
    """Only what is given changes. ``max_in_flight: null`` means the engine's default,
    ``rate_limit: null`` no rate limit.
    ``headers`` changes the headers it names only: a value sets one, null removes it."""

    url: Url | None = None
    event_types: EventFilter | None = None
    timeout: float | None = Field(None, strict=True, gt=0, le=rules.TIMEOUT_MAX)
    ordered: bool | None = Field(None, strict=True)
    max_in_flight: InFlight | None = None
    enabled: bool | None = Field(None, strict=True)
    headers: HeaderChanges | None = Field(None, description=HEADERS_DESCRIPTION)
    client_cert: str | None = Field(
        None,
        max_length=rules.MAX_PEM,
        description=CLIENT_CERT_DESCRIPTION + " null with client_key null removes both.",
    )
    client_key: str | None = Field(
        None, max_length=rules.MAX_PEM, description=CLIENT_KEY_DESCRIPTION
    )
    rate_limit: RateLimit | None = None
    rate_limit_burst: RateBurst | None = None


class RecoverIn(Strict):
    since: TimeIn = Field(description="Recover failed deliveries created at or after this time.")


class RecoverOut(BaseModel):
    recovered: int = Field(description="Failed deliveries made pending again.")


class TestNotificationIn(Strict):
    event_type: EventType
    user_id: UserId | None = Field(
        None, description="The user the sample event is for; a test user by default."
    )


class Percentiles(BaseModel):
    p50: float | None
    p90: float | None
    p99: float | None


class EndpointStats(BaseModel):
    endpoint_id: str
    since: Time
    attempts: int = Field(description="Attempts in the window (the latest 10,000 at most).")
    outcomes: dict[str, int]
    success_rate: float | None = Field(description="Delivered attempts / attempts.")
    latency_ms: Percentiles
    pending: int = Field(description="Deliveries waiting to be sent to this endpoint.")
    truncated: bool = Field(description="True when the window held more attempts than read.")


class EventIn(Strict):
    event_type: EventType
    user_id: UserId
    data: EventData
    event_id: EventId | None = None
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context of this event, carried to each delivery's "
        "`traceparent` header; overrides the request's `traceparent` header. An invalid "
        "one is ignored, as W3C Trace Context asks.",
    )


class EventBatchIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventOut(BaseModel):
    id: str
    event_type: EventType
    user_id: str
    created_at: Time
    duplicate: bool = Field(description="True when this event_id was already published.")
    deliveries: int = Field(description="Deliveries this publication created.")


class EventBatchOut(BaseModel):
    events: list[EventOut]


class EventDetail(BaseModel):
    id: str
    event_type: AnyEventType
    user_id: str
    data: dict[str, Any]
    created_at: Time
    traceparent: str | None = Field(
        default=None, description="The W3C trace context its deliveries carry, if any."
    )


class AttemptOut(BaseModel):
    attempted_at: Time
    outcome: AttemptOutcome
    status_code: int | None
    latency_ms: float | None
    response_excerpt: str | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    app_id: str
    endpoint_id: str
    user_id: str
    event_type: AnyEventType
    token: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made, all of them counted.")
    next_attempt_at: Time | None
    last_status_code: int | None
    last_error: str | None
    created_at: Time
    updated_at: Time
    attempt_log: list[AttemptOut] = Field(
        description="The first and the last attempts, oldest first (5 and 20 by default; "
        "all of them when there are no more)."
    )
    attempts_omitted: int = Field(
        description="Attempts made between the first and the last ones of attempt_log, "
        "counted in attempts but no longer kept."
    )


NEXT_CURSOR = "Pass as ?cursor= for the next page; null on the last page."


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class AppList(BaseModel):
    data: list[AppOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class InstallationList(BaseModel):
    data: list[InstallationOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class EndpointList(BaseModel):
    data: list[EndpointOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class HealthOut(BaseModel):
    status: str = Field(description="`ok` whenever the server answers.")
    version: str
    delivering: bool = Field(description="Whether this process runs a delivery engine.")
    in_flight: int = Field(description="Deliveries this process is sending now.")
