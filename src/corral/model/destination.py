"""The record Lambda sends to an asynchronous invocation's destination.

Lambda developer guide, "Capturing records of Lambda asynchronous invocations": version,
timestamp, requestContext {requestId, functionArn, condition, approximateInvokeCount},
requestPayload, responseContext {statusCode, executedVersion, functionError},
responsePayload. Payloads are embedded as JSON when they are JSON, else as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"


def _embedded(payload: bytes) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")


def destination_record(
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    executed_version: str | None = None,
    response_payload: bytes | None = None,
    function_error: str | None = None,
    now: datetime | None = None,
) -> bytes:
    now = now or datetime.now(UTC)
    record: dict = {
        "version": "1.0",
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _embedded(request_payload),
    }
    if executed_version is not None:
        context: dict = {"statusCode": 200, "executedVersion": executed_version}
        if function_error:
            context["functionError"] = function_error
        record["responseContext"] = context
        record["responsePayload"] = _embedded(response_payload or b"null")
    return orjson.dumps(record)
