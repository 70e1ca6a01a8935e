"""The one place where an exception becomes an HTTP error response.

A LambdaError is rendered as Lambda does: its status, `x-amzn-ErrorType: <type>` and a
JSON body `{"Type": "User"|"Service", "message": ..., <extra fields>}`, which botocore's
rest-json parser maps to `e.response["Error"]["Code"]`. Anything else is logged with its
traceback and rendered as ServiceException 500.
"""

from __future__ import annotations

import logging

import orjson

from corral.model.errors import LambdaError, ServiceException

log = logging.getLogger("corral.http")


def render_error(
    exc: BaseException, request_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if not isinstance(exc, LambdaError):
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        exc = ServiceException("An internal error occurred. See the Corral server log.")
    body = orjson.dumps({"Type": exc.kind, "message": exc.message, **exc.fields})
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-requestid", request_id.encode()),
        (b"x-amzn-errortype", exc.error_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *exc.headers,
    ]
    return exc.status, headers, body
