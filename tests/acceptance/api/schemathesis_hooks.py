"""schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

A page cursor is opaque: only one a list gave is valid, which no schema can state, so a
made-up one with the documented shape is still refused (422). Requests meant to be
valid are sent without ``cursor``; the paging tests follow real cursors, and invalid
requests keep theirs (they must be refused, and are).

An endpoint's headers are partly beyond a schema too: a reserved name (Content-Type, the
signature headers, in any case), a name repeated in another case, more bytes together
than allowed, and a PATCH that would bring the stored ones past the limits are refused
(422). Valid requests leave out headers the rules refuse, and PATCHes send none.
"""

from __future__ import annotations

from typing import Any

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
