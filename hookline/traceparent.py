"""W3C trace context: the ``traceparent`` header, checked and written in one form.

A ``traceparent`` given at publish is kept with the event and carried to every delivery
of it, and a receiver keeps the one it was sent with the webhook; so both sides read it
here. W3C Trace Context (level 1) says what a valid one is, and that an invalid one is
ignored, never refused: ``parse`` returns None for it and the caller goes on without.

Only version ``00`` exists; a later version is read for its first four fields (as the
recommendation asks) and passed on as ``00``, the one version this code writes.
"""

from __future__ import annotations

import re

HEADER = "traceparent"

_V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", re.ASCII)
# A later version: the same four fields, then nothing or a dash and more.
_LATER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse(value: str | None) -> str | None:
    """``value`` as a version-00 ``traceparent``, or None when it is not a valid one."""
    if not value or len(value) > 512:
        return None
    value = value.strip(" \t")
    match = _V00.fullmatch(value)
    if match is None:
        later = _LATER.fullmatch(value)
        if later is None or later.group(1) in ("00", "ff"):
            return None
        match = later
        trace_id, span_id, flags = later.group(2, 3, 4)
    else:
        trace_id, span_id, flags = match.group(1, 2, 3)
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    # Version 00 defines one flag (sampled); the others are not passed on.
    return f"00-{trace_id}-{span_id}-{int(flags, 16) & 1:02x}"


def parse_headers(values: list[str]) -> str | None:
    """The ``traceparent`` of a request given all its ``traceparent`` header values: two
    or more make it invalid (W3C allows ignoring them), as does a bad one."""
    return parse(values[0]) if len(values) == 1 else None


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


__all__ = ["HEADER", "format_traceparent", "parse", "parse_headers"]
