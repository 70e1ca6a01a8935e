"""Response streaming, the pure parts: limits, the errors a stream ends with, and the
`application/vnd.awslambda.http-integration-response` prelude of HTTP streams.

A streaming runtime POSTs its response with `Lambda-Runtime-Function-Response-Mode:
streaming` and chunked transfer encoding; an error after the first byte comes as the
trailers `Lambda-Runtime-Function-Error-Type` and `Lambda-Runtime-Function-Error-Body`
(base64). A function behind a URL (or any HTTP integration) first writes a JSON prelude
`{"statusCode":..,"headers":{..},"cookies":[..]}`, then 8 NUL bytes, then the body: that is
what Node's `awslambda.HttpResponseStream.from` does, with that Content-Type.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson

from corral.model.http_event import is_final_status
from corral.model.invocation import UNHANDLED, InvocationResult, platform_error

# Lambda's documented soft limit on a streamed response (the buffered limit is 6 MB).
STREAM_RESPONSE_MAX_BYTES = 20 * 1024 * 1024

RESPONSE_MODE_HEADER = b"lambda-runtime-function-response-mode"
ERROR_TYPE_TRAILER = b"lambda-runtime-function-error-type"
ERROR_BODY_TRAILER = b"lambda-runtime-function-error-body"
DEFAULT_CONTENT_TYPE = "application/octet-stream"  # what the runtime clients default to
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
# The prelude must come within the first 16 KB of the stream (API Gateway's documented
# rule for the same format; Lambda documents none for function URLs).
PRELUDE_MAX_BYTES = 16 * 1024


def decode_error_body(encoded: bytes) -> bytes:
    """The `Lambda-Runtime-Function-Error-Body` trailer's value: base64 of the error
    document. A value that is not base64 is passed on as it is."""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded


def midstream_error(error_type: str, encoded_body: bytes | None) -> InvocationResult:
    """The result of a stream the runtime ended with error trailers."""
    body = decode_error_body(encoded_body) if encoded_body else b""
    if not body:
        body = platform_error(error_type, "")
    return InvocationResult(body, UNHANDLED, error_type=error_type)


def stream_too_large_error(limit_bytes: int) -> bytes:
    return platform_error(
        "Function.ResponseSizeTooLarge",
        f"Response payload size exceeded maximum allowed payload size ({limit_bytes} bytes).",
    )


def truncated_stream_error(request_id: str) -> bytes:
    """The runtime's connection closed in the middle of a streamed response."""
    return platform_error(
        "Runtime.TruncatedResponse",
        f"RequestId: {request_id} Error: the runtime closed its connection before the end "
        "of the streamed response",
    )


def error_fields(result: InvocationResult) -> tuple[str, str] | None:
    """(ErrorCode, ErrorDetails) of InvokeWithResponseStream's InvokeComplete event for a
    failed invocation, None for a successful one. The code is the error's type (the
    trailer's, else the document's `errorType`); the details are its `errorMessage`, or
    the whole document when it has none."""
    if not result.function_error:
        return None
    text = result.payload.decode("utf-8", "replace")
    code, details = result.error_type, text
    try:
        document = orjson.loads(result.payload)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        if code is None and isinstance(document.get("errorType"), str):
            code = document["errorType"]
        if isinstance(document.get("errorMessage"), str):
            details = document["errorMessage"]
    return code or result.function_error, details


# ---- HTTP integration prelude ------------------------------------------------------------


class PreludeError(ValueError):
    """The stream does not start with a valid prelude."""


@dataclass(frozen=True, slots=True)
class HttpPrelude:
    """What an HTTP stream's prelude says about the response; defaults when absent."""

    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cookies: tuple[str, ...] = ()


def parse_prelude(data: bytes) -> HttpPrelude:
    """The prelude from its JSON text (without the delimiter)."""
    if not data.strip():
        return HttpPrelude()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PreludeError(f"the response prelude is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PreludeError("the response prelude must be a JSON object")
    status = document.get("statusCode", 200)
    if isinstance(status, str) and status.isascii() and status.isdigit():
        status = int(status)
    if not is_final_status(status):  # the buffered responses' rule: 1xx is no response
        raise PreludeError(f"invalid statusCode in the response prelude: {status!r}")
    headers = document.get("headers") or {}
    cookies = document.get("cookies") or []
    if not isinstance(headers, dict) or not isinstance(cookies, list):
        raise PreludeError("headers must be an object and cookies a list")
    return HttpPrelude(
        status,
        {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in headers.items()},
        tuple(str(c) for c in cookies),
    )


class PreludeReader:
    """Splits an HTTP stream into its prelude and its body, fed chunk by chunk.

        reader = PreludeReader()
        for chunk in chunks:
            body = reader.feed(chunk)      # b"" until the prelude is complete
            if reader.prelude: ...         # set once: send the status line and headers
        prelude = reader.finish()          # at the end (a stream may end without a body)

    The prelude is JSON, which holds no NUL byte, so the first NUL starts the delimiter.
    """

    __slots__ = ("_buffer", "prelude")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.prelude: HttpPrelude | None = None

    def feed(self, data: bytes) -> bytes:
        if self.prelude is not None:
            return data
        self._buffer += data
        at = self._buffer.find(b"\0")
        if at < 0 or len(self._buffer) - at < len(PRELUDE_DELIMITER):
            if len(self._buffer) > PRELUDE_MAX_BYTES:
                raise PreludeError(
                    f"no prelude delimiter within the first {PRELUDE_MAX_BYTES} bytes"
                )
            return b""
        if self._buffer[at : at + len(PRELUDE_DELIMITER)] != PRELUDE_DELIMITER:
            raise PreludeError("the response prelude contains a NUL byte")
        self.prelude = parse_prelude(bytes(self._buffer[:at]))
        body = bytes(self._buffer[at + len(PRELUDE_DELIMITER) :])
        self._buffer = bytearray()
        return body

    def finish(self) -> HttpPrelude:
        """The prelude once the stream has ended: what was read, or (no delimiter came)
        the buffered text parsed as a prelude without a body."""
        if self.prelude is None:
            self.prelude = parse_prelude(bytes(self._buffer).rstrip(b"\0"))
            self._buffer = bytearray()
        return self.prelude
