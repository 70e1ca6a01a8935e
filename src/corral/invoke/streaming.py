"""A streamed invocation as its caller sees it: the seam between the data plane and the
HTTP surfaces that stream (InvokeWithResponseStream, function URLs in RESPONSE_STREAM mode).

    stream = await invoker.invoke_stream(request)   # API errors raise before this returns
    async for chunk in stream:                        # bytes, as the function produces them
        ...
    stream.result                                     # the InvocationResult, once iterated
    stream.error                                      # (ErrorCode, ErrorDetails) or None

A function that streams (its runtime POSTs in the streaming response mode) yields its
chunks as they arrive, `content_type` set to the Content-Type its runtime sent. A function
that answers buffered yields its whole payload as one chunk (none on an error), and
`streamed` is False. A caller that goes away calls `close()`: the rest is dropped, the
invocation runs to its end, and its environment goes back to the pool.

Backpressure: when more than HIGH_WATER bytes wait for a slow caller, reading from the
runtime's connection pauses (so the runtime's writes block) until the caller takes them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from corral.fleet.response_stream import FlowControl
from corral.model.invocation import InvocationResult
from corral.model.streaming import error_fields

HIGH_WATER = 1024 * 1024


class InvokeStream:
    """One streamed invocation. A `ResponseSink` for the environment, an async iterator of
    chunks for the caller; only one caller iterates."""

    def __init__(self, request_id: str, executed_version: str, status: int = 200) -> None:
        self.request_id = request_id
        self.executed_version = executed_version
        self.status = status  # 200, or 204 for DryRun (then there is nothing to iterate)
        self.content_type: str | None = None  # the runtime's, once it started streaming
        self.result: InvocationResult | None = None
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._flow: FlowControl | None = None
        self._paused = False
        self._closed = False
        if status == 204:
            self.result = InvocationResult(b"")

    @property
    def streamed(self) -> bool:
        """Whether the function streamed its response (else it answered buffered)."""
        return self.content_type is not None

    @property
    def error(self) -> tuple[str, str] | None:
        """(error code, details) of a failed invocation, once it is over."""
        return None if self.result is None else error_fields(self.result)

    # ---- the environment's side (corral.fleet.response_stream.ResponseSink) ---------------

    def start(self, content_type: str, flow: FlowControl) -> None:
        self.content_type = content_type
        self._flow = flow

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued > HIGH_WATER and not self._paused and self._flow is not None:
            self._paused = True
            self._flow.pause_reading()
        self._wake()

    def end(self) -> InvocationResult:
        return InvocationResult(b"")  # the caller has had the payload, chunk by chunk

    # ---- the invoke service's side -------------------------------------------------------

    def finish(self, result: InvocationResult) -> None:
        """The invocation is over: no more chunks after the ones queued (and, for a buffered
        answer, its payload as the one chunk)."""
        if self.result is not None:
            return
        if not self.streamed and not result.function_error and result.payload:
            self.write(result.payload)
        self.result = result
        self._resume()
        self._wake()

    # ---- the caller's side ------------------------------------------------------------------

    def __aiter__(self) -> InvokeStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self.result is not None or self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        # Whatever queued up while the caller was busy goes out together.
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._queued = 0
        self._resume()
        return data

    def close(self) -> None:
        """The caller is gone: drop what is queued and what comes, never block the runtime."""
        self._closed = True
        self._chunks.clear()
        self._queued = 0
        self._resume()
        self._wake()

    def _resume(self) -> None:
        if self._paused and self._flow is not None:
            self._paused = False
            self._flow.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
