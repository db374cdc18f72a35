"""schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

A page cursor is opaque: only one a list gave is valid, which no schema can state, so a
made-up one with the documented shape is still refused (422). Requests meant to be
valid are sent without ``cursor``; the paging tests follow real cursors, and invalid
requests keep theirs (they must be refused, and are).
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def before_call(_context: Any, case: Any, **_kwargs: Any) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive and case.query:
        case.query.pop("cursor", None)
