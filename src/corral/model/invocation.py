"""An invocation as the data plane sees it, its outcome, and the errors the platform makes.

Platform-made function errors (timeouts, crashed runtimes, oversized responses) are built
by `platform_error` alone, in the JSON shape Lambda returns for them.
"""

from __future__ import annotations

import errno
import math
import os
import posixpath
import random
import time
from dataclasses import dataclass

import orjson

UNHANDLED = "Unhandled"


@dataclass(slots=True)
class Invocation:
    """One request for one environment. Mutable only by the environment that runs it."""

    request_id: str
    payload: bytes
    invoked_arn: str
    timeout_s: int
    trace_id: str  # X-Amzn-Trace-Id as the function sees it (Parent: the invocation's span)
    client_context: str | None = None  # JSON text, already base64-decoded
    cognito_identity: str | None = None
    want_tail: bool = False
    caller_span_id: str | None = None  # the Parent of the X-Amzn-Trace-Id it was called with


@dataclass(slots=True)
class InvocationResult:
    """What the caller gets: the payload bytes as the runtime sent them, untouched.
    Completed (tail, durations) by the environment before it is handed over."""

    payload: bytes
    function_error: str | None = None
    log_tail: bytes = b""
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    error_type: str | None = None  # a streamed response's error trailer, when it had one
    trace_id: str = ""  # the invocation's X-Amzn-Trace-Id (for span export)
    caller_span_id: str | None = None  # the caller's span: the invocation span's parent


# Ids must be unique, not secret: a generator seeded from the OS once is enough, and avoids
# a getrandom syscall per id on the invoke path.
_random = random.Random(os.urandom(32))


def new_request_id() -> str:
    """A random (version 4) UUID string, as Lambda's request ids are (~1 us; uuid4 is 7)."""
    h = f"{_random.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def new_trace_root(now_s: float | None = None) -> str:
    """A new X-Ray trace id: `1-<8 hex seconds>-<24 hex>`."""
    epoch = int(now_s if now_s is not None else time.time())
    return f"1-{epoch:08x}-{_random.getrandbits(96):024x}"


def new_span_id() -> str:
    """A new span (X-Ray segment) id: 16 hex digits, not all zero."""
    return f"{_random.getrandbits(64) or 1:016x}"


def new_trace_id(now_s: float | None = None) -> str:
    """An X-Ray trace header (`Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=0`)."""
    epoch = int(now_s if now_s is not None else time.time())
    rnd = f"{_random.getrandbits(160):040x}"
    return f"Root=1-{epoch:08x}-{rnd[:24]};Parent={rnd[24:]};Sampled=0"


def billed_ms(duration_ms: float, init_duration_ms: float | None = None) -> int:
    """Lambda bills in 1 ms steps, rounding up, and at least 1 ms. Since 1 August 2025 it
    bills the INIT phase of on-demand environments too: a cold start's Billed Duration is
    Duration + Init Duration (provisioned environments report no Init Duration)."""
    if init_duration_ms is not None:
        duration_ms += init_duration_ms
    return max(1, math.ceil(duration_ms))


def platform_error(error_type: str, message: str) -> bytes:
    """The body of a function error the platform (not the function) produced."""
    return orjson.dumps({"errorType": error_type, "errorMessage": message})


def timeout_error(request_id: str, timeout_s: float) -> bytes:
    return platform_error(
        "Sandbox.Timedout",
        f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
    )


def exit_error(request_id: str, detail: str) -> bytes:
    return platform_error("Runtime.ExitError", f"RequestId: {request_id} Error: {detail}")


def entrypoint_error(request_id: str, path: str | None, code: int | None, reason: str) -> bytes:
    """Runtime.InvalidEntrypoint: the runtime's entry point `path` (as the function sees
    it) could not be executed. A missing custom-runtime bootstrap gets Lambda's message,
    which names both places it looks; others are Go's `fork/exec` error, as Lambda's."""
    path = path or "bootstrap"
    if code == errno.ENOENT and posixpath.basename(path) == "bootstrap":
        task_root = posixpath.dirname(path)
        detail = f"Couldn't find valid bootstrap(s): [{task_root}/bootstrap /opt/bootstrap]"
    else:
        detail = f"fork/exec {path}: {reason[:1].lower()}{reason[1:]}"
    return platform_error("Runtime.InvalidEntrypoint", f"RequestId: {request_id} Error: {detail}")


def out_of_memory_error(request_id: str, detail: str) -> bytes:
    """The memory limit (not the runtime) ended the invocation."""
    return platform_error("Runtime.OutOfMemory", f"RequestId: {request_id} Error: {detail}")


def response_too_large_error(limit_bytes: int) -> bytes:
    return platform_error(
        "Function.ResponseSizeTooLarge",
        f"Response payload size exceeded maximum allowed payload size ({limit_bytes} bytes).",
    )


def describe_exit(status: int) -> str:
    """Lambda's wording for how a runtime process ended (`exit status 1`, `signal: killed`)."""
    if status < 0:
        names = {9: "killed", 11: "segmentation fault", 6: "aborted", 15: "terminated"}
        return f"Runtime exited with error: signal: {names.get(-status, -status)}"
    return f"Runtime exited with error: exit status {status}"
