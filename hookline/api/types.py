"""The input rules of ``hookline.rules`` as pydantic types, for the API's bodies and
parameters.

Each type validates with the rule's own check (so the API says what the dashboard and
the CLI say) and states the rule in the OpenAPI document with ``WithJsonSchema``.
Event types are one named component, ``EventType``, that every use refers to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from hookline import rules
from hookline.events import (
    EVENT_DESCRIPTIONS,
    EVENT_TYPES,
    OPERATIONAL_DESCRIPTIONS,
    OPERATIONAL_EVENT_TYPES,
    WILDCARD,
    check_receivable_type,
)
from hookline.exceptions import ValidationError

T = TypeVar("T")

EVENT_TYPE_REF = {"$ref": "#/components/schemas/EventType"}
_JSON_VALUE = {"$ref": "#/components/schemas/JsonValue"}
_JSON_OBJECT = {"$ref": "#/components/schemas/JsonObject"}
_JSON_SCALARS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": "integer", "minimum": rules.INT64_MIN, "maximum": rules.INT64_MAX},
    {"type": "number", "not": {"type": "integer"}},
]

#: Components the document holds besides the models (``hookline.api.app`` adds them).
COMPONENTS: dict[str, dict[str, Any]] = {
    "EventType": {
        "title": "EventType",
        "type": "string",
        "enum": list(EVENT_TYPES),
        "description": "One of the 19 Selz event types: "
        + "; ".join(f"`{t}`: {d.lower()}" for t, d in EVENT_DESCRIPTIONS.items()),
    },
    "OperationalEventType": {
        "title": "OperationalEventType",
        "type": "string",
        "enum": list(OPERATIONAL_EVENT_TYPES),
        "description": "hookline's own events about an app's endpoints, sent to the app's "
        "operator_url (never published, never sent to other endpoints): "
        + "; ".join(f"`{t}`: {d}" for t, d in OPERATIONAL_DESCRIPTIONS.items()),
    },
    "AllEventTypes": {
        "title": "AllEventTypes",
        "type": "string",
        "enum": [WILDCARD],
        "description": f"`{WILDCARD}`, alone in a list: every event type.",
    },
    # Event data: any JSON object whose integers fit in 64 bits. JSON Schema cannot
    # state the depth limit; the description of the data does. The recursion goes
    # through an object schema (JsonObject) because client generators make a class of
    # one and can refer to it before it is complete, but cannot do that with a union
    # (openapi-python-client drops every operation that uses a self-referring union).
    # For the same reason an array inside an array is stated as any JSON; the server
    # holds it to the same rules as the rest.
    "JsonValue": {
        "anyOf": [
            *_JSON_SCALARS,
            {
                "type": "array",
                "items": {"anyOf": [*_JSON_SCALARS, _JSON_OBJECT, {"type": "array", "items": {}}]},
            },
            _JSON_OBJECT,
        ],
    },
    "JsonObject": {"type": "object", "additionalProperties": _JSON_VALUE},
}


def _checked(check: Callable[[T], T]) -> Callable[[T], T]:
    """A rule's check as a pydantic validator, keeping the rule's message as it is."""

    def validate(value: T) -> T:
        try:
            return check(value)
        except ValidationError as exc:
            raise PydanticCustomError("rule", exc.message) from None

    return validate


# Written out rather than built by a function, so that type checkers see type aliases.
AppName = Annotated[
    str,
    AfterValidator(_checked(rules.APP_NAME.check)),
    WithJsonSchema(rules.APP_NAME.json_schema()),
]
UserId = Annotated[
    str,
    AfterValidator(_checked(rules.USER_ID.check)),
    WithJsonSchema(rules.USER_ID.json_schema()),
]
EventId = Annotated[
    str,
    AfterValidator(_checked(rules.EVENT_ID.check)),
    WithJsonSchema(rules.EVENT_ID.json_schema()),
]


def _headers_schema(value: dict[str, Any]) -> dict[str, Any]:
    # What a schema can state; reserved names, names repeated in another case and the
    # size of all of them together are checked by ``rules.check_headers`` alone.
    return {
        "type": "object",
        "maxProperties": rules.MAX_HEADERS,
        "propertyNames": rules.HEADER_NAME.json_schema(),
        "additionalProperties": value,
    }


#: An endpoint's headers as given at registration, and as changed by a PATCH (where
#: null removes one).
Headers = Annotated[
    dict[str, str], WithJsonSchema(_headers_schema(rules.HEADER_VALUE.json_schema()))
]
HeaderChanges = Annotated[
    dict[str, str | None],
    WithJsonSchema(
        _headers_schema({"anyOf": [rules.HEADER_VALUE.json_schema(), {"type": "null"}]})
    ),
]
BearerToken = Annotated[
    str,
    AfterValidator(_checked(rules.BEARER_TOKEN.check)),
    WithJsonSchema(rules.BEARER_TOKEN.json_schema()),
]
BasicUsername = Annotated[
    str,
    AfterValidator(_checked(rules.BASIC_USERNAME.check)),
    WithJsonSchema(rules.BASIC_USERNAME.json_schema()),
]
BasicPassword = Annotated[
    str,
    AfterValidator(_checked(rules.BASIC_PASSWORD.check)),
    WithJsonSchema(rules.BASIC_PASSWORD.json_schema()),
]
#: An endpoint's rate limit, deliveries a second; JSON numbers only (not strings, not
#: booleans), as the document states.
RateLimit = Annotated[
    float,
    Field(strict=True),
    AfterValidator(_checked(rules.check_rate_limit)),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": rules.RATE_LIMIT_MIN,
            "maximum": rules.RATE_LIMIT_MAX,
            "description": "At most this many deliveries a second to the endpoint, across "
            "every worker (0.5: one every 2 s); null: no limit. "
            + rules.RATE_LIMIT_MESSAGE[0].upper()
            + rules.RATE_LIMIT_MESSAGE[1:]
            + ".",
        }
    ),
]
#: How many deliveries a rate-limited endpoint takes at once after a quiet spell.
RateBurst = Annotated[
    int,
    BeforeValidator(lambda value: _whole(value)),  # defined below
    AfterValidator(_checked(rules.check_rate_burst)),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": rules.RATE_BURST_MAX,
            "description": "With rate_limit: how many deliveries may go at once after a "
            "quiet spell (1 by default: evenly spaced). Any one second then holds at most "
            "rate_limit + rate_limit_burst - 1 of them.",
        }
    ),
]
#: An endpoint URL. The route checks it with ``rules.check_url``, address policy and
#: all (the policy depends on the operator's settings), like every other front door.
Url = Annotated[str, WithJsonSchema(rules.URL.json_schema())]


class _Component:
    """A string rule that the document states once, as a named component, and refers to
    wherever it is used (pydantic makes a definition of a core schema with a ``ref``)."""

    def __init__(self, name: str, check: Callable[[str], str]) -> None:
        self.name = name
        self.check = _checked(check)

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self.check,
            core_schema.str_schema(),
            ref=self.name,
            metadata={"pydantic_js_functions": [self._json_schema]},
        )

    def _json_schema(
        self, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return COMPONENTS[self.name]


EventType = Annotated[str, _Component("EventType", rules.check_event_type)]


def _check_operational(event_type: str) -> str:
    if event_type not in OPERATIONAL_EVENT_TYPES:
        check_receivable_type(event_type)  # names them all
        raise ValidationError(f"{event_type!r} is not one of hookline's operational types")
    return event_type


OperationalEventType = Annotated[str, _Component("OperationalEventType", _check_operational)]
#: The type of any event a delivery carries: a Selz one, or one of hookline's own.
AnyEventType = EventType | OperationalEventType

_EVENT_FILTER_SCHEMA = WithJsonSchema(
    {
        "description": f'1 to {len(EVENT_TYPES)} event types, or `["{WILDCARD}"]` for all.',
        "oneOf": [
            {
                "type": "array",
                "items": EVENT_TYPE_REF,
                "minItems": 1,
                "maxItems": len(EVENT_TYPES),
            },
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/AllEventTypes"},
                "minItems": 1,
                "maxItems": 1,
            },
        ],
    }
)
#: The event types an endpoint asks for, as a request gives them (checked).
EventFilter = Annotated[
    list[str], AfterValidator(_checked(rules.check_event_filter)), _EVENT_FILTER_SCHEMA
]
#: The same in an answer (as stored): the app's operational endpoint has hookline's own.
EventTypes = Annotated[
    list[str],
    WithJsonSchema(
        {
            "description": _EVENT_FILTER_SCHEMA.json_schema["description"]
            + " The app's operational endpoint: hookline's own types.",
            "oneOf": [
                *_EVENT_FILTER_SCHEMA.json_schema["oneOf"],
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/OperationalEventType"},
                    "minItems": 1,
                    "maxItems": len(OPERATIONAL_EVENT_TYPES),
                },
            ],
        }
    ),
]

EventData = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": _JSON_VALUE,
            "description": "The object that changed. Integers must fit in 64 bits "
            f"({rules.INT64_MIN} to {rules.INT64_MAX}); nesting is limited to "
            f"{rules.MAX_DATA_DEPTH} levels.",
        }
    ),
]


def _whole(value: Any) -> Any:
    """``44.0`` is the integer 44 in JSON (and in JSON Schema); ``44.5`` and ``"44"`` are
    not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a whole number")
    return value


#: A whole number in a body, taken only as a JSON number: ``Annotated[int, Field(...),
#: WholeNumber]`` (the constraints first, so that the document shows them).
WholeNumber = BeforeValidator(_whole)


def _epoch_text(value: Any) -> Any:
    """In a query parameter epoch seconds arrive as text."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    return _epoch(value)


def _epoch(value: Any) -> Any:
    """Epoch seconds (a number) or an ISO 8601 string, within the rule's range."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        try:
            seconds = rules.check_time(float(value))
        except (ValidationError, OverflowError):
            raise PydanticCustomError(
                "rule", "a time is between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
            ) from None
        return datetime.fromtimestamp(seconds, UTC)
    return value


_TIME = [
    {"type": "number", "minimum": 0, "maximum": rules.TIME_MAX},
    {"type": "string", "format": "date-time"},
]
_TIME_DESCRIPTION = "Epoch seconds (1970 to 9999) or an ISO 8601 date-time."
#: A moment in a request body: epoch seconds or ISO 8601.
TimeIn = Annotated[
    datetime,
    BeforeValidator(_epoch),
    WithJsonSchema({"anyOf": _TIME, "description": _TIME_DESCRIPTION}),
]
#: The same as an optional query parameter.
TimeQuery = Annotated[
    datetime | None,
    BeforeValidator(_epoch_text),
    WithJsonSchema({"anyOf": [*_TIME, {"type": "null"}], "description": _TIME_DESCRIPTION}),
]
