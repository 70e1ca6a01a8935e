"""Invoke: resolve the function, admit the request, run it in an environment, answer.

The warm path is: dict lookup of the configuration, a counter check, a pop from the
pool's idle list, a write to the runtime's parked /next, and a future resolved by the
runtime's POST. No database, no logging, no payload parsing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from corral.control.functions import FunctionService
from corral.fleet.pool import Fleet
from corral.invoke.background import Supervisor
from corral.model import limits
from corral.model.arn import Scope
from corral.model.errors import (
    InvalidRequestContentException,
    RequestTooLargeException,
    ThrottleReason,
    TooManyRequestsException,
)
from corral.model.invocation import (
    UNHANDLED,
    Invocation,
    InvocationResult,
    new_trace_id,
    platform_error,
)

CLIENT_CONTEXT_MAX_BYTES = 3583  # Lambda's limit on the decoded X-Amz-Client-Context


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    function_name: str
    qualifier: str | None
    payload: bytes
    request_id: str  # also the invocation's id: Lambda answers with the same RequestId
    invocation_type: str = "RequestResponse"
    want_tail: bool = False
    client_context_b64: str | None = None
    trace_header: str | None = None


@dataclass(frozen=True, slots=True)
class InvokeOutcome:
    status: int  # 200 RequestResponse, 202 Event, 204 DryRun
    executed_version: str
    request_id: str
    result: InvocationResult | None = None


class InvokeService:
    def __init__(
        self,
        functions: FunctionService,
        fleet: Fleet,
        scope: Scope,
        concurrency_limit: int,
        background: Supervisor,
    ) -> None:
        self.functions = functions
        self.fleet = fleet
        self.scope = scope
        self.concurrency_limit = concurrency_limit
        self.background = background
        self.in_flight = 0

    async def invoke(self, request: InvokeRequest) -> InvokeOutcome:
        """Raises LambdaError subclasses for API errors; function errors are in the result."""
        config = self.functions.get_version(request.function_name, request.qualifier)
        request_id = request.request_id
        kind = request.invocation_type
        if kind == "DryRun":
            return InvokeOutcome(204, config.version, request_id)
        limit = limits.ASYNC_REQUEST_MAX_BYTES if kind == "Event" else limits.SYNC_REQUEST_MAX_BYTES
        if len(request.payload) > limit:
            raise RequestTooLargeException(
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )
        inv = Invocation(
            request_id=request_id,
            payload=request.payload or b"{}",
            invoked_arn=self.scope.function_arn(config.name, request.qualifier),
            timeout_s=config.timeout_s,
            trace_id=request.trace_header or new_trace_id(),
            client_context=_client_context(request.client_context_b64),
            want_tail=request.want_tail and kind != "Event",
        )
        if kind == "Event":
            self.background.start(self._run_event(config.name, inv), f"event {request_id}")
            return InvokeOutcome(202, config.version, request_id)
        self._admit()
        try:
            result = await self._run(config, inv)
        finally:
            self.in_flight -= 1
        return InvokeOutcome(200, config.version, request_id, result)

    def _admit(self) -> None:
        if self.in_flight >= self.concurrency_limit:
            raise TooManyRequestsException("Rate Exceeded.", ThrottleReason.ACCOUNT)
        self.in_flight += 1

    async def _run(self, config, inv: Invocation) -> InvocationResult:
        pool = self.fleet.pool_for(config, self.functions.code_dir(config))
        try:
            env = await pool.acquire()
        except OSError as exc:
            detail = f"fork/exec {exc.filename or 'bootstrap'}: {exc.strerror or exc}"
            body = platform_error(
                "Runtime.InvalidEntrypoint", f"RequestId: {inv.request_id} Error: {detail}"
            )
            return InvocationResult(body, UNHANDLED)
        try:
            return await env.invoke(inv)
        finally:
            pool.release(env)

    async def _run_event(self, function_name: str, inv: Invocation) -> None:
        """An Event invocation, run once in the background (the durable queue comes later)."""
        config = self.functions.get(function_name)
        self.in_flight += 1
        try:
            await self._run(config, inv)
        finally:
            self.in_flight -= 1


def _client_context(encoded: str | None) -> str | None:
    """X-Amz-Client-Context is base64 JSON; the runtime gets the JSON text."""
    if not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object."
        ) from None
    if len(decoded) > CLIENT_CONTEXT_MAX_BYTES:
        raise InvalidRequestContentException(
            f"Client context must be at most {CLIENT_CONTEXT_MAX_BYTES} bytes."
        )
    return text
