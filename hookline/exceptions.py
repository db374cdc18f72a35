"""Every error hookline raises on purpose derives from one root.

    HooklineError
    ├── ConfigError              bad settings, URLs or options
    ├── ValidationError          input that breaks a rule (unknown event type, bad URL, ...)
    │   ├── ForbiddenAddress     a target that resolves to a private or reserved address
    │   └── TooLarge             more than a configured bound at once (deliveries per publish)
    ├── NotFound                 a record that does not exist (or is not yours)
    ├── Conflict                 a record that already exists
    │   └── LimitReached         one more would pass a configured bound (endpoints per app)
    ├── RateLimited              too many requests (or failed sign-ins); retry after a while
    ├── StorageError             the database failed or is unreachable
    │   └── StorageUnavailable   the database is gone for now; try again later
    ├── DeliveryError            a webhook could not be sent (network, timeout, status)
    └── SignatureError           a received webhook is not genuine
        ├── BadSignature         no configured key produces the signature
        ├── StaleTimestamp       the timestamp is outside the allowed window
        ├── ReplayedToken        a token already accepted came back with another body
        └── MalformedWebhook     the body is not a valid envelope

The API maps them to HTTP status codes in one place (``hookline.api.errors``).
"""

from __future__ import annotations


class HooklineError(Exception):
    """Root of every error hookline raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HooklineError):
    code = "config_error"


class ValidationError(HooklineError):
    code = "invalid_request"


class ForbiddenAddress(ValidationError):
    code = "forbidden_address"


class TooLarge(ValidationError):
    code = "too_large"


class NotFound(HooklineError):
    code = "not_found"


class Conflict(HooklineError):
    code = "conflict"


class RateLimited(HooklineError):
    """Over a rate limit; ``retry_after`` says in how many seconds to try again."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LimitReached(Conflict):
    code = "limit_reached"


class StorageError(HooklineError):
    code = "storage_error"


class StorageUnavailable(StorageError):
    code = "storage_unavailable"


class DeliveryError(HooklineError):
    code = "delivery_error"


class SignatureError(HooklineError):
    code = "invalid_signature"


class BadSignature(SignatureError):
    code = "bad_signature"


class StaleTimestamp(SignatureError):
    code = "stale_timestamp"


class ReplayedToken(SignatureError):
    code = "replayed_token"


class MalformedWebhook(SignatureError):
    code = "malformed_webhook"
