"""OpenTelemetry export of invocation spans over OTLP/HTTP (JSON encoding), when
`corral serve --otlp-endpoint URL` is given: one SERVER span per finished invocation,
in the trace of its X-Amzn-Trace-Id (Root -> trace id; the span's id is the Parent the
function saw, so the function's own spans are its children; its parent is the caller's
Parent), posted in
batches to `<URL>/v1/traces` by a background task. The invoke path only appends a dict.
Spans are dropped (and counted in a log line) when the collector is down or slow and
more than MAX_PENDING wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

import httpx

from corral.model.arn import Scope
from corral.model.function import FunctionConfig
from corral.model.invocation import InvocationResult
from corral.model.trace import parse_trace_header

log = logging.getLogger("corral.tracing")

BATCH_MAX = 512
MAX_PENDING = 10_000
EXPORT_INTERVAL_S = 1.0
EXPORT_TIMEOUT_S = 5.0
_SPAN_KIND_SERVER = 2
_STATUS_ERROR = 2


def _attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


class SpanExporter:
    """An InvocationObserver that exports spans; run `run()` as a background task."""

    def __init__(self, endpoint: str, scope: Scope) -> None:
        self.url = endpoint.rstrip("/") + "/v1/traces"
        self.scope = scope
        self._pending: list[dict] = []
        self._dropped = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._resource = {
            "attributes": [
                _attr("service.name", "corral"),
                _attr("cloud.region", scope.region),
                _attr("cloud.account.id", scope.account),
            ]
        }

    # ---- InvocationObserver ---------------------------------------------------------

    def completed(
        self, config: FunctionConfig, kind: str, request_id: str, result: InvocationResult
    ) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        end_ns = time.time_ns()
        elapsed_ms = result.duration_ms + (result.init_duration_ms or 0.0)
        # The function saw this span's id as its Parent: its own spans are children.
        context = parse_trace_header(result.trace_id) if result.trace_id else None
        span_id = context.parent_span_id if context else None
        span = {
            "traceId": context.trace_id if context else os.urandom(16).hex(),
            "spanId": span_id or os.urandom(8).hex(),
            "name": config.name,
            "kind": _SPAN_KIND_SERVER,
            "startTimeUnixNano": str(end_ns - int(elapsed_ms * 1_000_000)),
            "endTimeUnixNano": str(end_ns),
            "attributes": [
                _attr("faas.invocation_id", request_id),
                _attr("faas.name", config.name),
                _attr("faas.version", config.version),
                _attr("faas.coldstart", result.init_duration_ms is not None),
                _attr("faas.max_memory", config.memory_mb * 1024 * 1024),
                _attr("cloud.resource_id", self.scope.function_arn(config.name)),
                _attr("corral.invocation_type", kind),
            ],
            "status": {},
        }
        if result.caller_span_id:
            span["parentSpanId"] = result.caller_span_id
        if result.function_error:
            span["status"] = {"code": _STATUS_ERROR, "message": result.function_error}
        self._pending.append(span)
        if len(self._pending) >= BATCH_MAX:
            self._wake.set()

    def throttled(self, function_name: str, kind: str) -> None:
        """A throttled request ran nothing: no span."""

    # ---- export -----------------------------------------------------------------------

    async def run(self) -> None:
        """Post batches until `stop`; then post what is left."""
        async with httpx.AsyncClient(timeout=EXPORT_TIMEOUT_S) as client:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), EXPORT_INTERVAL_S)
                self._wake.clear()
                await self._export(client)
            await self._export(client)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _export(self, client: httpx.AsyncClient) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
            body = {
                "resourceSpans": [
                    {
                        "resource": self._resource,
                        "scopeSpans": [{"scope": {"name": "corral"}, "spans": batch}],
                    }
                ]
            }
            try:
                response = await client.post(self.url, json=body)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                self._dropped += len(batch)
                log.warning(
                    "OTLP export to %s failed (%s): %d span(s) dropped so far",
                    self.url,
                    exc,
                    self._dropped,
                )
                return
