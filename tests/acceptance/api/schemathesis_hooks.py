"""schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

A page cursor is opaque: only one a list gave is valid, which no schema can state, so a
made-up one with the documented shape is still refused (422). Requests meant to be
valid are sent without ``cursor``; the paging tests follow real cursors, and invalid
requests keep theirs (they must be refused, and are).

An endpoint's headers are partly beyond a schema too: a reserved name (Content-Type, the
signature headers, in any case), a name repeated in another case, more bytes together
than allowed, and a PATCH that would bring the stored ones past the limits are refused
(422). Valid requests leave out headers the rules refuse, and PATCHes send none; nor
do they send a client certificate and key (any string is no PEM certificate).

schemathesis judges an "invalid" body by the mutation it made, and a mutation inside an
``anyOf`` (a boolean in event data made an array, an optional ``event_id`` made null)
can leave the body valid all the same. A "schema-violating request accepted" failure
stands only if the body really breaks the document (checked with jsonschema-rs, which
schemathesis itself uses). A "schema-valid request rejected" for a number beyond 64 bits
is where the document states event data loosely on purpose (arrays within arrays).
Nor can a schema say which endpoint is an app's operational one (made by an app's
``operator_url``): a PATCH of its URL or event types is refused (422) whatever the body.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import schemathesis

from hookline import rules
from hookline.exceptions import ValidationError


@schemathesis.hook
def before_call(_context: Any, case: Any, **_kwargs: Any) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if case.query:
        case.query.pop("cursor", None)
    _keep_valid_headers(case)


def _keep_valid_headers(case: Any) -> None:
    body = case.body
    if isinstance(body, dict):
        # A certificate and its private key: no schema can say which strings are those.
        body.pop("client_cert", None)
        body.pop("client_key", None)
    if not isinstance(body, dict) or not isinstance(body.get("headers"), dict):
        return
    if case.method.upper() == "PATCH":
        body.pop("headers")
        return
    auth = body.get("auth")
    try:
        rules.with_authorization(
            rules.check_headers(body["headers"]),
            bearer=auth.get("token", "-") if isinstance(auth, dict) else None,
        )
    except ValidationError:
        body.pop("headers")


@schemathesis.hook
def filter_failure(_context: Any, failure: Any, case: Any, response: Any) -> bool:
    code = getattr(failure, "code", None)
    if code == "ST201" and isinstance(case.body, dict | list):
        return not _body_schema(case).is_valid(case.body)
    if code == "ST202" and response.status_code == 422:
        # Inside an array within an array the document allows any JSON (see
        # docs/operations.md, Input rules); the server still holds numbers to 64 bits.
        # An app's operational endpoint keeps the URL and types its app gives it.
        return not any(rule in response.text for rule in _NUMBER_RULES + _OPERATIONAL)
    return True


_NUMBER_RULES = ("is a whole number beyond 64 bits", "does not fit in a 64-bit integer")
_OPERATIONAL = ("the app's operational endpoint",)


def _body_schema(case: Any) -> Any:
    """The operation's JSON body schema, its references resolved in the whole document."""
    path = case.operation.path.replace("~", "~0").replace("/", "~1")
    method = case.method.lower()
    document = dict(case.operation.schema.raw_schema)
    document["$ref"] = f"#/paths/{path}/{method}/requestBody/content/application~1json/schema"
    return jsonschema_rs.Draft202012Validator(document)
