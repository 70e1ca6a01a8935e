"""The Runtime API's streaming response mode, both halves.

`RuntimeResponseStream` reads one streamed `POST .../invocation/{id}/response` on the
runtime's connection (`Lambda-Runtime-Function-Response-Mode: streaming`, chunked) and
hands each piece of body to the environment as it arrives, then the end: success, the
error trailers, the size limit passed, or the connection lost mid-stream.

A `ResponseSink` is where an environment sends those pieces: the caller's stream for
InvokeWithResponseStream (`corral.invoke.streaming.InvokeStream`), or a `BufferedResponse`
when a streaming function is invoked with plain Invoke, which Lambda answers buffered.
"""

from __future__ import annotations

import contextlib
import re
from typing import Protocol

from corral.fleet.runtime_api import RuntimeApiError
from corral.model.invocation import UNHANDLED, InvocationResult, response_too_large_error
from corral.model.streaming import (
    DEFAULT_CONTENT_TYPE,
    STREAM_RESPONSE_MAX_BYTES,
    midstream_error,
    stream_too_large_error,
    truncated_stream_error,
)

_RESPONSE_PATH = re.compile(r"/2018-06-01/runtime/invocation/([^/?]+)/response")


class FlowControl(Protocol):
    """The runtime's side of a stream: stop and restart reading its connection."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class ResponseSink(Protocol):
    """Receives one invocation's streamed response, in order: start, write..., end."""

    def start(self, content_type: str, flow: FlowControl) -> None: ...
    def write(self, data: bytes) -> None: ...
    def end(self) -> InvocationResult:
        """The result of a stream that ended well (for a caller's stream, with no payload:
        it has had it already)."""
        ...


class StreamHandler(Protocol):
    """What an environment offers a streamed response (see RuntimeApiHandler)."""

    def on_stream_start(self, request_id: str, content_type: str, flow: FlowControl) -> None: ...
    def on_stream_data(self, request_id: str, data: bytes) -> None: ...
    def on_stream_end(self, request_id: str, error: InvocationResult | None) -> None: ...


class BufferedResponse:
    """A streamed response collected whole, for plain Invoke: up to the buffered limit."""

    __slots__ = ("_chunks", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit

    def start(self, content_type: str, flow: FlowControl) -> None:
        pass

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size <= self._limit:
            self._chunks.append(data)
        else:
            self._chunks = []

    def end(self) -> InvocationResult:
        if self._size > self._limit:
            return InvocationResult(response_too_large_error(self._limit), UNHANDLED)
        return InvocationResult(b"".join(self._chunks))


class RuntimeResponseStream:
    """One streamed response POST, as the Runtime API connection parses it."""

    __slots__ = (
        "_begun",
        "_content_type",
        "_flow",
        "_handler",
        "_url",
        "ended",
        "error_body",
        "refused",
        "request_id",
        "size",
    )

    def __init__(self, handler: StreamHandler, flow: FlowControl, url: bytes) -> None:
        self._handler = handler
        self._flow = flow
        self._url = url
        self._begun = False
        self._content_type = DEFAULT_CONTENT_TYPE
        self.request_id = ""
        self.size = 0
        self.ended = False
        self.refused: RuntimeApiError | None = None
        self.error_body: bytes | None = None

    @staticmethod
    def is_response_path(url: bytes) -> bool:
        return _RESPONSE_PATH.fullmatch(url.decode("latin-1").split("?", 1)[0]) is not None

    def begin(self, content_type: bytes | None) -> None:
        """The first byte of body (or the end of an empty one): tell the environment."""
        self._begun = True
        m = _RESPONSE_PATH.fullmatch(self._url.decode("latin-1").split("?", 1)[0])
        assert m is not None  # is_response_path was checked before streaming was chosen
        self.request_id = m.group(1)
        if content_type:
            self._content_type = content_type.decode("latin-1")
        try:
            self._handler.on_stream_start(self.request_id, self._content_type, self._flow)
        except RuntimeApiError as err:
            self.refused = err
            self.ended = True

    def feed(self, data: bytes, content_type: bytes | None) -> None:
        if not self._begun:
            self.begin(content_type)
        if self.ended:
            return  # refused, over the limit: the rest is read and dropped
        self.size += len(data)
        if self.size > STREAM_RESPONSE_MAX_BYTES:
            self._fail_too_large()
            return
        self._handler.on_stream_data(self.request_id, data)

    def _fail_too_large(self) -> None:
        self.ended = True
        limit = STREAM_RESPONSE_MAX_BYTES
        error = InvocationResult(stream_too_large_error(limit), UNHANDLED)
        with contextlib.suppress(RuntimeApiError):  # the invocation may be over already
            self._handler.on_stream_end(self.request_id, error)
        self.refused = RuntimeApiError(
            413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({limit} bytes)."
        )

    def finish(self, content_type: bytes | None, error_type: bytes) -> None:
        """The request is complete (trailers read). Raises RuntimeApiError to refuse it."""
        if not self._begun:
            self.begin(content_type)
        if self.refused is not None:
            raise self.refused
        if self.ended:
            return
        self.ended = True
        error = None
        if error_type:
            error = midstream_error(error_type.decode("latin-1"), self.error_body)
        self._handler.on_stream_end(self.request_id, error)

    def lost(self) -> None:
        """The connection closed before the end of the request."""
        if self._begun and not self.ended:
            self.ended = True
            body = truncated_stream_error(self.request_id)
            with contextlib.suppress(RuntimeApiError):  # the invocation may be over already
                self._handler.on_stream_end(self.request_id, InvocationResult(body, UNHANDLED))
