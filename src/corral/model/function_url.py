"""Function URLs: the configuration (botocore shape FunctionUrlConfig) and its CORS rules.

Lambda developer guide, "Creating and managing Lambda function URLs" and "Cross-origin
resource sharing (CORS)": with a Cors configuration Lambda answers preflight requests
itself and adds the CORS headers to every response, replacing any the function set.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from corral.model.arn import LATEST, Scope
from corral.model.errors import InvalidParameterValueException

AUTH_NONE = "NONE"
AUTH_IAM = "AWS_IAM"
BUFFERED = "BUFFERED"
RESPONSE_STREAM = "RESPONSE_STREAM"
URL_ID_LENGTH = 32
_URL_ID_ALPHABET = string.ascii_lowercase + string.digits
_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "*"})
_CORS_RESPONSE_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
)


def new_url_id() -> str:
    """32 random lowercase letters and digits, like Lambda's <url-id>."""
    return "".join(secrets.choice(_URL_ID_ALPHABET) for _ in range(URL_ID_LENGTH))


def timestamp(now: datetime | None = None) -> str:
    """CreationTime / LastModifiedTime as Lambda writes them (ISO-8601, microseconds, Z)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Cors:
    allow_credentials: bool = False
    allow_headers: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def from_wire(cls, wire: dict) -> Cors:
        methods = tuple(m.upper() for m in wire.get("AllowMethods") or ())
        bad = [m for m in methods if m not in _METHODS]
        if bad:
            raise InvalidParameterValueException(
                f"AllowMethods contains an invalid HTTP method: {bad[0]}. Valid values are "
                "GET, PUT, HEAD, POST, PATCH, DELETE, OPTIONS and *."
            )
        return cls(
            allow_credentials=bool(wire.get("AllowCredentials", False)),
            allow_headers=tuple(wire.get("AllowHeaders") or ()),
            allow_methods=methods,
            allow_origins=tuple(wire.get("AllowOrigins") or ()),
            expose_headers=tuple(wire.get("ExposeHeaders") or ()),
            max_age=wire.get("MaxAge"),
        )

    def to_wire(self) -> dict:
        wire: dict = {}
        if self.allow_credentials:
            wire["AllowCredentials"] = True
        for key, values in (
            ("AllowHeaders", self.allow_headers),
            ("AllowMethods", self.allow_methods),
            ("AllowOrigins", self.allow_origins),
            ("ExposeHeaders", self.expose_headers),
        ):
            if values:
                wire[key] = list(values)
        if self.max_age is not None:
            wire["MaxAge"] = self.max_age
        return wire

    # ---- applying it ------------------------------------------------------------------

    def _allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request's Origin, or None."""
        if not origin:
            return None
        if "*" in self.allow_origins:
            return origin if self.allow_credentials else "*"
        lowered = origin.lower()
        if any(o.rstrip("/").lower() == lowered for o in self.allow_origins):
            return origin
        return None

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of an actual (non-preflight) response."""
        allowed = self._allowed_origin(origin)
        if allowed is None:
            return []
        headers = [("access-control-allow-origin", allowed)]
        if allowed != "*":
            headers.append(("vary", "Origin"))
        if self.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def preflight_headers(
        self, origin: str | None, method: str | None, request_headers: str | None
    ) -> list[tuple[str, str]]:
        """The headers of Lambda's own answer to a preflight OPTIONS request: none when the
        origin or the requested method is not allowed (the browser then refuses)."""
        allowed = self._allowed_origin(origin)
        if allowed is None or not method:
            return []
        if "*" not in self.allow_methods and method.upper() not in self.allow_methods:
            return []
        headers = [("access-control-allow-origin", allowed)]
        if allowed != "*":
            headers.append(("vary", "Origin"))
        methods = ",".join(self.allow_methods) if self.allow_methods else method.upper()
        headers.append(("access-control-allow-methods", methods))
        if self.allow_headers:
            if "*" in self.allow_headers and request_headers:
                headers.append(("access-control-allow-headers", request_headers))
            else:
                headers.append(("access-control-allow-headers", ",".join(self.allow_headers)))
        if self.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers


def without_cors_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A function's response headers minus its own CORS ones (the configuration wins)."""
    return [(n, v) for n, v in headers if n not in _CORS_RESPONSE_HEADERS]


@dataclass(frozen=True, slots=True)
class FunctionUrl:
    url_id: str
    function_name: str
    qualifier: str | None  # an alias, or None for the unqualified function ($LATEST)
    auth_type: str
    creation_time: str
    last_modified_time: str
    invoke_mode: str = BUFFERED
    cors: Cors | None = None

    def replace(self, **changes: object) -> FunctionUrl:
        return dataclasses.replace(self, **changes)

    def to_wire(self, scope: Scope, url: str, last_modified: bool = True) -> dict:
        wire: dict = {
            "FunctionUrl": url,
            "FunctionArn": scope.function_arn(self.function_name, self.qualifier),
            "AuthType": self.auth_type,
        }
        if self.cors is not None:
            wire["Cors"] = self.cors.to_wire()
        wire["CreationTime"] = self.creation_time
        if last_modified:
            wire["LastModifiedTime"] = self.last_modified_time
        wire["InvokeMode"] = self.invoke_mode
        return wire

    def to_record(self) -> dict:
        return {
            "url_id": self.url_id,
            "function_name": self.function_name,
            "qualifier": self.qualifier,
            "auth_type": self.auth_type,
            "creation_time": self.creation_time,
            "last_modified_time": self.last_modified_time,
            "invoke_mode": self.invoke_mode,
            "cors": None if self.cors is None else self.cors.to_wire(),
        }

    @classmethod
    def from_record(cls, record: dict) -> FunctionUrl:
        cors = record.get("cors")
        return cls(
            url_id=record["url_id"],
            function_name=record["function_name"],
            qualifier=record.get("qualifier"),
            auth_type=record["auth_type"],
            creation_time=record["creation_time"],
            last_modified_time=record["last_modified_time"],
            invoke_mode=record.get("invoke_mode") or BUFFERED,
            cors=None if cors is None else Cors.from_wire(cors),
        )


def check_auth_type(auth_type: str) -> None:
    """AWS_IAM needs SigV4 checks Corral does not make yet: refused rather than ignored."""
    if auth_type == AUTH_IAM:
        raise InvalidParameterValueException(
            "AuthType AWS_IAM is not supported by Corral yet: it has no IAM authentication, "
            "so the URL could not be protected. Use AuthType NONE."
        )


def url_qualifier(qualifier: str | None) -> str | None:
    """The qualifier a function URL may have: an alias or $LATEST (stored as None)."""
    if qualifier is None or qualifier == LATEST:
        return None
    if qualifier.isdigit():
        raise InvalidParameterValueException(
            "Function URLs can be configured for $LATEST or an alias only, "
            f"not for a function version: {qualifier}"
        )
    return qualifier
