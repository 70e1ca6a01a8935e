"""The Lambda Runtime API (2018-06-01), served to one environment on its own listener.

Wire format (HTTP/1.1, keep-alive):
  GET  /2018-06-01/runtime/invocation/next            long-polls; 200 + event body and
       Lambda-Runtime-Aws-Request-Id / -Deadline-Ms / -Invoked-Function-Arn / -Trace-Id
       [/ -Client-Context / -Cognito-Identity]
  POST /2018-06-01/runtime/invocation/{id}/response   202 {"status":"OK"}
  POST /2018-06-01/runtime/invocation/{id}/error      202; Lambda-Runtime-Function-Error-Type
  POST /2018-06-01/runtime/init/error                 202
Each listener knows exactly one environment, so a runtime can never fetch or answer
another environment's invocations. Bodies are passed on as bytes, never parsed here.
A response POSTed with `Lambda-Runtime-Function-Response-Mode: streaming` is passed on
piece by piece as it arrives, its error trailers at the end (`response_stream`).
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Protocol

import httptools

from corral.model.invocation import Invocation, InvocationResult
from corral.model.streaming import ERROR_BODY_TRAILER, RESPONSE_MODE_HEADER

_PREFIX = "/2018-06-01/runtime/"
_INVOCATION_PATH = re.compile(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)")

_ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"Content-Length: 16\r\n\r\n"
    b'{"status":"OK"}\n'
)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    403: b"HTTP/1.1 403 Forbidden\r\n",
    404: b"HTTP/1.1 404 Not Found\r\n",
    405: b"HTTP/1.1 405 Method Not Allowed\r\n",
    413: b"HTTP/1.1 413 Request Entity Too Large\r\n",
}


class RuntimeApiError(Exception):
    """A request the Runtime API refuses; rendered as `{"errorMessage","errorType"}`."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class RuntimeApiHandler(Protocol):
    """What an environment offers its Runtime API listener. All calls are synchronous."""

    response_limit_bytes: int

    def on_next(self, conn: RuntimeApiConnection) -> None: ...
    def on_response(self, request_id: str, body: bytes) -> None: ...
    def on_error(self, request_id: str, body: bytes, error_type: str) -> None: ...
    def on_init_error(self, body: bytes, error_type: str) -> None: ...
    def on_response_too_large(self, request_id: str) -> None: ...
    # the streaming response mode (corral.fleet.response_stream.StreamHandler)
    def on_stream_start(self, request_id: str, content_type: str, flow) -> None: ...
    def on_stream_data(self, request_id: str, data: bytes) -> None: ...
    def on_stream_end(self, request_id: str, error: InvocationResult | None) -> None: ...


def _error_response(err: RuntimeApiError) -> bytes:
    body = (
        b'{"errorMessage":"'
        + err.message.replace('"', "'").encode()
        + b'","errorType":"'
        + err.error_type.encode()
        + b'"}'
    )
    return (
        _STATUS_LINES.get(err.status, b"HTTP/1.1 400 Bad Request\r\n")
        + b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class RuntimeApiConnection(asyncio.Protocol):
    """One connection from a runtime. Parses with httptools; answers with single writes."""

    __slots__ = (
        "_batching",
        "_body",
        "_content_type",
        "_discarding",
        "_error_type",
        "_handler",
        "_held",
        "_parser",
        "_pending_output",
        "_size",
        "_stream",
        "_transport",
        "_url",
    )

    def __init__(self, handler: RuntimeApiHandler) -> None:
        self._handler = handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0
        self._error_type = b""
        self._discarding = False
        self._batching = False
        self._held = False
        self._pending_output: list[bytes] = []
        self._content_type: bytes | None = None
        self._stream = None  # a RuntimeResponseStream while a streamed response is read

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._stream is not None:
            self._stream.lost()
            self._stream = None

    def data_received(self, data: bytes) -> None:
        # Answers produced while parsing are collected and written once at the end. An
        # answer directly followed by a pipelined GET /next is held back further and goes
        # out with the next invocation: the runtime is waiting for that anyway.
        self._batching = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(RuntimeApiError(400, "InvalidRequest", "Malformed HTTP request"))
            return
        finally:
            self._batching = False
        if self._pending_output and not self._held and self._transport is not None:
            self._transport.write(b"".join(self._pending_output))
            self._pending_output.clear()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._size = 0
        self._error_type = b""
        self._discarding = False
        self._content_type = None
        self._stream = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"lambda-runtime-function-error-type":
            self._error_type = value
        elif lname == b"content-length":
            if not value.isdigit() or int(value) > self._handler.response_limit_bytes:
                self._discarding = True
        elif lname == b"expect" and value.lower() == b"100-continue" and self._transport:
            self._transport.write(_CONTINUE)
        elif lname == b"content-type":
            self._content_type = value
        elif lname == RESPONSE_MODE_HEADER:
            self._start_stream(value)
        elif lname == ERROR_BODY_TRAILER and self._stream is not None:
            self._stream.error_body = value

    def _start_stream(self, mode: bytes) -> None:
        # Imported here, not at the top: response_stream imports this module.
        from corral.fleet.response_stream import RuntimeResponseStream

        if mode.lower() == b"streaming" and RuntimeResponseStream.is_response_path(self._url):
            self._stream = RuntimeResponseStream(self._handler, self, self._url)

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.feed(body, self._content_type)
            return
        if self._discarding:
            return
        self._body.append(body)
        self._size += len(body)
        if self._size > self._handler.response_limit_bytes:
            self._discarding = True
            self._body = []

    def on_message_complete(self) -> None:
        try:
            self._dispatch(self._parser.get_method(), self._url.decode("latin-1"))
        except RuntimeApiError as err:
            self._write(_error_response(err))

    # dispatch
    def _dispatch(self, method: bytes, url: str) -> None:
        path = url.split("?", 1)[0]
        if not path.startswith(_PREFIX):
            raise RuntimeApiError(404, "NotFound", f"No such route: {path}")
        if path == "/2018-06-01/runtime/invocation/next":
            if method != b"GET":
                raise RuntimeApiError(405, "MethodNotAllowed", "Use GET for /next")
            self._held = bool(self._pending_output)
            self._handler.on_next(self)
            return
        if method != b"POST":
            raise RuntimeApiError(405, "MethodNotAllowed", f"Use POST for {path}")
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.finish(self._content_type, self._error_type)
            self._write(_ACCEPTED)
            return
        body = b"".join(self._body)
        error_type = self._error_type.decode("latin-1") or "Runtime.Unknown"
        if path == "/2018-06-01/runtime/init/error":
            self._handler.on_init_error(body, error_type)
            self._write(_ACCEPTED)
            return
        m = _INVOCATION_PATH.fullmatch(path)
        if m is None:
            raise RuntimeApiError(404, "NotFound", f"No such route: {path}")
        request_id, kind = m.groups()
        if self._discarding:
            self._handler.on_response_too_large(request_id)
            limit = self._handler.response_limit_bytes
            raise RuntimeApiError(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({limit} bytes).",
            )
        if kind == "response":
            self._handler.on_response(request_id, body)
        else:
            self._handler.on_error(request_id, body, error_type)
        self._write(_ACCEPTED)

    # output
    def send_invocation(self, inv: Invocation, deadline_ms: int) -> bool:
        """Answer the parked /next with `inv`. False if the connection is gone."""
        if self._transport is None:
            return False
        head = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: ",
            inv.request_id.encode(),
            b"\r\nLambda-Runtime-Deadline-Ms: ",
            str(deadline_ms).encode(),
            b"\r\nLambda-Runtime-Invoked-Function-Arn: ",
            inv.invoked_arn.encode(),
            b"\r\nLambda-Runtime-Trace-Id: ",
            inv.trace_id.encode(),
        ]
        if inv.client_context:
            head += [b"\r\nLambda-Runtime-Client-Context: ", inv.client_context.encode()]
        if inv.cognito_identity:
            head += [b"\r\nLambda-Runtime-Cognito-Identity: ", inv.cognito_identity.encode()]
        head += [b"\r\nContent-Length: ", str(len(inv.payload)).encode(), b"\r\n\r\n", inv.payload]
        if self._batching:
            self._pending_output.extend(head)
            self._held = False
        else:
            self._flush(b"".join(head))
        return True

    def _write(self, data: bytes) -> None:
        if self._transport is None:
            return
        if not self._parser.should_keep_alive():
            self._flush(data)
            self._transport.close()
        elif self._batching:
            self._pending_output.append(data)
        else:
            self._transport.write(data)

    def _flush(self, data: bytes = b"") -> None:
        """Write held answers and `data` in one go."""
        if self._pending_output:
            data = b"".join(self._pending_output) + data
            self._pending_output.clear()
        self._held = False
        if data and self._transport is not None:
            self._transport.write(data)

    def _fail(self, err: RuntimeApiError) -> None:
        if self._transport is not None:
            self._flush(_error_response(err))
            self._transport.close()

    def close(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()

    # flow control of a streamed response (response_stream.FlowControl)
    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()


def listening_socket() -> socket.socket:
    """A loopback listener on a free port, IPPROTO_TCP so that TCP_NODELAY applies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock
