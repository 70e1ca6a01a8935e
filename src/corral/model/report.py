"""The platform's own log lines, exactly as Lambda writes them to a function's log stream."""

from __future__ import annotations


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
