"""Invoke: resolve the function, admit the request, run it in an environment, answer.

The warm path is: dict lookup of the configuration, a counter check, a pop from the
pool's idle list, a write to the runtime's parked /next, and a future resolved by the
runtime's POST. No database, no logging, no payload parsing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from corral.control.aliases import AliasService
from corral.control.functions import FunctionService
from corral.fleet.environment import Environment, RuntimeGone
from corral.fleet.pool import Fleet, Pool
from corral.fleet.response_stream import ResponseSink
from corral.invoke.streaming import InvokeStream
from corral.model import limits
from corral.model.arn import Scope
from corral.model.errors import (
    InvalidRequestContentException,
    LambdaError,
    RequestTooLargeException,
    ThrottleReason,
    TooManyRequestsException,
)
from corral.model.function import FunctionConfig
from corral.model.invocation import (
    UNHANDLED,
    Invocation,
    InvocationResult,
    entrypoint_error,
)
from corral.model.trace import caller_trace_header, invocation_trace
from corral.store.queue import EventQueue, NewEvent
from corral.telemetry import EVENT, SYNC


class Concurrency(Protocol):
    """Where reserved concurrency is configured (corral.control.resources)."""

    def reserved_concurrency(self, function_name: str) -> int | None: ...
    def unreserved_limit(self) -> int: ...


class InvocationObserver(Protocol):
    """Told of every finished or throttled invocation (metrics, metering); `kind` is "sync"
    or "event". Called on the invoke path: must not wait or do I/O."""

    def completed(
        self, config: FunctionConfig, kind: str, request_id: str, result: InvocationResult
    ) -> None: ...
    def throttled(self, function_name: str, kind: str) -> None: ...


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
        aliases: AliasService,
        concurrency: Concurrency,
        fleet: Fleet,
        scope: Scope,
        events: EventQueue,
        observers: tuple[InvocationObserver, ...] = (),
    ) -> None:
        self.functions = functions
        self.aliases = aliases
        self.concurrency = concurrency
        self.fleet = fleet
        self.scope = scope
        self.events = events
        self.observers = observers
        self.in_flight = 0  # every running invocation
        self._running: dict[str, int] = {}  # by function, all versions together
        self._unreserved_running = 0  # of functions without reserved concurrency
        self._unreserved_by_function: dict[str, int] = {}

    async def invoke(self, request: InvokeRequest) -> InvokeOutcome:
        """Raises LambdaError subclasses for API errors; function errors are in the result."""
        config = self.aliases.resolve(request.function_name, request.qualifier)
        kind = request.invocation_type
        if kind == "DryRun":
            return InvokeOutcome(204, config.version, request.request_id)
        limit = limits.ASYNC_REQUEST_MAX_BYTES if kind == "Event" else limits.SYNC_REQUEST_MAX_BYTES
        if len(request.payload) > limit:
            raise request_too_large(limit)
        if kind == "Event":
            _client_context(request.client_context_b64)  # refused now, not at delivery
            self.events.put(
                NewEvent(
                    request_id=request.request_id,
                    target="function",
                    destination=config.name,
                    payload=request.payload or b"{}",
                    qualifier=request.qualifier,
                    # Every attempt runs in this one trace (a new one if it had none).
                    trace_id=caller_trace_header(request.trace_header),
                )
            )
            return InvokeOutcome(202, config.version, request.request_id)
        inv = self.invocation(config, request)
        self._admit(config.name, SYNC)
        try:
            result = await self._run(config, inv)
        finally:
            self._leave(config.name)
        for observer in self.observers:
            observer.completed(config, SYNC, inv.request_id, result)
        return InvokeOutcome(200, config.version, request.request_id, result)

    def invoke_warm(self, request: InvokeRequest) -> asyncio.Future[InvokeOutcome] | None:
        """The warm path without a task: a RequestResponse invocation of a cached $LATEST
        on an idle environment, started now. None, before any side effect, whenever
        anything else is needed (a cold start, an error to report, another type): then
        call `invoke`. Never waits."""
        if (
            request.invocation_type != "RequestResponse"
            or len(request.payload) > limits.SYNC_REQUEST_MAX_BYTES
            or self._throttle_reason(request.function_name) is not None
        ):
            return None
        config = self.aliases.resolve_cached(request.function_name, request.qualifier)
        if config is None:
            return None
        pool = self.fleet.pool_for(config, self.functions.code_dir)
        try:
            inv = self.invocation(config, request)
        except LambdaError:
            return None
        env = pool.take_idle()
        if env is None:
            return None
        self._enter(config.name)
        outcome: asyncio.Future[InvokeOutcome] = asyncio.get_running_loop().create_future()

        def finish(future: asyncio.Future[InvocationResult]) -> None:
            self._leave(config.name)
            if future.exception() is not None:
                outcome.set_exception(future.exception())
                return
            result = future.result()
            for observer in self.observers:
                observer.completed(config, SYNC, inv.request_id, result)
            outcome.set_result(InvokeOutcome(200, config.version, inv.request_id, result))

        self._run_on(env, pool, config, inv, None, finish)
        return outcome

    def _run_on(
        self,
        env: Environment,
        pool: Pool,
        config: FunctionConfig,
        inv: Invocation,
        sink: ResponseSink | None,
        finish: Callable[[asyncio.Future[InvocationResult]], None],
    ) -> None:
        """Run `inv` on the environment taken from `pool`, and `finish` with its result. A
        warm runtime that exited before taking it (RuntimeGone) never ran it: it runs on a
        new environment then, as in Lambda."""

        def done(future: asyncio.Future[InvocationResult]) -> None:
            pool.release(env)
            if isinstance(future.exception(), RuntimeGone):
                retry = asyncio.ensure_future(self._run(config, inv, sink))
                _RETRIES.add(retry)
                retry.add_done_callback(_RETRIES.discard)
                retry.add_done_callback(finish)
                return
            finish(future)

        env.invoke(inv, sink).add_done_callback(done)

    def invocation(self, config: FunctionConfig, request: InvokeRequest) -> Invocation:
        trace, caller_span_id = invocation_trace(request.trace_header)
        return Invocation(
            request_id=request.request_id,
            payload=request.payload or b"{}",
            invoked_arn=self.scope.function_arn(config.name, request.qualifier),
            timeout_s=config.timeout_s,
            trace_id=trace,
            client_context=_client_context(request.client_context_b64),
            want_tail=request.want_tail and request.invocation_type != "Event",
            caller_span_id=caller_span_id,
        )

    # ---- concurrency ------------------------------------------------------------------
    # A function with reserved concurrency runs at most that many at once (0: none); the
    # others share what the reservations leave of the account limit. Throttled requests
    # get TooManyRequestsException with Lambda's Reason; queued (Event) invocations are
    # retried later by the dispatcher instead.

    def _throttle_reason(self, name: str) -> str | None:
        reserved = self.concurrency.reserved_concurrency(name)
        if reserved is not None:
            return ThrottleReason.RESERVED if self._running.get(name, 0) >= reserved else None
        if self._unreserved_running >= self.concurrency.unreserved_limit():
            return ThrottleReason.ACCOUNT
        return None

    def _admit(self, name: str, kind: str) -> None:
        reason = self._throttle_reason(name)
        if reason is not None:
            for observer in self.observers:
                observer.throttled(name, kind)
            raise TooManyRequestsException("Rate Exceeded.", reason)
        self._enter(name)

    def _enter(self, name: str) -> None:
        self.in_flight += 1
        self._running[name] = self._running.get(name, 0) + 1
        if self.concurrency.reserved_concurrency(name) is None:
            self._unreserved_running += 1
            self._unreserved_by_function[name] = self._unreserved_by_function.get(name, 0) + 1

    def _leave(self, name: str) -> None:
        # What _enter counted, even if the reservation changed in between.
        self.in_flight -= 1
        _decrement(self._running, name)
        if self._unreserved_by_function.get(name):
            _decrement(self._unreserved_by_function, name)
            self._unreserved_running -= 1

    async def invoke_stream(self, request: InvokeRequest) -> InvokeStream:
        """A RequestResponse (or DryRun) invocation whose response reaches the caller as the
        function produces it: InvokeWithResponseStream, and function URLs in RESPONSE_STREAM
        mode. Raises LambdaError subclasses for API errors before anything runs; once this
        returns, the invocation is under way and its errors come at the end of the stream
        (see corral.invoke.streaming). Never leaves a task behind: the environment goes
        back to the pool when the invocation ends, read to the end or not."""
        config = self.aliases.resolve(request.function_name, request.qualifier)
        if request.invocation_type == "DryRun":
            return InvokeStream(request.request_id, config.version, status=204)
        if len(request.payload) > limits.SYNC_REQUEST_MAX_BYTES:
            raise request_too_large(limits.SYNC_REQUEST_MAX_BYTES)
        inv = self.invocation(config, request)
        stream = InvokeStream(inv.request_id, config.version)
        self._admit(config.name, SYNC)
        pool = self.fleet.pool_for(config, self.functions.code_dir)
        try:
            env = await pool.acquire()
        except BaseException as exc:
            self._leave(config.name)
            if not isinstance(exc, OSError):
                raise
            result = _start_failed(inv, exc)
            stream.finish(result)
            for observer in self.observers:
                observer.completed(config, SYNC, inv.request_id, result)
            return stream

        def finish(future: asyncio.Future[InvocationResult]) -> None:
            self._leave(config.name)
            result = future.result()
            stream.finish(result)
            for observer in self.observers:
                observer.completed(config, SYNC, inv.request_id, result)

        self._run_on(env, pool, config, inv, stream, finish)
        return stream

    async def _run(
        self, config: FunctionConfig, inv: Invocation, sink: ResponseSink | None = None
    ) -> InvocationResult:
        pool = self.fleet.pool_for(config, self.functions.code_dir)
        try:
            env = await pool.acquire()
        except OSError as exc:
            return _start_failed(inv, exc)
        try:
            return await env.invoke(inv, sink)
        except RuntimeGone:
            pass
        finally:
            pool.release(env)
        return await self._run(config, inv, sink)  # on a new environment: the warm one is gone

    async def run_queued(self, config: FunctionConfig, inv: Invocation) -> InvocationResult:
        """One attempt of a queued (Event) invocation, under the same concurrency rules as
        synchronous ones. Raises TooManyRequestsException when throttled: the caller
        retries later."""
        self._admit(config.name, EVENT)
        try:
            result = await self._run(config, inv)
        finally:
            self._leave(config.name)
        for observer in self.observers:
            observer.completed(config, EVENT, inv.request_id, result)
        return result

    def running_by_function(self) -> dict[str, int]:
        """Invocations running now per function (all versions); absent means none."""
        return self._running


_RETRIES: set[asyncio.Future[InvocationResult]] = set()  # retries in flight, kept referenced


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _start_failed(inv: Invocation, exc: OSError) -> InvocationResult:
    """The result of an invocation whose runtime could not be started."""
    body = entrypoint_error(inv.request_id, exc.filename, exc.errno, exc.strerror or str(exc))
    return InvocationResult(
        body, UNHANDLED, trace_id=inv.trace_id, caller_span_id=inv.caller_span_id
    )


def request_too_large(limit: int) -> RequestTooLargeException:
    return RequestTooLargeException(
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
    )


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
