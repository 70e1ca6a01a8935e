"""LoggingConfig's JSON log format and log levels, and trace ids, end to end: what the
Python runtime and the platform write to the log group, and what the function sees."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import logs_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
HANDLER = """
import logging, os, sys

logger = logging.getLogger("app")

def handler(event, context):
    logger.debug("debug line")
    logger.info("info line")
    logger.warning("warned %s", 1)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("caught")
    print("plain print")
    print("stderr line", file=sys.stderr, flush=True)
    print('{"level": "debug", "msg": "printed debug"}')
    print('{"level": "error", "msg": "printed error"}')
    if event.get("fail"):
        raise KeyError("failed on purpose")
    return {
        "format": os.environ.get("AWS_LAMBDA_LOG_FORMAT"),
        "level": os.environ.get("AWS_LAMBDA_LOG_LEVEL"),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(30)\n"


@pytest.fixture(scope="module")
def logs(corral_url):
    return logs_client(corral_url)


def _create(lam, **kw) -> str:
    name = f"fmt-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
        **kw,
    )
    return name


def _invoke(lam, name: str, **event) -> tuple[str, dict]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response["ResponseMetadata"]["RequestId"], json.loads(response["Payload"].read())


def _log(logs, name: str, done) -> list[str]:
    """The function's messages once `done(messages)` holds."""

    def ready():
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except ClientError:
            return None
        messages = [e["message"] for e in events]
        return messages if done(messages) else None

    return wait_until(ready, what=f"the log of {name}")


def _records(messages: list[str]) -> list[dict]:
    return [json.loads(m) for m in messages if m.startswith("{")]


def test_json_format_writes_lambda_records_filtered_by_application_level(lam, logs):
    name = _create(
        lam,
        LoggingConfig={
            "LogFormat": "JSON",
            "ApplicationLogLevel": "WARN",
            "SystemLogLevel": "INFO",
        },
    )
    request_id, got = _invoke(lam, name)
    assert (got["format"], got["level"]) == ("JSON", "WARN")
    messages = _log(logs, name, lambda ms: any('"platform.report"' in m for m in ms))
    records = _records(messages)

    init_start, init_report, start = records[:3]
    assert init_start["type"] == "platform.initStart" and STAMP.match(init_start["time"])
    assert init_start["record"]["initializationType"] == "on-demand"
    assert init_start["record"]["runtimeVersion"].startswith("python:3.11.")
    assert init_start["record"]["functionName"] == name
    assert init_report["type"] == "platform.initReport"
    assert init_report["record"]["status"] == "success"
    assert init_report["record"]["metrics"]["durationMs"] > 0
    assert start["type"] == "platform.start" and STAMP.match(start["time"])
    assert start["record"] == {"requestId": request_id, "version": "$LATEST"}
    app = [r for r in records if "logger" in r]
    assert [(r["level"], r["message"], r["logger"]) for r in app] == [
        ("WARNING", "warned 1", "app"),
        ("ERROR", "caught", "app"),
    ]
    assert all(r["requestId"] == request_id and STAMP.match(r["timestamp"]) for r in app)
    assert (app[1]["errorType"], app[1]["errorMessage"]) == ("ValueError", "boom")
    assert app[1]["stackTrace"] and "location" in app[1]
    # Lines without a level (print(), other output) are INFO, below WARN: dropped too.
    assert "plain print" not in messages and "stderr line" not in messages
    assert not any("info line" in m or "debug line" in m for m in messages)
    # Printed JSON with a "level" is filtered by the platform too.
    assert '{"level": "error", "msg": "printed error"}' in messages
    assert not any("printed debug" in m for m in messages)
    report = records[-1]
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    assert report["record"]["requestId"] == request_id
    metrics = report["record"]["metrics"]
    assert {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"} <= set(metrics)
    assert "initDurationMs" in metrics
    assert not any(m.startswith(("START ", "END ", "REPORT ")) for m in messages)


def test_log_tail_is_filtered_by_application_level_like_the_log(lam, logs):
    name = _create(lam, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    assert '"warned 1"' in tail and '"caught"' in tail and "printed error" in tail
    assert '"platform.report"' in tail
    for dropped in ("info line", "debug line", "plain print", "stderr line", "printed debug"):
        assert dropped not in tail, dropped


INIT = ["platform.initStart", "platform.initReport"]


@pytest.mark.parametrize(
    ("system_level", "expected"),
    [
        ("DEBUG", [*INIT, "platform.start", "platform.runtimeDone", "platform.report"]),
        ("INFO", [*INIT, "platform.start", "platform.report"]),
        ("WARN", []),
    ],
)
def test_system_log_level_filters_platform_records(lam, logs, system_level, expected):
    name = _create(
        lam,
        LoggingConfig={
            "LogFormat": "JSON",
            "ApplicationLogLevel": "ERROR",
            "SystemLogLevel": system_level,
        },
    )
    _invoke(lam, name)
    messages = _log(
        logs,
        name,
        lambda ms: any("printed error" in m for m in ms) and any('"caught"' in m for m in ms),
    )
    if expected:
        messages = _log(logs, name, lambda ms: any('"platform.report"' in m for m in ms))
    kinds = [r["type"] for r in _records(messages) if "type" in r]
    assert kinds == expected


def test_json_format_logs_function_errors_as_json(lam, logs):
    name = _create(lam, LoggingConfig={"LogFormat": "JSON"})
    request_id, got = _invoke(lam, name, fail=True)
    assert got["errorType"] == "KeyError"
    messages = _log(logs, name, lambda ms: any('"platform.report"' in m for m in ms))
    (error,) = [r for r in _records(messages) if r.get("errorType") == "KeyError"]
    assert error["level"] == "ERROR" and error["requestId"] == request_id
    assert error["errorMessage"] == "'failed on purpose'" and error["stackTrace"]
    report = _records(messages)[-1]
    assert report["record"]["status"] == "error"
    # INFO is the application level by default: info lines are there, debug ones not.
    assert any('"info line"' in m for m in messages)
    assert "plain print" in messages and "stderr line" in messages
    assert not any('"debug line"' in m for m in messages)


def test_json_format_timeout_writes_the_timed_out_record(lam, logs):
    name = f"fmt-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": SLEEPER})},
        Timeout=1,
        LoggingConfig={"LogFormat": "JSON"},
    )
    request_id, got = _invoke(lam, name)
    assert got["errorType"] == "Sandbox.Timedout"
    messages = _log(logs, name, lambda ms: any('"platform.report"' in m for m in ms))
    records = _records(messages)
    (timed_out,) = [r for r in records if r.get("message", "").startswith("Task timed out")]
    assert timed_out["message"] == "Task timed out after 1.00 seconds"
    assert (timed_out["level"], timed_out["requestId"]) == ("ERROR", request_id)
    assert STAMP.match(timed_out["timestamp"])
    assert records[-1]["record"]["status"] == "timeout"


def test_text_format_keeps_lambda_text_lines(lam, logs):
    name = _create(lam)
    _, got = _invoke(lam, name)
    assert (got["format"], got["level"]) == ("Text", None)
    messages = _log(logs, name, lambda ms: any(m.startswith("REPORT") for m in ms))
    assert messages[0].startswith("INIT_START Runtime Version: python:3.11.")
    assert messages[1].startswith("START RequestId:")
    assert any(m.startswith("[WARNING]\t") and m.endswith("warned 1") for m in messages)


def test_log_level_needs_json_format(lam):
    with pytest.raises(ClientError) as caught:
        _create(lam, LoggingConfig={"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"})
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    name = _create(lam)
    with pytest.raises(ClientError) as caught:
        lam.update_function_configuration(
            FunctionName=name, LoggingConfig={"LogFormat": "Text", "SystemLogLevel": "WARN"}
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    updated = lam.update_function_configuration(
        FunctionName=name, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"}
    )
    assert updated["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "DEBUG",
        "SystemLogLevel": "INFO",
        "LogGroup": f"/aws/lambda/{name}",
    }


# ---- tracing --------------------------------------------------------------------------


def _invoke_raw(url: str, name: str, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/{name}/invocations", data=b"{}", method="POST", headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_trace_header_reaches_the_function_with_the_invocation_as_parent(lam, corral_url):
    name = _create(lam)
    root = "Root=1-5759e988-bd862e3fe1be46a994272793"
    got = _invoke_raw(
        corral_url, name, {"X-Amzn-Trace-Id": f"{root};Parent=53995c3f42cd8ad8;Sampled=1"}
    )["trace"]
    assert TRACE.match(got)
    fields = got.split(";")
    assert fields[0] == root and fields[2] == "Sampled=1"
    assert fields[1] != "Parent=53995c3f42cd8ad8"  # Lambda's own segment is the parent
    # A Root alone is completed with a Parent and Sampled.
    got = _invoke_raw(corral_url, name, {"X-Amzn-Trace-Id": root})["trace"]
    assert TRACE.match(got) and got.startswith(root + ";Parent=") and got.endswith(";Sampled=0")


@pytest.mark.parametrize(
    "header", ["garbage", "Root=1-" + "a" * 9000, "x" * 9000], ids=["garbage", "long-root", "long"]
)
def test_an_invalid_trace_header_is_replaced_by_a_new_trace(lam, corral_url, header):
    name = _create(lam)
    got = _invoke_raw(corral_url, name, {"X-Amzn-Trace-Id": header})["trace"]
    assert TRACE.match(got) and got.endswith(";Sampled=0")


def test_trace_id_is_generated_per_invocation_when_absent(lam, corral_url):
    name = _create(lam)
    first = _invoke_raw(corral_url, name, {})["trace"]
    second = _invoke_raw(corral_url, name, {})["trace"]
    assert TRACE.match(first) and TRACE.match(second) and first != second


def test_tracing_config_is_stored(lam):
    name = _create(lam, TracingConfig={"Mode": "Active"})
    assert lam.get_function_configuration(FunctionName=name)["TracingConfig"] == {"Mode": "Active"}
    lam.update_function_configuration(FunctionName=name, TracingConfig={"Mode": "PassThrough"})
    config = lam.get_function_configuration(FunctionName=name)
    assert config["TracingConfig"] == {"Mode": "PassThrough"}
    with pytest.raises(ClientError) as caught:
        lam.update_function_configuration(FunctionName=name, TracingConfig={"Mode": "Sometimes"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
