"""X-Ray trace headers (`Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=0|1`) as
OpenTelemetry ids: the Root's 32 hex digits are the trace id, Parent the parent span id.

What Lambda does with an invocation's X-Amzn-Trace-Id: a header without a valid Root is
replaced by a new trace; the function sees the Root (and Sampled) it was called with, and
as Parent the id of Lambda's own segment for the invocation, so whatever the function
traces is a child of the invocation. Corral's invocation span (OTLP) is that segment: its
id is the Parent the function sees, its parent the caller's Parent. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from corral.model.invocation import new_span_id, new_trace_root

_ROOT = re.compile(r"(?:^|;)\s*Root=1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})(?:;|$)")
_PARENT = re.compile(r"(?:^|;)\s*Parent=([0-9a-fA-F]{16})(?:;|$)")
_SAMPLED = re.compile(r"(?:^|;)\s*Sampled=([01])(?:;|$)")


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


def _sampled(header: str) -> str:
    sampled = _SAMPLED.search(header)
    return sampled.group(1) if sampled else "0"


def _root(trace_id: str) -> str:
    return f"1-{trace_id[:8]}-{trace_id[8:]}"


def caller_trace_header(header: str | None) -> str:
    """The trace an invocation belongs to, as a clean header: `Root=...[;Parent=<the
    caller's span>];Sampled=0|1` rebuilt from a valid `header` (nothing else of it is
    kept, whatever its length), or a new `Root=...;Sampled=0` for a missing or invalid
    one. Stored with a queued event, so that every attempt is in one trace."""
    context = parse_trace_header(header) if header else None
    if context is None:
        return f"Root={new_trace_root()};Sampled=0"
    parent = f";Parent={context.parent_span_id}" if context.parent_span_id else ""
    return f"Root={_root(context.trace_id)}{parent};Sampled={_sampled(header or '')}"


def invocation_trace(header: str | None) -> tuple[str, str | None]:
    """The X-Amzn-Trace-Id the function sees for an invocation called with `header`: its
    Root and Sampled (a new trace if it has no valid Root), and as Parent a new span id,
    the invocation's own; and the caller's span id (its Parent, None if it named none)."""
    context = parse_trace_header(header) if header else None
    if context is None:
        return f"Root={new_trace_root()};Parent={new_span_id()};Sampled=0", None
    root, sampled = _root(context.trace_id), _sampled(header or "")
    return f"Root={root};Parent={new_span_id()};Sampled={sampled}", context.parent_span_id
