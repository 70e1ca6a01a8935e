"""The HTTP front door for functions: function URLs, the HTTP API routes, and the REST API
that manages those routes.

Where a request goes (checked by `RootApp` before the Lambda API, see `claim`):
- Host `<url-id>.lambda-url.<region>.localhost[:port]` (any host whose second label is
  `lambda-url`): the function URL `<url-id>`, the whole path is the function's;
- `/url/<url-id>/<path>` on any host: the same URL, path-based (`*.localhost` names do not
  resolve everywhere, e.g. not in glibc without systemd-resolved);
- Host `api.localhost[:port]`: the HTTP API's `$default` stage, the whole path is routed;
- `/api/<path>` on any host: the HTTP API's stage named `api` (rawPath keeps `/api`, as
  API Gateway keeps a named stage in the path);
- `/corral/v1/routes[/<route-id>]`: the route table's REST API (GET, POST, DELETE).

Errors are API Gateway's and function URLs': JSON `{"message": ...}` bodies, 403 for an
unknown URL id, 404 for no route, 413 for a request over Lambda's 6 MB, 429 when throttled,
502 when the function fails or returns something that is no response, 503 when a route's
integration timeout passes (the function keeps running, as behind API Gateway).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from functools import partial

import orjson

from corral.control.http_triggers import FunctionUrlService, RouteService
from corral.http.asgi import (
    BodyTooLarge,
    Headers,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_response,
)
from corral.http.errors import render_error
from corral.http.server import StreamAborted
from corral.invoke.service import InvokeRequest, InvokeService
from corral.invoke.streaming import InvokeStream
from corral.model import limits
from corral.model.arn import Scope as AccountScope
from corral.model.arn import parse_function_ref
from corral.model.errors import (
    LambdaError,
    RequestTooLargeException,
    ResourceNotFoundException,
    TooManyRequestsException,
)
from corral.model.function_url import RESPONSE_STREAM, FunctionUrl, without_cors_headers
from corral.model.http_event import (
    DEFAULT_STAGE,
    NO_BODY_STATUSES,
    EventContext,
    HttpRequest,
    HttpResponse,
    MalformedResponse,
    error_body,
    event_v1,
    event_v2,
    response_v1,
    response_v2,
)
from corral.model.http_route import Route
from corral.model.invocation import new_request_id, new_trace_id
from corral.model.streaming import (
    HTTP_INTEGRATION_CONTENT_TYPE,
    HttpPrelude,
    PreludeError,
    PreludeReader,
)

ASGIHandler = Callable[[Scope, Receive, Send], Awaitable[None]]
_parse_ref = functools.lru_cache(maxsize=1024)(parse_function_ref)

URL_PREFIX = "/url/"
API_STAGE = "api"
API_PREFIX = "/" + API_STAGE
API_HOST = b"api.localhost"
ROUTES_API = "/corral/v1/routes"
_URL_ID = re.compile(r"[a-z0-9]{32}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_JSON = (b"content-type", b"application/json")


class HttpTriggers:
    def __init__(
        self,
        urls: FunctionUrlService,
        routes: RouteService,
        invoker: InvokeService,
        scope: AccountScope,
    ) -> None:
        self.urls = urls
        self.routes = routes
        self.invoker = invoker
        self.scope = scope
        self._detached: set[asyncio.Future] = set()

    # ---- dispatch -----------------------------------------------------------------------

    def claim(self, scope: Scope) -> ASGIHandler | None:
        """The handler of a request that belongs to the front door, or None (then the Lambda
        API and Corral's other surfaces get it). A header scan and a few prefix checks."""
        host = header(scope, b"host")
        if host:
            name = host.split(b":", 1)[0].lower()
            labels = name.split(b".", 2)
            if len(labels) >= 2 and labels[1] == b"lambda-url":
                url_id = labels[0].decode("latin-1")
                return partial(self._url, url_id, name.decode("latin-1"), "")
            if name == API_HOST:
                return partial(self._api, DEFAULT_STAGE, "")
        path: str = scope["path"]
        if path.startswith(URL_PREFIX):
            url_id = path[len(URL_PREFIX) :].split("/", 1)[0]
            # rawPath is cut from the raw path: the prefix as the client wrote it
            # (`/url/%64...` is the same URL, and is as long as the client sent it)
            prefix = "/".join(_raw_path(scope).split("/", 3)[:3])
            domain = f"{url_id}.lambda-url.{self.scope.region}.localhost"
            return partial(self._url, url_id, domain, prefix)
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return partial(self._api, API_STAGE, API_PREFIX)
        if path == ROUTES_API or path.startswith(ROUTES_API + "/"):
            return self._routes_api
        return None

    # ---- function URLs ------------------------------------------------------------------

    async def _url(
        self, url_id: str, domain: str, prefix: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        url = self.urls.lookup(url_id) if _URL_ID.fullmatch(url_id) else None
        if url is None:
            await _send(send, 403, [], orjson.dumps({"Message": "Forbidden"}), json=True)
            return
        request_id = new_request_id()
        origin = header(scope, b"origin")
        origin_s = origin.decode("latin-1") if origin else None
        if url.cors is not None and scope["method"] == "OPTIONS":
            wanted = header(scope, b"access-control-request-method")
            if origin_s and wanted:
                asked = header(scope, b"access-control-request-headers")
                headers = url.cors.preflight_headers(
                    origin_s,
                    wanted.decode("latin-1"),
                    asked.decode("latin-1") if asked else None,
                )
                headers.append(("x-amzn-requestid", request_id))
                await _send(send, 200, headers, b"")
                return
        extra = url.cors.response_headers(origin_s) if url.cors is not None else []
        extra.append(("x-amzn-requestid", request_id))
        try:
            body = await read_body(receive, limits.SYNC_REQUEST_MAX_BYTES)
        except BodyTooLarge:
            await _send(send, 413, extra, error_body(_too_large_message()), json=True)
            return
        request, trace = _http_request(scope, body, prefix)
        ctx = EventContext(
            account_id="anonymous",  # what Lambda puts there for AuthType NONE
            api_id=url_id,
            domain_name=domain,
            request_id=request_id,
        )
        payload = orjson.dumps(event_v2(request, ctx))
        invoke = InvokeRequest(
            url.function_name, url.qualifier, payload, request_id, trace_header=trace
        )
        if url.invoke_mode == RESPONSE_STREAM:
            await self._stream(url, invoke, extra, send)
            return
        response = await self._call(invoke, None, response_v2)
        await self._respond(url, response, extra, send)

    async def _respond(
        self, url: FunctionUrl, response: HttpResponse, extra: list[tuple[str, str]], send: Send
    ) -> None:
        headers = response.headers
        if url.cors is not None:
            headers = without_cors_headers(headers)
        await _send(send, response.status, headers + extra, response.body)

    async def _stream(
        self, url: FunctionUrl, request: InvokeRequest, extra: list[tuple[str, str]], send: Send
    ) -> None:
        """A RESPONSE_STREAM URL: the response goes out as the function produces it. A
        stream of the HTTP integration type starts with a prelude (status, headers,
        cookies); any other stream is a 200 of its content type. A function that answered
        buffered follows the payload 2.0 response rules, as behind a BUFFERED URL."""
        try:
            stream = await self.invoker.invoke_stream(request)
        except LambdaError as exc:
            await self._respond(url, _failure(exc, None), extra, send)
            return
        try:
            await self._relay(url, stream, extra, send)
        except OSError:
            pass  # the client went away; the invocation runs to its end
        finally:
            stream.close()

    async def _relay(
        self, url: FunctionUrl, stream: InvokeStream, extra: list[tuple[str, str]], send: Send
    ) -> None:
        reader: PreludeReader | None = None
        started = False
        buffered: list[bytes] = []
        async for chunk in stream:
            if not stream.streamed:
                buffered.append(chunk)
                continue
            if not started:
                if stream.content_type == HTTP_INTEGRATION_CONTENT_TYPE:
                    reader = reader or PreludeReader()
                    try:
                        chunk = reader.feed(chunk)
                    except PreludeError:
                        await self._respond(url, _error(502, "Internal Server Error"), extra, send)
                        return
                    if reader.prelude is None:
                        continue
                    status, headers = _prelude_head(reader.prelude)
                else:
                    status, headers = 200, [("content-type", stream.content_type or "")]
                if url.cors is not None:
                    headers = without_cors_headers(headers)
                start = {"status": status, "headers": _encode_headers(headers + extra)}
                await send({"type": "http.response.start", **start})
                started = True
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        result = stream.result
        if started:
            if result is None or result.function_error:
                # an error after the first byte (error trailers, timeout, the 20 MB cap):
                # the connection is closed without the last chunk, the client sees it cut
                raise StreamAborted
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if result is None or result.function_error:
            response = _error(502, "Internal Server Error")
        elif not stream.streamed:
            try:
                response = response_v2(b"".join(buffered))
            except MalformedResponse:
                response = _error(502, "Internal Server Error")
        elif reader is not None:  # the stream ended inside or right after its prelude
            try:
                status, headers = _prelude_head(reader.finish())
            except PreludeError:
                status, headers = 502, []
            response = HttpResponse(status, headers, b"")
        else:  # a stream with no bytes at all
            response = HttpResponse(200, [("content-type", stream.content_type or "")], b"")
        await self._respond(url, response, extra, send)

    # ---- HTTP API routes ----------------------------------------------------------------

    async def _api(
        self, stage: str, prefix: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        raw_path = _raw_path(scope)
        routed = raw_path[len(prefix) :] or "/"
        match = self.routes.table.match(scope["method"], routed)
        request_id = new_request_id()
        extra = [("apigw-requestid", request_id)]
        if match is None:
            await _send(send, 404, extra, error_body("Not Found"), json=True)
            return
        route, params = match
        try:
            body = await read_body(receive, limits.SYNC_REQUEST_MAX_BYTES)
        except BodyTooLarge:
            await _send(send, 413, extra, error_body("Request Entity Too Large"), json=True)
            return
        request, trace = _http_request(scope, body, "")
        host = header(scope, b"host")
        domain = host.split(b":", 1)[0].decode("latin-1") if host else "localhost"
        ctx = EventContext(
            account_id=self.scope.account,
            api_id="corral",
            domain_name=domain,
            request_id=request_id,
            route_key=route.route_key,
            stage=stage,
            resource_path=route.path or route.route_key,
            path_parameters=params or None,
        )
        if route.payload_format == "1.0":
            event, parse = event_v1(request, ctx), response_v1
        else:
            event, parse = event_v2(request, ctx), response_v2
        ref = _parse_ref(route.function_name, self.scope)
        payload = orjson.dumps(event)
        invoke = InvokeRequest(ref.name, ref.qualifier, payload, request_id, trace_header=trace)
        response = await self._call(invoke, route, parse)
        await _send(send, response.status, response.headers + extra, response.body)

    # ---- invoking -----------------------------------------------------------------------

    async def _call(
        self,
        request: InvokeRequest,
        route: Route | None,
        parse: Callable[[bytes], HttpResponse],
    ) -> HttpResponse:
        """Invoke and read the result as an HTTP response; every failure becomes the error
        response the client of a function URL (route None) or an HTTP API would get."""
        try:
            if route is None:
                outcome = await self.invoker.invoke(request)
            else:
                outcome = await self._within(request, route.timeout_ms / 1000)
        except (TimeoutError, LambdaError) as exc:
            return _failure(exc, route)
        result = outcome.result
        if result is None or result.function_error:
            return _error(502, "Internal Server Error")
        try:
            return parse(result.payload)
        except MalformedResponse:
            return _error(502, "Internal Server Error")

    async def _within(self, request: InvokeRequest, timeout_s: float):
        """Invoke, giving up waiting after the route's integration timeout. The invocation
        itself is left to finish (its environment is not killed), as behind API Gateway.
        One task, one future and one timer: cheaper than wait_for(shield(...))."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.invoker.invoke(request))
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(timeout_s, wake)
        try:
            await waiter
        finally:
            timer.cancel()
        if task.done():
            return task.result()
        self._detached.add(task)
        task.add_done_callback(self._reap)
        raise TimeoutError

    def _reap(self, task: asyncio.Future) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an error after the client was answered is moot

    # ---- the routes' REST API -----------------------------------------------------------

    async def _routes_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"].rstrip("/")
        try:
            if path == ROUTES_API and method == "GET":
                status, result = 200, {"Routes": [r.to_wire() for r in self.routes.list()]}
            elif path == ROUTES_API and method == "POST":
                params = _json_object(await read_body(receive, 64 * 1024))
                status, result = 201, self.routes.add(params).to_wire()
            elif path.startswith(ROUTES_API + "/") and method in ("GET", "DELETE"):
                route_id = path[len(ROUTES_API) + 1 :]
                found = [r for r in self.routes.list() if r.route_id == route_id]
                if not found:
                    raise ResourceNotFoundException(f"Route not found: {route_id}")
                if method == "DELETE":
                    self.routes.remove(route_id)
                    status, result = 204, None
                else:
                    status, result = 200, found[0].to_wire()
            else:
                raise ResourceNotFoundException(f"No such Corral endpoint: {method} {path}")
        except BodyTooLarge:
            await send_response(send, *render_error(_InvalidRequest("Request too large"), "corral"))
            return
        except Exception as exc:
            await send_response(send, *render_error(exc, "corral"))
            return
        body = b"" if result is None else orjson.dumps(result)
        await _send(send, status, [], body, json=result is not None)


class _InvalidRequest(LambdaError):
    error_type = "InvalidRequestContentException"
    status = 400
    kind = "User"


def _json_object(body: bytes) -> dict:
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _InvalidRequest(f"Could not parse request body into json: {exc}") from None
    if not isinstance(parsed, dict):
        raise _InvalidRequest("The request body must be a JSON object.")
    return parsed


def _too_large_message() -> str:
    limit = limits.SYNC_REQUEST_MAX_BYTES
    return f"Request must be smaller than {limit} bytes for the InvokeFunction operation"


def _failure(exc: Exception, route: Route | None) -> HttpResponse:
    """The response to an invocation that did not run, for a function URL (route None) or
    an HTTP API route."""
    if isinstance(exc, TimeoutError):
        return _error(503, "Service Unavailable")
    if isinstance(exc, TooManyRequestsException):
        message = "Too Many Requests" if route is not None else "Rate Exceeded."
        return HttpResponse(429, _str_headers(exc.headers), error_body(message))
    if isinstance(exc, RequestTooLargeException):
        message = "Request Entity Too Large" if route is not None else _too_large_message()
        return _error(413, message)
    if isinstance(exc, ResourceNotFoundException) and route is None:
        # the alias the URL names is gone: the URL answers no more
        return HttpResponse(403, [], orjson.dumps({"Message": "Forbidden"}))
    return _error(500, "Internal Server Error")


def _prelude_head(prelude: HttpPrelude) -> tuple[int, list[tuple[str, str]]]:
    """Status and headers of a streamed HTTP response from its prelude."""
    headers = [(name.lower(), value) for name, value in prelude.headers.items()]
    headers += [("set-cookie", cookie) for cookie in prelude.cookies]
    return prelude.status_code, headers


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, [("content-type", "application/json")], error_body(message))


def _str_headers(headers: Headers) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    return raw.decode("utf-8", "replace")


def _http_request(scope: Scope, body: bytes, prefix: str) -> tuple[HttpRequest, str]:
    """The request as the event builders take it, with the headers Lambda's and API
    Gateway's front ends add: x-forwarded-for/proto/port (replacing the client's) and
    x-amzn-trace-id (the client's, or a new trace, which the invocation then carries).
    Returns the request and the trace header."""
    raw_path = _raw_path(scope)[len(prefix) :] or "/"
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    client = scope.get("client")
    source_ip = client[0] if client else "127.0.0.1"
    trace = None
    headers: list[tuple[str, str]] = []
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key.startswith("x-forwarded-"):
            continue
        text = value.decode("utf-8", "replace")
        if key == "x-amzn-trace-id":
            trace = text
        headers.append((key, text))
    server = scope.get("server")
    headers += [
        ("x-forwarded-for", source_ip),
        ("x-forwarded-proto", scope.get("scheme", "http")),
        ("x-forwarded-port", str(server[1]) if server else "80"),
    ]
    if trace is None:
        trace = new_trace_id()
        headers.append(("x-amzn-trace-id", trace))
    request = HttpRequest(
        method=scope["method"],
        raw_path=raw_path,
        raw_query=scope["query_string"].decode("utf-8", "replace"),
        headers=headers,
        body=body,
        source_ip=source_ip,
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
    )
    return request, trace


def _encode_headers(headers: list[tuple[str, str]]) -> Headers:
    """Response headers on the wire. A function's headers are untrusted: names that are no
    HTTP token and values with CR/LF are dropped (no response splitting), framing headers
    are Corral's own."""
    out: Headers = []
    for name, value in headers:
        name = name.lower()
        if name in _HOP_BY_HOP or not _TOKEN.fullmatch(name):
            continue
        if "\r" in value or "\n" in value or "\0" in value:
            continue
        try:
            encoded = value.encode("latin-1")
        except UnicodeEncodeError:
            encoded = value.encode("utf-8")
        out.append((name.encode("ascii"), encoded))
    return out


async def _send(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes, json: bool = False
) -> None:
    wire = _encode_headers(headers)
    if json:
        wire.insert(0, _JSON)
    if status in NO_BODY_STATUSES:
        body = b""
    else:
        wire.append((b"content-length", str(len(body)).encode()))
    await send_response(send, status, wire, body)
