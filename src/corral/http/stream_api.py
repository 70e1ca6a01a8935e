"""InvokeWithResponseStream: `POST /2021-11-15/functions/{name}/response-streaming-invocations`.

A 200 with `Content-Type: application/vnd.amazon.eventstream` whose body is event-stream
messages: a `PayloadChunk` per piece of response as the function produces it, then one
`InvokeComplete` ({ErrorCode, ErrorDetails} for a failed invocation, LogResult for
`X-Amz-Log-Type: Tail`). A function that answers buffered yields its payload as one
PayloadChunk. API errors (unknown function, bad input, payload over 6 MB, throttling) come
before the stream, as ordinary Lambda errors. `X-Amz-Invocation-Type: DryRun` answers 204.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qsl

from corral.http.asgi import BodyTooLarge, Receive, Scope, Send, read_body, send_response
from corral.http.lambda_api import RawHandler
from corral.invoke.service import InvokeRequest, InvokeService, request_too_large
from corral.invoke.streaming import InvokeStream
from corral.model import eventstream, limits
from corral.model.arn import Scope as AccountScope
from corral.model.arn import parse_function_ref
from corral.model.errors import UnsupportedMediaTypeException
from corral.model.validation import InputValidator

log = logging.getLogger("corral.http")

_SHAPE = "InvokeWithResponseStreamRequest"


class InvokeStreamApi:
    def __init__(
        self, invoker: InvokeService, validator: InputValidator, scope: AccountScope
    ) -> None:
        self.invoker = invoker
        self.validator = validator
        self.scope = scope

    def handlers(self) -> dict[str, RawHandler]:
        return {"InvokeWithResponseStream": self.invoke_with_response_stream}

    async def invoke_with_response_stream(
        self, scope: Scope, receive: Receive, send: Send, path: dict, request_id: str
    ) -> None:
        try:
            payload = await read_body(receive, limits.SYNC_REQUEST_MAX_BYTES)
        except BodyTooLarge:
            raise request_too_large(limits.SYNC_REQUEST_MAX_BYTES) from None
        request = self._request(path["FunctionName"], scope, payload, request_id)
        stream = await self.invoker.invoke_stream(request)
        headers = [
            (b"content-type", eventstream.CONTENT_TYPE),
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amz-executed-version", stream.executed_version.encode()),
        ]
        if stream.status == 204:
            await send_response(send, 204, [*headers, (b"content-length", b"0")])
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            # The head goes out now: the caller's SDK returns and starts reading events.
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            async for chunk in stream:
                body = eventstream.payload_chunks(chunk)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            body = _complete(stream, request.want_tail)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError:
            pass  # the caller went away; the invocation finishes on its own
        except Exception:  # too late for an error response: the server cuts the stream
            log.exception("InvokeWithResponseStream %s failed mid-stream", request_id)
        finally:
            stream.close()

    def _request(self, function_name: str, scope: Scope, payload: bytes, request_id: str):
        params: dict[str, str] = {"FunctionName": function_name}
        trace = None
        for key, value in scope["headers"]:
            if key == b"x-amz-invocation-type":
                params["InvocationType"] = value.decode("latin-1")
            elif key == b"x-amz-log-type":
                params["LogType"] = value.decode("latin-1")
            elif key == b"x-amz-client-context":
                params["ClientContext"] = value.decode("latin-1")
            elif key == b"x-amzn-trace-id":
                trace = value.decode("latin-1")
            elif key == b"content-type" and value.startswith(b"multipart/"):
                raise UnsupportedMediaTypeException("The payload must be JSON or binary.")
        query = scope["query_string"]
        if query and (qualifier := dict(parse_qsl(query.decode("latin-1"))).get("Qualifier")):
            params["Qualifier"] = qualifier
        self.validator.validate(_SHAPE, params)
        ref = parse_function_ref(function_name, self.scope, params.get("Qualifier"))
        return InvokeRequest(
            ref.name,
            ref.qualifier,
            payload,
            request_id,
            params.get("InvocationType", "RequestResponse"),
            params.get("LogType") == "Tail",
            params.get("ClientContext"),
            trace,
        )


def _complete(stream: InvokeStream, want_tail: bool) -> bytes:
    """The InvokeComplete event of an invocation that is over."""
    error = stream.error
    log_result = None
    if want_tail and stream.result is not None:
        log_result = base64.b64encode(stream.result.log_tail).decode("ascii")
    if error is None:
        return eventstream.invoke_complete(log_result=log_result)
    return eventstream.invoke_complete(error[0], error[1], log_result)
