"""A CloudWatch Logs compatible subset on Corral's endpoint (AWS JSON 1.1 protocol).

`POST /` with `X-Amz-Target: Logs_20140328.<Operation>` and a JSON body; the answer is
JSON (`application/x-amz-json-1.1`), errors `{"__type": <type>, "message": ...}` with
status 400 (ServiceUnavailableException 500). Operations: DescribeLogGroups,
DescribeLogStreams, GetLogEvents, FilterLogEvents, CreateLogGroup, DeleteLogGroup,
PutRetentionPolicy, DeleteRetentionPolicy. Input is checked against botocore's
logs/2014-03-28 model (loaded on first use) with CloudWatch's wording: constraint
violations are InvalidParameterException, wrong JSON types SerializationException.
"""

from __future__ import annotations

import inspect
import logging

import orjson

from corral.http.asgi import BodyTooLarge, Receive, Scope, Send, read_body, send_response
from corral.http.service_model import ServiceModel
from corral.model import logs as model
from corral.model.arn import Scope as ArnScope
from corral.model.errors import InvalidRequestContentException, LambdaError
from corral.model.invocation import new_request_id
from corral.model.validation import InputValidator
from corral.telemetry import log_queries as queries
from corral.telemetry.logs import FunctionLogs

log = logging.getLogger("corral.http")

TARGET_PREFIX = "Logs_20140328."
_MODEL_DIR = ("data", "logs", "2014-03-28")
_BODY_LIMIT = 1024 * 1024
_CONTENT_TYPE = (b"content-type", b"application/x-amz-json-1.1")


class LogsApi:
    def __init__(self, logs: FunctionLogs, scope: ArnScope) -> None:
        self.logs = logs
        self.scope = scope
        self._validator: InputValidator | None = None
        self._operations = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
            "CreateLogGroup": self.create_log_group,
            "DeleteLogGroup": self.delete_log_group,
            "PutRetentionPolicy": self.put_retention_policy,
            "DeleteRetentionPolicy": self.delete_retention_policy,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send, target: str) -> None:
        request_id = new_request_id()
        try:
            body = await self._handle(target, await read_body(receive, _BODY_LIMIT))
            status = 200
        except BodyTooLarge:
            status, body = self._error(model.InvalidParameterException("Request too large"))
        except model.LogsError as exc:
            status, body = self._error(exc)
        except Exception:
            log.exception("unhandled error in logs request %s", request_id)
            status, body = self._error(model.LogsError("An internal error occurred."))
        headers = [
            _CONTENT_TYPE,
            (b"x-amzn-requestid", request_id.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send_response(send, status, headers, body)

    @staticmethod
    def _error(exc: model.LogsError) -> tuple[int, bytes]:
        return exc.status, orjson.dumps({"__type": exc.error_type, "message": exc.message})

    async def _handle(self, target: str, raw: bytes) -> bytes:
        operation = target[len(TARGET_PREFIX) :]
        handler = self._operations.get(operation)
        if handler is None:
            raise model.UnknownOperationException(f"Unsupported operation: {operation}")
        try:
            params = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise model.SerializationException("The request body is not valid JSON") from None
        if not isinstance(params, dict):
            raise model.SerializationException("The request body must be a JSON object")
        self._validate(f"{operation}Request", params)
        answer = handler(params)
        if inspect.isawaitable(answer):  # a query, answered from a worker thread
            answer = await answer
        return orjson.dumps(answer)

    def _validate(self, shape: str, params: dict) -> None:
        if self._validator is None:  # ~30 ms, once: most servers never serve this API
            shapes = dict(ServiceModel.load(_MODEL_DIR).shapes)
            # Tags are accepted and ignored: their key pattern (\p{L}...) is Java-only regex.
            create = shapes["CreateLogGroupRequest"]
            members = {k: v for k, v in create["members"].items() if k != "tags"}
            shapes["CreateLogGroupRequest"] = {**create, "members": members}
            self._validator = InputValidator(shapes, rules={})
        try:
            self._validator.validate(shape, params)
        except InvalidRequestContentException as exc:
            raise model.SerializationException(exc.message) from None
        except LambdaError as exc:
            raise model.InvalidParameterException(exc.message) from None

    def _group(self, params: dict) -> str:
        name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
        if name and identifier:
            raise model.InvalidParameterException(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters."
            )
        if identifier:
            prefix = queries.group_arn(self.scope, "")
            if identifier.startswith("arn:"):
                if not identifier.startswith(prefix):
                    raise model.group_not_found()
                identifier = identifier[len(prefix) :].removesuffix(":*")
            return identifier
        if not name:
            raise model.InvalidParameterException(
                "Either logGroupName or logGroupIdentifier should be provided."
            )
        return name

    # ---- operations -------------------------------------------------------------------

    async def describe_log_groups(self, p: dict) -> dict:
        prefix, pattern = p.get("logGroupNamePrefix"), p.get("logGroupNamePattern")
        if prefix and pattern:
            raise model.InvalidParameterException(
                "logGroupNamePrefix and logGroupNamePattern are mutually exclusive parameters."
            )
        limit = p.get("limit", model.DESCRIBE_LIMIT_MAX)
        token = p.get("nextToken")
        return await self.logs.query(
            lambda db: queries.describe_groups(
                db, self.scope, prefix or "", pattern or "", limit, token
            )
        )

    async def describe_log_streams(self, p: dict) -> dict:
        group = self._group(p)
        by_last_event = p.get("orderBy", "LogStreamName") == "LastEventTime"
        prefix = p.get("logStreamNamePrefix") or ""
        if by_last_event and prefix:
            raise model.InvalidParameterException(
                "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        descending = bool(p.get("descending", False))
        limit, token = p.get("limit", model.DESCRIBE_LIMIT_MAX), p.get("nextToken")
        return await self.logs.query(
            lambda db: queries.describe_streams(
                db, self.scope, group, prefix, by_last_event, descending, limit, token
            )
        )

    async def get_log_events(self, p: dict) -> dict:
        group, stream, time_range = self._group(p), p["logStreamName"], _time_range(p)
        from_head = bool(p.get("startFromHead", False))
        limit, token = p.get("limit", model.EVENTS_LIMIT_MAX), p.get("nextToken")
        return await self.logs.query(
            lambda db: queries.get_events(db, group, stream, time_range, from_head, limit, token)
        )

    async def filter_log_events(self, p: dict) -> dict:
        group = self._group(p)
        names, prefix = p.get("logStreamNames"), p.get("logStreamNamePrefix")
        if names is not None and prefix:
            raise model.InvalidParameterException(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."
            )
        pattern = model.parse_filter_pattern(p.get("filterPattern"))
        time_range = _time_range(p)
        limit, token = p.get("limit", model.EVENTS_LIMIT_MAX), p.get("nextToken")

        def run(db) -> dict:
            streams = queries.select_streams(db, group, names, prefix)
            return queries.filter_events(db, group, streams, time_range, pattern, limit, token)

        return await self.logs.query(run)

    def create_log_group(self, p: dict) -> dict:
        if not self.logs.db.create_group(p["logGroupName"], model.now_ms()):
            raise model.ResourceAlreadyExistsException("The specified log group already exists")
        return {}

    def delete_log_group(self, p: dict) -> dict:
        if not self.logs.delete_group(p["logGroupName"]):
            raise model.group_not_found()
        return {}

    def put_retention_policy(self, p: dict) -> dict:
        days = model.check_retention(p["retentionInDays"])
        if not self.logs.db.set_retention(p["logGroupName"], days):
            raise model.group_not_found()
        self.logs.sweep()
        return {}

    def delete_retention_policy(self, p: dict) -> dict:
        if not self.logs.db.set_retention(p["logGroupName"], None):
            raise model.group_not_found()
        return {}


def _time_range(p: dict) -> tuple[int, int]:
    """[startTime, endTime]; GetLogEvents leaves endTime itself out, FilterLogEvents not."""
    start = p.get("startTime", 0)
    end = p.get("endTime", 1 << 62)
    if start > end:
        raise model.InvalidParameterException("endTime must not be before startTime.")
    return start, end
