"""HTTP API routes: route keys, and how a request picks its route.

API Gateway developer guide, "Working with routes for HTTP APIs": a route key is `$default`
or `METHOD /path`, where METHOD is an HTTP method or ANY and path segments may be `{name}`
parameters, the last one possibly a greedy `{name+}`. A request goes to the most specific
match: a route without parameters beats one with `{param}` (segment by segment, literal
first), which beats a greedy `{proxy+}` route; a route for the method beats ANY; `$default`
catches what nothing else matches. Integrations (`TimeoutInMillis` 50-30000, payload format
1.0 or 2.0) follow "Create AWS Lambda proxy integrations for HTTP APIs".
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import unquote

from corral.model.errors import InvalidParameterValueException

DEFAULT_ROUTE = "$default"
ANY = "ANY"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", ANY})
PAYLOAD_FORMATS = ("1.0", "2.0")
TIMEOUT_MIN_MS = 50
TIMEOUT_MAX_MS = 30_000  # also the default: API Gateway's integration timeout
ROUTE_KEY_MAX_LEN = 512
_PARAM = re.compile(r"\{([A-Za-z0-9._-]+)(\+?)\}")
_LITERAL = re.compile(r"[A-Za-z0-9._~:@!$&'()*,;=%-]+")


def new_route_id() -> str:
    """7 lowercase letters and digits, like API Gateway's route ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(7))


@dataclass(frozen=True, slots=True)
class Route:
    route_id: str
    route_key: str
    function_name: str  # a name, name:alias or an ARN: what the integration invokes
    payload_format: str = "2.0"
    timeout_ms: int = TIMEOUT_MAX_MS
    created: str = ""

    @property
    def method(self) -> str | None:
        return None if self.route_key == DEFAULT_ROUTE else self.route_key.split(" ", 1)[0]

    @property
    def path(self) -> str | None:
        return None if self.route_key == DEFAULT_ROUTE else self.route_key.split(" ", 1)[1]

    def to_wire(self) -> dict:
        return {
            "RouteId": self.route_id,
            "RouteKey": self.route_key,
            "FunctionName": self.function_name,
            "PayloadFormatVersion": self.payload_format,
            "TimeoutInMillis": self.timeout_ms,
            "CreatedDate": self.created,
        }

    @classmethod
    def from_wire(cls, wire: dict) -> Route:
        return cls(
            wire["RouteId"],
            wire["RouteKey"],
            wire["FunctionName"],
            wire.get("PayloadFormatVersion", "2.0"),
            int(wire.get("TimeoutInMillis", TIMEOUT_MAX_MS)),
            wire.get("CreatedDate", ""),
        )


def check_route(route_key: object, payload_format: object, timeout_ms: object) -> str:
    """Validate a new route's settings; returns the route key in canonical form
    (method upper-cased). Raises InvalidParameterValueException with the reason."""
    if not isinstance(route_key, str) or not route_key:
        raise InvalidParameterValueException("RouteKey is required, e.g. 'GET /items/{id}'.")
    if len(route_key) > ROUTE_KEY_MAX_LEN:
        raise InvalidParameterValueException(
            f"RouteKey must be at most {ROUTE_KEY_MAX_LEN} characters."
        )
    if payload_format not in PAYLOAD_FORMATS:
        raise InvalidParameterValueException(
            f"PayloadFormatVersion must be 1.0 or 2.0, not {payload_format!r}."
        )
    if (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not TIMEOUT_MIN_MS <= timeout_ms <= TIMEOUT_MAX_MS
    ):
        raise InvalidParameterValueException(
            f"TimeoutInMillis must be an integer from {TIMEOUT_MIN_MS} to {TIMEOUT_MAX_MS}."
        )
    if route_key == DEFAULT_ROUTE:
        return route_key
    method, _, path = route_key.partition(" ")
    method = method.upper()
    if method not in METHODS or not path:
        raise InvalidParameterValueException(
            f"Invalid RouteKey {route_key!r}: expected '$default' or 'METHOD /path' with "
            f"METHOD one of {', '.join(sorted(METHODS))}."
        )
    if not path.startswith("/") or " " in path:
        raise InvalidParameterValueException(
            f"Invalid RouteKey {route_key!r}: the path must start with '/'."
        )
    segments = path.split("/")[1:]
    names: set[str] = set()
    for i, segment in enumerate(segments):
        if segment == "" and path != "/":
            raise InvalidParameterValueException(
                f"Invalid RouteKey {route_key!r}: empty path segment."
            )
        m = _PARAM.fullmatch(segment)
        if m:
            if m.group(2) and i != len(segments) - 1:
                raise InvalidParameterValueException(
                    f"Invalid RouteKey {route_key!r}: a greedy path variable must be last."
                )
            if m.group(1) in names:
                raise InvalidParameterValueException(
                    f"Invalid RouteKey {route_key!r}: path variable {m.group(1)} repeats."
                )
            names.add(m.group(1))
        elif segment and not _LITERAL.fullmatch(segment):
            raise InvalidParameterValueException(
                f"Invalid RouteKey {route_key!r}: invalid path segment {segment!r}."
            )
    return f"{method} {path}"


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    method: str
    literal: tuple[str | None, ...]  # None where a {param} is
    names: tuple[str | None, ...]
    greedy: str | None  # the name of a trailing {name+}

    def match(self, segments: list[str]) -> dict[str, str] | None:
        fixed = len(self.literal)
        if self.greedy is None:
            if len(segments) != fixed:
                return None
        elif len(segments) <= fixed:
            return None
        params: dict[str, str] = {}
        for segment, literal, name in zip(segments, self.literal, self.names, strict=False):
            if literal is None:
                if not segment:
                    return None
                params[name] = unquote(segment)  # type: ignore[index]
            elif literal != segment:
                return None
        if self.greedy is not None:
            rest = "/".join(segments[fixed:])
            if not rest:  # a greedy variable catches child resources: at least one character
                return None
            params[self.greedy] = unquote(rest)
        return params

    def rank(self) -> tuple:
        """Smaller is more specific."""
        return (
            self.greedy is not None,
            -len(self.literal) if self.greedy is not None else 0,
            tuple(literal is None for literal in self.literal),
            self.method == ANY,
        )


def _compile(route: Route) -> _Compiled:
    path = route.path or "/"
    segments = path.split("/")[1:]
    greedy = None
    m = _PARAM.fullmatch(segments[-1]) if segments else None
    if m and m.group(2):
        greedy = m.group(1)
        segments = segments[:-1]
    literal: list[str | None] = []
    names: list[str | None] = []
    for segment in segments:
        p = _PARAM.fullmatch(segment)
        literal.append(None if p else segment)
        names.append(p.group(1) if p else None)
    return _Compiled(route, route.method or ANY, tuple(literal), tuple(names), greedy)


class RouteTable:
    """Routes compiled once; `match` picks the most specific route for a request."""

    def __init__(self, routes: list[Route]) -> None:
        self.default: Route | None = None
        self.compiled: list[_Compiled] = []
        for route in routes:
            if route.route_key == DEFAULT_ROUTE:
                self.default = route
            else:
                self.compiled.append(_compile(route))
        self.compiled.sort(key=_Compiled.rank)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for `method path` (the path as received, percent-encoded) and its
        decoded path parameters, or None (API Gateway's 404)."""
        segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
        for compiled in self.compiled:
            if compiled.method != ANY and compiled.method != method:
                continue
            params = compiled.match(segments)
            if params is not None:
                return compiled.route, params
        if self.default is not None:
            return self.default, {}
        return None
