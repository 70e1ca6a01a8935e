"""X-Ray trace headers (`Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=0|1`) as
OpenTelemetry ids: the Root's 32 hex digits are the trace id, Parent the parent span id.
Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROOT = re.compile(r"(?:^|;)\s*Root=1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})(?:;|$)")
_PARENT = re.compile(r"(?:^|;)\s*Parent=([0-9a-fA-F]{16})(?:;|$)")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex digits
    parent_span_id: str | None  # 16 lowercase hex digits


def parse_trace_header(header: str) -> TraceContext | None:
    """The ids in an X-Amzn-Trace-Id value; None if it holds no valid Root."""
    root = _ROOT.search(header)
    if root is None:
        return None
    parent = _PARENT.search(header)
    return TraceContext(
        (root.group(1) + root.group(2)).lower(), parent.group(1).lower() if parent else None
    )
