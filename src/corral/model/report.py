"""The platform's own log lines, exactly as Lambda writes them to a function's log stream."""

from __future__ import annotations

import hashlib
import re

import orjson

from corral import __version__

_RUNTIME_ID = re.compile(r"([a-z]+)\.?([0-9.]*[0-9]|al\d+)?(?:\.x)?")


def runtime_version(runtime: str) -> str:
    """Lambda's name of a runtime's version (`python3.11` -> `python:3.11.corral<ver>`):
    the runtime as Lambda names it in INIT_START, and Corral's build of it."""
    m = _RUNTIME_ID.fullmatch(runtime)
    name = f"{m.group(1)}:{m.group(2)}" if m and m.group(2) else runtime
    return f"{name}.corral{__version__}"


def runtime_version_arn(region: str, runtime: str) -> str:
    digest = hashlib.sha256(runtime_version(runtime).encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


def init_start_line(runtime: str, region: str) -> bytes:
    """`INIT_START Runtime Version: ...\tRuntime Version ARN: ...`: a cold start begins."""
    return (
        f"INIT_START Runtime Version: {runtime_version(runtime)}\t"
        f"Runtime Version ARN: {runtime_version_arn(region, runtime)}\n"
    ).encode()


def start_line(request_id: str, version: str) -> bytes:
    return f"START RequestId: {request_id} Version: {version}\n".encode()


def end_line(request_id: str) -> bytes:
    return f"END RequestId: {request_id}\n".encode()


def report_line(
    request_id: str,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
) -> bytes:
    """`REPORT RequestId: ...\\tDuration: 1.23 ms\\tBilled Duration: 2 ms\\t...` (tab-separated,
    with the trailing tab Lambda writes). `status` is e.g. "timeout" or "error"."""
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status:
        parts.append(f"Status: {status}")
    return ("\t".join(parts) + "\t\n").encode()


def timeout_line(timestamp: str, request_id: str, timeout_s: float) -> bytes:
    return f"{timestamp} {request_id} Task timed out after {timeout_s:.2f} seconds\n".encode()


def timeout_record(time_iso: str, request_id: str, timeout_s: float) -> bytes:
    """The timeout line in JSON log format: an ERROR record, as the runtimes' own."""
    message = f"Task timed out after {timeout_s:.2f} seconds"
    record = {"timestamp": time_iso, "level": "ERROR", "requestId": request_id, "message": message}
    return orjson.dumps(record) + b"\n"


# ---- the same in JSON log format: one platform record per line ------------------------
# Shapes from Lambda's "Telemetry API schema reference" (platform.start, platform.runtimeDone,
# platform.report, platform.logsDropped), written as {"time", "type", "record"}.


def _record(time_iso: str, kind: str, record: dict) -> bytes:
    return orjson.dumps({"time": time_iso, "type": kind, "record": record}) + b"\n"


def start_record(time_iso: str, request_id: str, version: str) -> bytes:
    return _record(time_iso, "platform.start", {"requestId": request_id, "version": version})


def runtime_done_record(time_iso: str, request_id: str, status: str, duration_ms: float) -> bytes:
    metrics = {"durationMs": round(duration_ms, 3)}
    record = {"requestId": request_id, "status": status, "metrics": metrics}
    return _record(time_iso, "platform.runtimeDone", record)


def report_record(
    time_iso: str,
    request_id: str,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str = "success",
) -> bytes:
    metrics: dict = {
        "durationMs": round(duration_ms, 3),
        "billedDurationMs": billed_ms,
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": max_memory_used_mb,
    }
    if init_duration_ms is not None:
        metrics["initDurationMs"] = round(init_duration_ms, 3)
    record = {"requestId": request_id, "metrics": metrics, "status": status}
    return _record(time_iso, "platform.report", record)


def logs_dropped_record(time_iso: str, dropped_records: int, dropped_bytes: int, reason: str):
    record = {"reason": reason, "droppedRecords": dropped_records, "droppedBytes": dropped_bytes}
    return _record(time_iso, "platform.logsDropped", record)


def init_start_record(
    time_iso: str, init_type: str, runtime: str, region: str, function: str, version: str
) -> bytes:
    record = {
        "initializationType": init_type,
        "phase": "init",
        "runtimeVersion": runtime_version(runtime),
        "runtimeVersionArn": runtime_version_arn(region, runtime),
        "functionName": function,
        "functionVersion": version,
    }
    return _record(time_iso, "platform.initStart", record)


def init_done_record(time_iso: str, init_ms: float, init_type: str) -> bytes:
    """platform.initReport of an init that succeeded."""
    record = {
        "initializationType": init_type,
        "phase": "init",
        "status": "success",
        "metrics": {"durationMs": round(init_ms, 3)},
    }
    return _record(time_iso, "platform.initReport", record)


def init_report_record(time_iso: str, init_ms: float, error_type: str, init_type: str) -> bytes:
    record = {
        "initializationType": init_type,
        "phase": "init",
        "status": "error",
        "errorType": error_type,
        "metrics": {"durationMs": round(init_ms, 3)},
    }
    return _record(time_iso, "platform.initReport", record)
