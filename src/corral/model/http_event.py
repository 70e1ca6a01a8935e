"""HTTP requests as Lambda events, and Lambda results as HTTP responses.

Function URLs and API Gateway HTTP APIs hand a function the request in "payload format
2.0" (or, for HTTP API routes that ask for it, the REST-API-style 1.0) and turn what the
function returns into the HTTP response. Sources: the Lambda developer guide, "Invoking
Lambda function URLs" (request and response payloads, cookies), and the API Gateway
developer guide, "Create AWS Lambda proxy integrations for HTTP APIs" (both formats).

Pure: the caller passes the request as received, the time and the ids; nothing here does
I/O.
"""

from __future__ import annotations

import base64
import binascii
import time as _time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

import orjson

DEFAULT_ROUTE = "$default"
DEFAULT_STAGE = "$default"

# Content types whose bodies reach the function as text; everything else (and a body
# without a content type) is base64-encoded with isBase64Encoded true, so bytes round-trip.
_TEXT_TYPES = frozenset(
    {"application/json", "application/javascript", "application/ecmascript", "application/xml"}
)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as the front door received it. `raw_path` keeps its percent-encoding;
    header names are lower-case, in the order received, repeated names repeated."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class EventContext:
    """What the platform adds to the request: where it arrived and who handles it."""

    account_id: str
    api_id: str
    domain_name: str
    request_id: str
    route_key: str = DEFAULT_ROUTE
    stage: str = DEFAULT_STAGE
    resource_path: str | None = None  # the route's path template (format 1.0's `resource`)
    path_parameters: dict[str, str] | None = None
    now_s: float | None = None


def is_text(content_type: str | None) -> bool:
    """Whether a body of this content type is passed as text (not base64)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+json")
        or media.endswith("+xml")
    )


def _body(request: HttpRequest) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    if is_text(request.header("content-type")):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    return parse_qsl(raw_query, keep_blank_values=True) if raw_query else []


_stamps: dict[int, str] = {}  # formatted once per second, not per request


def _times(ctx: EventContext) -> tuple[str, int]:
    now = _time.time() if ctx.now_s is None else ctx.now_s
    second = int(now)
    stamp = _stamps.get(second)
    if stamp is None:
        if len(_stamps) > 4:
            _stamps.clear()
        stamp = _stamps[second] = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime(second))
    return stamp, int(now * 1000)


def _domain_prefix(domain_name: str) -> str:
    return domain_name.split(".", 1)[0]


def event_v2(request: HttpRequest, ctx: EventContext) -> dict:
    """Payload format 2.0: headers lower-cased with repeated ones comma-joined, cookies
    from the Cookie header(s) in their own list, repeated query keys comma-joined."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif name in headers:
            headers[name] += "," + value
        else:
            headers[name] = value
    stamp, epoch_ms = _times(ctx)
    event: dict = {
        "version": "2.0",
        "routeKey": ctx.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    pairs = _query_pairs(request.raw_query)
    if pairs:
        query: dict[str, str] = {}
        for key, value in pairs:
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ctx.account_id,
        "apiId": ctx.api_id,
        "domainName": ctx.domain_name,
        "domainPrefix": _domain_prefix(ctx.domain_name),
        "http": {
            "method": request.method,
            "path": unquote(request.raw_path),
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": ctx.request_id,
        "routeKey": ctx.route_key,
        "stage": ctx.stage,
        "time": stamp,
        "timeEpoch": epoch_ms,
    }
    body, encoded = _body(request)
    if body is not None:
        event["body"] = body
    if ctx.path_parameters:
        event["pathParameters"] = ctx.path_parameters
    event["isBase64Encoded"] = encoded
    return event


def event_v1(request: HttpRequest, ctx: EventContext) -> dict:
    """Payload format 1.0 (the REST-API-style event): single- and multi-value headers and
    query parameters side by side (the single-value maps hold the last value)."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in _query_pairs(request.raw_query):
        query[key] = value
        multi_query.setdefault(key, []).append(value)
    stamp, epoch_ms = _times(ctx)
    path = unquote(request.raw_path)
    resource = ctx.resource_path or path
    body, encoded = _body(request)
    return {
        "version": "1.0",
        "resource": resource,
        "path": path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": {
            "accountId": ctx.account_id,
            "apiId": ctx.api_id,
            "domainName": ctx.domain_name,
            "domainPrefix": _domain_prefix(ctx.domain_name),
            "extendedRequestId": ctx.request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": headers.get("user-agent", ""),
                "userArn": None,
            },
            "path": path,
            "protocol": request.protocol,
            "requestId": ctx.request_id,
            "requestTime": stamp,
            "requestTimeEpoch": epoch_ms,
            "resourceId": ctx.route_key,
            "resourcePath": resource,
            "stage": ctx.stage,
        },
        "pathParameters": ctx.path_parameters or None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": encoded,
    }


# ---- responses --------------------------------------------------------------------------


class MalformedResponse(ValueError):
    """The function's result cannot be turned into an HTTP response."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _header_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise MalformedResponse(f"header value {value!r} is not a string")


# Statuses whose responses have no body (RFC 9110, 6.4.1).
NO_BODY_STATUSES = frozenset({204, 304})


def is_final_status(value: object) -> bool:
    """Whether a function's statusCode can be the status of its response: any final status
    200-599, named or not (299, 420, 499 pass through, as behind Lambda and API Gateway);
    1xx are interim responses, not one a function can give."""
    return isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599


def _status(value: object) -> int:
    if not is_final_status(value):
        raise MalformedResponse(f"statusCode {value!r} is not an HTTP status")
    return value  # type: ignore[return-value]


def _response_body(result: dict) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        body = orjson.dumps(body).decode()
    if result.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponse("body is not valid base64") from None
    return body.encode("utf-8")


def response_v2(payload: bytes) -> HttpResponse:
    """Lambda's reading of a function's result for a function URL or a 2.0 route: a JSON
    object with `statusCode` describes the response (headers, cookies as Set-Cookie each,
    body, isBase64Encoded); any other result is a 200 application/json response whose body
    is the result as the function returned it."""
    result = None
    if payload[:1] == b"{" or payload[:1].isspace():
        try:
            result = orjson.loads(payload)
        except orjson.JSONDecodeError:
            result = None
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpResponse(200, [("content-type", "application/json")], payload)
    status = _status(result["statusCode"])
    headers = result.get("headers") or {}
    cookies = result.get("cookies") or []
    if not isinstance(headers, dict) or not isinstance(cookies, list):
        raise MalformedResponse("headers must be an object and cookies a list")
    out = [(str(name).lower(), _header_value(value)) for name, value in headers.items()]
    out += [("set-cookie", _header_value(cookie)) for cookie in cookies]
    return HttpResponse(status, out, _response_body(result))


def response_v1(payload: bytes) -> HttpResponse:
    """Format 1.0: the result must be an object with `statusCode`; `headers` and
    `multiValueHeaders` are merged (a name in both gets every value)."""
    try:
        result = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise MalformedResponse("the result is not JSON") from None
    if not isinstance(result, dict) or "statusCode" not in result:
        raise MalformedResponse("the result has no statusCode")
    status = _status(result["statusCode"])
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponse("headers and multiValueHeaders must be objects")
    out: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedResponse("multiValueHeaders values must be lists")
        out += [(str(name).lower(), _header_value(v)) for v in values]
    seen = {name for name, _ in out}
    out += [
        (str(name).lower(), _header_value(value))
        for name, value in single.items()
        if str(name).lower() not in seen
    ]
    return HttpResponse(status, out, _response_body(result))


def error_body(message: str) -> bytes:
    """API Gateway's and function URLs' own error bodies: `{"message": "..."}`."""
    return orjson.dumps({"message": message})
