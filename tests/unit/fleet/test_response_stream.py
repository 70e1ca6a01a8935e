"""The Runtime API's streaming response mode, fed raw bytes as a runtime sends them."""

from __future__ import annotations

import base64
import json

from corral.fleet.response_stream import BufferedResponse
from corral.fleet.runtime_api import RuntimeApiConnection, RuntimeApiError
from corral.model.invocation import InvocationResult
from corral.model.streaming import STREAM_RESPONSE_MAX_BYTES


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.paused = False

    def get_extra_info(self, name):
        return None

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class Handler:
    """Records the stream callbacks; request "mine" is the current invocation."""

    response_limit_bytes = 6 * 1024 * 1024

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_stream_start(self, request_id, content_type, flow):
        if request_id != "mine":
            raise RuntimeApiError(400, "InvalidRequestID", f"Invalid request ID: {request_id}")
        self.events.append(("start", content_type))

    def on_stream_data(self, request_id, data):
        self.events.append(("data", data))

    def on_stream_end(self, request_id, error: InvocationResult | None):
        self.events.append(("end", error))

    def on_response(self, request_id, body):
        self.events.append(("buffered", body))


def _connection() -> tuple[RuntimeApiConnection, Handler, Transport]:
    handler, transport = Handler(), Transport()
    conn = RuntimeApiConnection(handler)  # type: ignore[arg-type]
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, handler, transport


def _head(request_id: str = "mine", extra: str = "") -> bytes:
    return (
        f"POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\n"
        "Host: x\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
        f"Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
    ).encode()


def test_each_piece_is_passed_on_as_it_arrives():
    conn, handler, transport = _connection()
    conn.data_received(_head() + b"5\r\nhello\r\n")
    assert handler.events == [("start", "text/event-stream"), ("data", b"hello")]
    conn.data_received(b"6\r\n world\r\n0\r\n\r\n")
    assert handler.events[2:] == [("data", b" world"), ("end", None)]
    assert transport.written.startswith(b"HTTP/1.1 202 Accepted")


def test_error_trailers_end_the_stream_with_the_error():
    conn, handler, transport = _connection()
    body = base64.b64encode(json.dumps({"errorType": "X", "errorMessage": "m"}).encode())
    conn.data_received(
        _head(extra="Trailer: Lambda-Runtime-Function-Error-Type\r\n")
        + b"2\r\nok\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.X\r\n"
        + b"Lambda-Runtime-Function-Error-Body: "
        + body
        + b"\r\n\r\n"
    )
    kind, error = handler.events[-1]
    assert kind == "end" and error.function_error == "Unhandled"
    assert error.error_type == "Function.X"
    assert json.loads(error.payload) == {"errorType": "X", "errorMessage": "m"}
    assert transport.written.startswith(b"HTTP/1.1 202 Accepted")


def test_another_invocation_id_is_refused_and_its_body_dropped():
    conn, handler, transport = _connection()
    conn.data_received(_head("not-mine") + b"3\r\nabc\r\n0\r\n\r\n")
    assert handler.events == []
    assert transport.written.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"InvalidRequestID" in transport.written


def test_a_connection_lost_mid_stream_ends_it_as_truncated():
    conn, handler, _ = _connection()
    conn.data_received(_head() + b"3\r\nabc\r\n")
    conn.connection_lost(None)
    kind, error = handler.events[-1]
    assert kind == "end" and b"Runtime.TruncatedResponse" in error.payload


def test_a_stream_over_the_limit_ends_with_response_size_too_large():
    conn, handler, transport = _connection()
    conn.data_received(_head())
    piece = b"x" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(piece), piece)
    for _ in range(STREAM_RESPONSE_MAX_BYTES // len(piece) + 1):
        conn.data_received(framed)
    conn.data_received(b"0\r\n\r\n")
    ends = [e for e in handler.events if e[0] == "end"]
    assert len(ends) == 1 and b"Function.ResponseSizeTooLarge" in ends[0][1].payload
    assert transport.written.startswith(b"HTTP/1.1 413")


def test_the_flow_control_reaches_the_transport():
    conn, _, transport = _connection()
    conn.pause_reading()
    assert transport.paused
    conn.resume_reading()
    assert not transport.paused


def test_without_the_mode_header_a_chunked_response_is_buffered():
    conn, handler, _ = _connection()
    conn.data_received(
        b"POST /2018-06-01/runtime/invocation/mine/response HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert handler.events == [("buffered", b"abc")]


def test_a_buffered_sink_collects_up_to_its_limit():
    sink = BufferedResponse(4)
    sink.write(b"ab")
    sink.write(b"cd")
    assert sink.end().payload == b"abcd"
    sink.write(b"e")
    assert b"Function.ResponseSizeTooLarge" in sink.end().payload
