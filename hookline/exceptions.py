"""Every error hookline raises on purpose derives from one root.

    HooklineError
    ├── ConfigError              bad settings, URLs or options
    ├── ValidationError          input that breaks a rule (unknown event type, bad URL, ...)
    │   ├── ForbiddenAddress     a target that resolves to a private or reserved address
    │   ├── InvalidJson          a body that is not JSON, or JSON hookline does not keep (NaN, ...)
    │   │   └── BodyRefused      the same, raised as FastAPI's HTTPException (hookline.api.errors)
    │   └── TooLarge             more than a configured bound at once (deliveries per publish)
    │       └── BodyTooLarge     a request body over its route's limit (413 before it is read)
    ├── Unauthorized             no token, or one that is neither the admin token nor an app's
    │                            key; on the dashboard, no valid session (to the sign-in form)
    ├── Forbidden                the token may not do this (another app's key, an admin route)
    ├── NotFound                 a record that does not exist (or is not yours)
    ├── Conflict                 a record that already exists, or a state that forbids the change
    │   ├── LimitReached         one more would pass a configured bound (endpoints per app)
    │   ├── EventConflict        an event_id already published with another type, user or data
    │   └── LeaseLost            a receiver worker's lane lease ran out and another took the lane
    ├── RateLimited              too many requests (or failed sign-ins); retry after a while
    ├── Unavailable              the API did not answer: a 503, or no connection; retry later
    │   └── Timeout              no answer within the client's timeout
    ├── RequestRefused           the HTTP server stops reading a request past its read limits
    ├── StorageError             the database failed or is unreachable
    │   └── StorageUnavailable   the database is gone for now; try again later
    ├── NotInTransaction         hookline.publish on a connection outside a transaction
    ├── DeliveryError            a webhook could not be sent
    │   └── ForbiddenTarget      the address policy refuses the connection (an OSError too)
    └── SignatureError           a received webhook is not genuine
        ├── BadSignature         no configured key produces the signature
        ├── StaleTimestamp       the timestamp is outside the allowed window
        ├── ReplayedToken        a token already accepted came back with another body
        └── MalformedWebhook     the body is not a valid envelope

The API maps them to HTTP status codes in one place (``hookline.api.errors``), and
``hookline.Client`` maps the answers back (``hookline.client._http.error_for``): an error
the client raises carries the answer's HTTP ``status`` and the ``code`` of its body.
"""

from __future__ import annotations

import errno


class HooklineError(Exception):
    """Root of every error hookline raises on purpose."""

    code = "error"
    #: The HTTP status of the API's answer, on errors ``hookline.Client`` raises.
    status: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HooklineError):
    code = "config_error"


class ValidationError(HooklineError):
    code = "invalid_request"


class ForbiddenAddress(ValidationError):
    code = "forbidden_address"


class InvalidJson(ValidationError):
    """A body that is JSON text but breaks a rule (``malformed`` when it is not JSON)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


class TooLarge(ValidationError):
    code = "too_large"


class BodyTooLarge(TooLarge):
    """Raised while a body is read, past its route's limit (``hookline.api.limits``)."""

    code = "body_too_large"


class Unauthorized(HooklineError):
    code = "unauthorized"


class Forbidden(HooklineError):
    code = "forbidden"


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


class EventConflict(Conflict):
    """The same ``event_id`` again, with another type, user or data: not a duplicate but
    another event, which needs an id of its own."""

    code = "event_conflict"


class LeaseLost(Conflict):
    """This receiver worker no longer owns the lane: its lease ran out and another worker
    took it (``hookline.receiver.workers`` gives the lane up)."""

    code = "lease_lost"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"the lease of user {user_id!r}'s lane ran out and another took it")
        self.user_id = user_id


class Unavailable(HooklineError):
    """The API could not answer now (a 503, a refused or dropped connection): the same
    request may succeed later. ``retry_after`` is the server's hint in seconds, if any;
    ``sent`` is False when the request surely never reached the server (a refused
    connection), so that sending it again is safe whatever it was."""

    code = "unavailable"

    def __init__(
        self, message: str, retry_after: float | None = None, *, sent: bool = True
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.sent = sent


class Timeout(Unavailable):
    code = "timeout"


class RequestRefused(HooklineError):
    """The HTTP server stops reading a request (``hookline.serving.protocol``): it answers
    ``status`` (431 for headers past the limits, 408 for headers too slow) with the
    message, or with ``status`` None just closes the connection."""

    code = "request_refused"

    def __init__(self, status: int | None, message: str = "") -> None:
        super().__init__(message)
        self.status = status


class StorageError(HooklineError):
    code = "storage_error"


class StorageUnavailable(StorageError):
    code = "storage_unavailable"


class NotInTransaction(HooklineError):
    """``hookline.publish`` was given a connection outside a transaction: the event would
    be stored whatever became of the platform's own writes, which is what publishing
    inside the transaction is for. Nothing was written."""

    code = "not_in_transaction"


class DeliveryError(HooklineError):
    code = "delivery_error"


class ForbiddenTarget(OSError, DeliveryError):
    """A connection the address policy (``hookline.addresses``) refuses at send time.

    An ``OSError`` with an errno as well, so the HTTP client reports it as a failed
    connection whose ``strerror`` is this message.
    """

    code = "forbidden_target"

    def __init__(self, address: str, reason: str) -> None:
        message = f"refused by the address policy: {address} is {reason}"
        # OSError's __init__ (an errno and its text) and not HooklineError's, which
        # OSError's does not call on to: the message is set here.
        OSError.__init__(self, errno.EACCES, message)
        self.message = message
        self.address = address
        self.reason = reason


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
