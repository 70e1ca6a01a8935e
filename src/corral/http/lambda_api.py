"""The Lambda REST API (rest-json, 2015-03-31): route, parse, call a service, render.

Routes are compiled once from the botocore model's requestUri templates. Inputs are
gathered from path, query, headers and JSON body by the model's member locations and
validated against it before any handler runs. Invoke has its own lean path: no JSON
parsing, payload bytes passed through untouched.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson

from corral.control.functions import FunctionService
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
from corral.http.service_model import ServiceModel
from corral.invoke.service import (
    InvokeOutcome,
    InvokeRequest,
    InvokeService,
    request_too_large,
)
from corral.model import limits
from corral.model.arn import Scope as AccountScope
from corral.model.arn import parse_function_ref
from corral.model.errors import (
    InvalidRequestContentException,
    LambdaError,
    RequestEntityTooLargeException,
    UnknownOperationException,
    UnsupportedMediaTypeException,
)
from corral.model.function import FunctionConfig
from corral.model.invocation import new_request_id
from corral.model.validation import InputValidator

Handler = Callable[[dict, "ApiRequest"], Awaitable[tuple[int, object]]]
# An operation that answers through ASGI itself (a streamed response): it gets the scope,
# receive, send, the path parameters and the request id, reads the body itself, and may
# raise LambdaError only before it starts its response.
RawHandler = Callable[[Scope, Receive, Send, dict, str], Awaitable[None]]

_INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]+)/invocations/?")
_INVOCATION_TYPES = frozenset({"RequestResponse", "Event", "DryRun"})
_LOG_TYPES = frozenset({"None", "Tail"})
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What a control-plane handler may need beyond its parsed input."""

    base_url: str
    request_id: str


@dataclass(frozen=True, slots=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    input_shape: str | None
    status: int
    query: tuple[tuple[str, str], ...] = ()  # static query a template requires (?List=ALL)


def _static_query(template: str) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(template.partition("?")[2]))


def _compile(template: str) -> re.Pattern[str]:
    path = template.split("?", 1)[0].rstrip("/")
    regex = re.sub(
        r"\{(\w+)\+\}", r"(?P<\1>.+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
    )
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(regex + "/?")


class LambdaApi:
    """ASGI app for `/2015-03-31/...` and the other dated Lambda API prefixes."""

    def __init__(
        self,
        model: ServiceModel,
        validator: InputValidator,
        functions: FunctionService,
        invoker: InvokeService,
        scope: AccountScope,
    ) -> None:
        self.model = model
        self.validator = validator
        self.functions = functions
        self.invoker = invoker
        self.scope = scope
        self.handlers: dict[str, Handler] = {
            "CreateFunction": self.create_function,
            "GetFunction": self.get_function,
            "GetFunctionConfiguration": self.get_function_configuration,
            "ListFunctions": self.list_functions,
            "UpdateFunctionCode": self.update_function_code,
            "UpdateFunctionConfiguration": self.update_function_configuration,
            "DeleteFunction": self.delete_function,
            "InvokeAsync": self.invoke_async,
            "PublishVersion": self.publish_version,
            "ListVersionsByFunction": self.list_versions_by_function,
        }
        self.raw_handlers: dict[str, RawHandler] = {}
        routes = [
            _Route(
                op.name,
                op.method,
                _compile(op.request_uri),
                op.input_shape,
                op.response_code,
                _static_query(op.request_uri),
            )
            for op in model.operations.values()
        ]
        # literal segments first, so /functions/{F}/configuration beats /functions/{F}, and
        # among equal paths the ones that require a static query (?List=ALL) first
        routes.sort(
            key=lambda r: (
                -r.pattern.pattern.count("/"),
                r.pattern.pattern.count("(?P"),
                -len(r.query),
            )
        )
        self.routes: dict[str, list[_Route]] = {}
        for route in routes:
            self.routes.setdefault(route.method, []).append(route)

    def register(self, handlers: dict[str, Handler]) -> None:
        """Add handlers for more operations (by botocore operation name). Called by the
        composition root, so that each control-plane surface keeps its own module."""
        self.handlers.update(handlers)

    def register_raw(self, handlers: dict[str, RawHandler]) -> None:
        """Add operations that send their own (streamed) responses: see RawHandler."""
        self.raw_handlers.update(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        path = scope["path"]
        try:
            if scope["method"] == "POST" and (m := _INVOKE_PATH.fullmatch(path)):
                await self._invoke(scope, receive, send, m.group(1), request_id)
                return
            route, params = self._route(scope["method"], path, scope["query_string"])
            if (raw := self.raw_handlers.get(route.operation)) is not None:
                await raw(scope, receive, send, params, request_id)
                return
            status, body = await self._call(route, params, scope, receive, request_id)
        except Exception as exc:
            await send_response(send, *render_error(exc, request_id))
            return
        payload = b"" if body is None else orjson.dumps(body)
        headers: Headers = [_JSON, (b"x-amzn-requestid", request_id.encode())]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send_response(send, status, headers, payload)

    # ---- routing and input ------------------------------------------------------

    def _route(self, method: str, path: str, query: bytes) -> tuple[_Route, dict[str, str]]:
        for route in self.routes.get(method, ()):
            m = route.pattern.fullmatch(path)
            if m and (not route.query or set(route.query) <= set(_query_pairs(query))):
                return route, m.groupdict()
        raise UnknownOperationException(f"No Lambda operation matches {method} {path}")

    async def _call(
        self, route: _Route, path_params: dict, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[int, object]:
        handler = self.handlers.get(route.operation)
        if handler is None:
            raise UnknownOperationException(f"Corral does not implement {route.operation} yet.")
        limit = limits.CREATE_REQUEST_MAX_BYTES
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            raise RequestEntityTooLargeException(
                f"Request must be smaller than {limit} bytes for the {route.operation} operation"
            ) from None
        params = self._input(route, path_params, scope, body)
        if route.input_shape:
            self.validator.validate(route.input_shape, params)
        host = _header(scope, b"host") or "127.0.0.1"
        api_request = ApiRequest(f"http://{host}", request_id)
        status, result = await handler(params, api_request)
        return status or route.status, result

    def _input(self, route: _Route, path_params: dict, scope: Scope, body: bytes) -> dict:
        """The operation's input members from wherever the model says they travel."""
        shape = self.model.shapes.get(route.input_shape or "", {})
        members = shape.get("members", {})
        query: dict[str, list[str]] = {}
        for key, value in _query_pairs(scope["query_string"]):
            query.setdefault(key, []).append(value)
        params: dict = {}
        if body and not shape.get("payload"):
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequestContentException(
                    f"Could not parse request body into json: {exc}"
                ) from None
            if not isinstance(parsed, dict):
                raise InvalidRequestContentException(
                    "Could not parse request body into json: the body must be a JSON object"
                )
            params.update(parsed)
        for member, spec in members.items():
            location, wire_name = spec.get("location"), spec.get("locationName", member)
            if location == "uri":
                params[member] = path_params.get(wire_name, path_params.get(member))
            elif location == "querystring" and wire_name in query:
                params[member] = self._query_value(spec, query[wire_name])
            elif location == "header" and (value := _header(scope, wire_name.lower().encode())):
                params[member] = value
        if shape.get("payload") and body:
            params[shape["payload"]] = body
        return params

    def _query_value(self, spec: dict, values: list[str]) -> object:
        """A query member as its model type: lists take every occurrence (?k=a&k=b), other
        types the last one."""
        shape = self.model.shapes.get(spec["shape"], {})
        kind = shape.get("type")
        if kind == "list":
            return values
        value = values[-1]
        if kind in ("integer", "long"):
            try:
                return int(value)
            except ValueError:
                return value  # the validator reports the type mismatch
        if kind == "boolean":
            return value.lower() == "true"
        return value

    def _name(self, params: dict) -> tuple[str, str | None]:
        ref = parse_function_ref(params["FunctionName"], self.scope, params.get("Qualifier"))
        return ref.name, ref.qualifier

    # ---- control-plane handlers -------------------------------------------------

    def _configuration(self, config: FunctionConfig) -> dict:
        return config.to_wire(self.scope)

    async def create_function(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        ref = parse_function_ref(params["FunctionName"], self.scope)
        params["FunctionName"] = ref.name
        config = await self.functions.create(params)
        return 201, self._configuration(config)

    async def get_function(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        config = self.invoker.aliases.primary(name, qualifier)
        result: dict = {
            "Configuration": self._configuration(config),
            "Code": {
                "RepositoryType": "S3",
                "Location": f"{request.base_url}/corral/v1/code/{config.code_hexdigest}.zip",
            },
        }
        tags = self.functions.tags(name)
        if tags:
            result["Tags"] = tags
        return 200, result

    async def get_function_configuration(self, params: dict, request: ApiRequest):
        name, qualifier = self._name(params)
        return 200, self._configuration(self.invoker.aliases.primary(name, qualifier))

    async def list_functions(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        page = self.functions.list(params.get("Marker"), params.get("MaxItems"))
        result: dict = {"Functions": [self._configuration(c) for c in page.functions]}
        if page.next_marker:
            result["NextMarker"] = page.next_marker
        return 200, result

    async def update_function_code(self, params: dict, request: ApiRequest):
        name, _ = self._name(params)
        return 200, self._configuration(await self.functions.update_code(name, params))

    async def update_function_configuration(self, params: dict, request: ApiRequest):
        name, _ = self._name(params)
        return 200, self._configuration(await self.functions.update_configuration(name, params))

    async def delete_function(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        self.functions.delete(name, qualifier)
        return 204, None

    async def publish_version(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, _ = self._name(params)
        version = await self.functions.publish_version(
            name, params.get("CodeSha256"), params.get("Description"), params.get("RevisionId")
        )
        return 201, self._configuration(version)

    async def list_versions_by_function(self, params: dict, request: ApiRequest):
        name, _ = self._name(params)
        page = self.functions.list_versions(name, params.get("Marker"), params.get("MaxItems"))
        result: dict = {"Versions": [self._configuration(c) for c in page.functions]}
        if page.next_marker:
            result["NextMarker"] = page.next_marker
        return 200, result

    async def invoke_async(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        payload = params.get("InvokeArgs") or b"{}"
        invoke = InvokeRequest(name, qualifier, payload, request.request_id, "Event")
        await self.invoker.invoke(invoke)
        return 202, {"Status": 202}

    # ---- invoke (hot path) --------------------------------------------------------

    async def _invoke(
        self, scope: Scope, receive: Receive, send: Send, function_name: str, request_id: str
    ) -> None:
        # The body is checked first against the larger (sync) limit so that an oversized
        # request is refused before it is read whole; _invoke_request applies the exact one.
        try:
            payload = await read_body(receive, limits.SYNC_REQUEST_MAX_BYTES)
        except BodyTooLarge:
            raise request_too_large(limits.SYNC_REQUEST_MAX_BYTES) from None
        request = self._invoke_request(
            function_name, scope["query_string"], scope["headers"], payload, request_id
        )
        outcome = await self.invoker.invoke(request)
        await send_response(send, *_render_invoke(outcome))

    def fast_path(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        respond: Callable[[int, Headers, bytes], None],
    ) -> bool:
        """Serve a warm RequestResponse invoke without an ASGI task, or return False.

        Called by `corral.http.server` before the ASGI path. Anything that is not the plain
        warm case (an error, a cold start, Event, DryRun) returns False before any side
        effect, and the ASGI path then handles the request from the start.
        """
        if method != "POST" or not (m := _INVOKE_PATH.fullmatch(path)):
            return False
        try:
            request = self._invoke_request(m.group(1), query, headers, body, new_request_id())
        except LambdaError:
            return False
        future = self.invoker.invoke_warm(request)
        if future is None:
            return False
        future.add_done_callback(lambda f: respond(*_render_invoke(f.result())))
        return True

    def _invoke_request(
        self,
        function_name: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        payload: bytes,
        request_id: str,
    ) -> InvokeRequest:
        """Invoke's input from the wire; raises the API errors Lambda gives for bad input."""
        invocation_type, log_type = "RequestResponse", "None"
        client_context = trace = None
        for key, value in headers:
            if key == b"x-amz-invocation-type":
                invocation_type = value.decode("latin-1")
            elif key == b"x-amz-log-type":
                log_type = value.decode("latin-1")
            elif key == b"x-amz-client-context":
                client_context = value.decode("latin-1")
            elif key == b"x-amzn-trace-id":
                trace = value.decode("latin-1")
            elif key == b"content-type" and value.startswith(b"multipart/"):
                raise UnsupportedMediaTypeException("The payload must be JSON or binary.")
        qualifier = dict(parse_qsl(query.decode("latin-1"))).get("Qualifier") if query else None
        if invocation_type not in _INVOCATION_TYPES or log_type not in _LOG_TYPES:
            self.validator.validate(
                "InvocationRequest",
                {
                    "FunctionName": function_name,
                    "InvocationType": invocation_type,
                    "LogType": log_type,
                },
            )
        ref = self._invoke_ref(function_name, qualifier)
        return InvokeRequest(
            ref.name,
            ref.qualifier,
            payload,
            request_id,
            invocation_type,
            log_type == "Tail",
            client_context,
            trace,
        )

    def _invoke_ref(self, function_name: str, qualifier: str | None):
        try:
            return _parse_ref_cached(function_name, self.scope, qualifier)
        except LambdaError:
            self.validator.validate(
                "InvocationRequest", {"FunctionName": function_name, "Qualifier": qualifier}
            )
            raise


_parse_ref_cached = functools.lru_cache(maxsize=4096)(parse_function_ref)


def _render_invoke(outcome: InvokeOutcome) -> tuple[int, Headers, bytes]:
    """Invoke's response: the payload bytes untouched, Lambda's X-Amz-* headers."""
    headers: Headers = [
        _JSON,
        (b"x-amzn-requestid", outcome.request_id.encode()),
        (b"x-amz-executed-version", outcome.executed_version.encode()),
    ]
    result = outcome.result
    if result is None:
        headers.append((b"content-length", b"0"))
        return outcome.status, headers, b""
    if result.function_error:
        headers.append((b"x-amz-function-error", result.function_error.encode()))
    if result.log_tail:
        headers.append((b"x-amz-log-result", base64.b64encode(result.log_tail)))
    headers.append((b"content-length", str(len(result.payload)).encode()))
    return 200, headers, result.payload


def _query_pairs(query: bytes) -> list[tuple[str, str]]:
    return parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def _header(scope: Scope, name: bytes) -> str | None:
    value = header(scope, name)
    return None if value is None else value.decode("latin-1")
