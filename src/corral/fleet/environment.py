"""One execution environment: a sandboxed runtime serving one invocation at a time.

Life: STARTING (spawned, no /next yet) -> IDLE <-> BUSY -> STOPPED. The environment owns
its Runtime API listener, its runtime process, the timers that bound init and each
invocation, and the log lines of the invocations it runs. It is driven by callbacks from
the event loop (Runtime API requests, process output, process exit, timers); nothing here
polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from corral.fleet.response_stream import BufferedResponse, FlowControl, ResponseSink
from corral.fleet.runtime_api import RuntimeApiConnection, RuntimeApiError
from corral.fleet.runtimes import RUNTIMES_DIR, RuntimeCatalogue
from corral.fleet.sandbox import Sandbox, SandboxProcess, SandboxSpec
from corral.model import limits, report
from corral.model.arn import Scope
from corral.model.function import CUSTOM_RUNTIMES, FunctionConfig
from corral.model.invocation import (
    UNHANDLED,
    Invocation,
    InvocationResult,
    billed_ms,
    describe_exit,
    exit_error,
    out_of_memory_error,
    platform_error,
    response_too_large_error,
    timeout_error,
)
from corral.model.layers import OPT, FunctionLayer, search_path_environment
from corral.model.logs import LevelFilter, iso_ms, level_rank, now_ms
from corral.telemetry.logs import FunctionLogs

log = logging.getLogger("corral.fleet")

INIT_TIMEOUT_S = 10.0  # Lambda's limit on the init phase of on-demand environments
MIB = 1024 * 1024
OUTPUT_READS_PER_WAKEUP = 16  # 1 MB: a flooding runtime cannot hold the event loop
# System log levels of the platform's JSON records (Lambda's "Log-level filtering").
_DEBUG, _INFO = level_rank("DEBUG"), level_rank("INFO")


class RuntimeGone(Exception):
    """A warm runtime exited between invocations, before it took the one handed to it
    (Node's runtimes exit after reporting an unhandled rejection, as Lambda's do): the
    invocation never ran, and the caller runs it on a new environment, as Lambda does."""


class State(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class FleetContext:
    """What every environment needs from the outside, built once by the composition root."""

    sandbox: Sandbox
    runtimes: RuntimeCatalogue
    logs: FunctionLogs
    scope: Scope
    # The host directory with a function's layers merged in order (an empty one for none).
    opt_dir: Callable[[tuple[FunctionLayer, ...]], Awaitable[Path]] | None = None


def _utc_stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Environment:
    """Created by a Pool; `start` it, then `invoke` one Invocation at a time."""

    response_limit_bytes = limits.SYNC_RESPONSE_MAX_BYTES

    def __init__(
        self,
        env_id: str,
        config: FunctionConfig,
        code_dir: Path,
        ctx: FleetContext,
        on_stopped: Callable[[Environment], None],
        initialization_type: str = "on-demand",
    ) -> None:
        self.id = env_id
        self.initialization_type = initialization_type
        # Provisioned environments are initialized ahead of any invocation: their REPORT
        # lines carry no Init Duration, and the reaper leaves them alone.
        self.provisioned = initialization_type == "provisioned-concurrency"
        self.config = config
        self.code_dir = code_dir
        self.ctx = ctx
        self.state = State.STARTING
        self.idle_since = 0.0
        self.log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{config.version}]{env_id}"
        self._on_stopped = on_stopped
        self._loop = asyncio.get_running_loop()
        self._process: SandboxProcess | None = None
        self._server: asyncio.Server | None = None
        self._parked: RuntimeApiConnection | None = None
        self._pending: Invocation | None = None
        self._current: Invocation | None = None
        self._answered: str | None = None
        self._future: asyncio.Future[InvocationResult] | None = None
        self._sink: ResponseSink | None = None  # where a streamed response goes
        self._timer: asyncio.TimerHandle | None = None  # invocation deadlines
        self._init_timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._started_at = 0.0
        self._dispatched_at = 0.0
        self._init_duration_ms: float | None = None
        self._report_init = self.provisioned
        self._ready_or_stopped = asyncio.Event()
        self._json_logs = config.log_format == "JSON"
        self._system_rank = level_rank(config.system_log_level) if self._json_logs else 0
        self._log = ctx.logs.open_stream(
            config.name,
            config.effective_log_group,
            self.log_stream,
            self._json_logs,
            (config.application_log_level or "INFO") if self._json_logs else None,
        )
        self._tail: bytearray | None = None  # the invocation's log, kept for LogType Tail
        self._tail_filter: LevelFilter | None = None  # ApplicationLogLevel, as the log's
        self._start_logged = False
        self._stopped = asyncio.Event()
        self._memory_used_mb = 0
        self._memory_read_at = 0.0

    @property
    def alive(self) -> bool:
        return self.state is not State.STOPPED

    # ---- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the runtime in its sandbox and serve its Runtime API listener.

        Raises OSError if the runtime cannot be executed (the caller reports
        Runtime.InvalidEntrypoint).
        """
        c = self.config
        launch = self.ctx.runtimes.launch(c.runtime, self.code_dir, c.memory_mb, c.environment)
        opt_dir = await self.ctx.opt_dir(self.config.layers) if self.ctx.opt_dir else None
        spec = SandboxSpec(
            env_id=self.id,
            argv=self._entry_point(launch.argv, opt_dir),
            env=self._environment_variables(launch.env, opt_dir),
            code_dir=self.code_dir,
            opt_dir=opt_dir if self.config.layers else None,
            memory_mb=self.config.memory_mb,
            ephemeral_storage_mb=self.config.ephemeral_storage_mb,
            address_space_limited=launch.address_space_limited,
        )
        self._log_init_start()
        self._started_at = time.perf_counter()
        try:
            self._process = await self.ctx.sandbox.spawn(spec)
        except OSError:
            self.state = State.STOPPED
            self._stopped.set()
            self._ready_or_stopped.set()
            raise
        # The listener is already listening: a runtime that connects before the server
        # is created waits in the backlog.
        self._server = await self._loop.create_server(
            lambda: RuntimeApiConnection(self), sock=self._process.listener
        )
        self._loop.add_reader(self._process.output_fd, self._on_output)
        self._loop.add_reader(self._process.exit_fd, self._on_exit)
        self._init_timer = self._loop.call_later(INIT_TIMEOUT_S, self._on_init_timeout)

    def _environment_variables(
        self, runtime_env: dict[str, str], opt_dir: Path | None = None
    ) -> dict[str, str]:
        """Lambda's environment variables; the sandbox adds AWS_LAMBDA_RUNTIME_API.

        Layer search paths name /opt where the sandbox mounts the layers there, else the
        host directory that holds them (`opt_dir`)."""
        c, scope = self.config, self.ctx.scope
        opt_root = self._opt_root(opt_dir)
        task_root = getattr(self.ctx.sandbox, "task_root", None) or str(self.code_dir)
        search = search_path_environment(c.runtime, opt_root, str(RUNTIMES_DIR), task_root)
        env = {
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            **search,
            **runtime_env,
            **c.environment,
            "CORRAL_OPT_DIR": opt_root,
            "_HANDLER": c.handler,
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "LAMBDA_RUNTIME_DIR": str(RUNTIMES_DIR),
            "AWS_LAMBDA_FUNCTION_NAME": c.name,
            "AWS_LAMBDA_FUNCTION_VERSION": c.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": c.effective_log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_LOG_FORMAT": c.log_format,
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.initialization_type,
            "AWS_REGION": scope.region,
            "AWS_DEFAULT_REGION": scope.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{c.runtime}",
        }
        if c.log_format == "JSON":  # Lambda sets it with the JSON format only
            env["AWS_LAMBDA_LOG_LEVEL"] = c.application_log_level or "INFO"
        return env

    def _entry_point(self, argv: tuple[str, ...], opt_dir: Path | None) -> tuple[str, ...]:
        """Lambda runs a custom runtime's bootstrap from the function's code, or else from
        its layers (/opt/bootstrap): a runtime can ship as a layer. Two stats, cold only."""
        if (
            self.config.runtime in CUSTOM_RUNTIMES
            and opt_dir is not None
            and not os.path.exists(argv[0])
            and (opt_dir / "bootstrap").is_file()
        ):
            return (f"{self._opt_root(opt_dir)}/bootstrap",)
        return argv

    def _opt_root(self, opt_dir: Path | None) -> str:
        """Where the function sees its layers: /opt where the sandbox mounts them there,
        else the host directory holding them."""
        if opt_dir is None or getattr(self.ctx.sandbox, "mounts_opt", False):
            return OPT
        return str(opt_dir)

    def stop(self) -> None:
        """Kill the runtime and close the listener. Idempotent; never waits."""
        if self.state is State.STOPPED:
            return
        self.state = State.STOPPED
        self._ready_or_stopped.set()
        for timer in (self._timer, self._init_timer):
            if timer:
                timer.cancel()
        self._timer = self._init_timer = None
        if self._parked:
            self._parked.close()
            self._parked = None
        if self._server:
            self._server.close()
        if self._process:
            self._process.kill()
            if self._process.poll() is not None:
                self._release_process()
        else:
            self._stopped.set()
        self._on_stopped(self)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def wait_ready(self) -> bool:
        """Wait until the runtime first asks for work (True) or the environment stops
        before it does (False). Init is bounded by INIT_TIMEOUT_S, so this is too."""
        await self._ready_or_stopped.wait()
        return self.alive

    def _release_process(self) -> None:
        process = self._process
        if process is None or self._stopped.is_set():
            return
        self._drain_output()
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(process.output_fd)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(process.exit_fd)
        process.close()
        self._stopped.set()

    # ---- invocations --------------------------------------------------------------

    def invoke(
        self, inv: Invocation, sink: ResponseSink | None = None
    ) -> asyncio.Future[InvocationResult]:
        """Run `inv` as soon as the runtime asks for work. One at a time: the pool ensures it.
        A response the runtime streams goes to `sink` as it arrives (without one, it is
        collected and answered buffered, as Lambda's Invoke does)."""
        future: asyncio.Future[InvocationResult] = self._loop.create_future()
        if self.state is State.STOPPED:
            future.set_result(self._exit_result(inv, "Runtime exited without providing a reason"))
            return future
        self._pending = inv
        self._future = future
        self._sink = sink
        if self._init_duration_ms is None and inv.want_tail:
            self._tail = bytearray()  # the first invocation's tail has the init's output
        if self._parked is not None:
            self._dispatch()
        return future

    def _dispatch(self) -> None:
        inv, conn = self._pending, self._parked
        assert inv is not None and conn is not None
        self._pending = None
        self._parked = None
        self._current = inv
        self.state = State.BUSY
        self._start_tail(inv)
        self._log_start(inv)
        self._dispatched_at = time.perf_counter()
        deadline_ms = int(time.time() * 1000) + inv.timeout_s * 1000
        if not conn.send_invocation(inv, deadline_ms):
            self._finish(self._exit_result(inv, "Runtime closed its connection"), status="error")
            self.stop()
            return
        # One timer serves successive invocations: it stays armed after an invocation
        # ends, and on firing re-arms itself for the current deadline if that is later.
        self._deadline = self._loop.time() + inv.timeout_s
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._on_timeout)

    def _finish(self, result: InvocationResult, status: str | None = None) -> None:
        inv, future = self._current or self._pending, self._future
        if inv is None or future is None:
            return
        # Output written before the runtime answered is already in the pipe: it belongs to
        # this invocation, so it is read while the invocation is still current.
        self._drain_output()
        self._current = self._pending = None
        self._future = None
        self._sink = None
        self._answered = inv.request_id
        if not self._start_logged:  # it ended before it was dispatched
            self._start_tail(inv)
            self._log_start(inv)
        duration_ms = (
            (time.perf_counter() - self._dispatched_at) * 1000 if self._dispatched_at else 0.0
        )
        init_ms = None
        if self._init_duration_ms is not None and not self._report_init:
            init_ms = self._init_duration_ms
            self._report_init = True
        used_mb = self._max_memory_used_mb(duration_ms)
        billed = billed_ms(duration_ms, init_ms)
        if self._json_logs:
            at = iso_ms(now_ms())
            done = status or "success"
            if self._system_rank <= _DEBUG:
                self._platform(report.runtime_done_record(at, inv.request_id, done, duration_ms))
            if self._system_rank <= _INFO:
                self._platform(
                    report.report_record(
                        at,
                        inv.request_id,
                        duration_ms,
                        billed,
                        self.config.memory_mb,
                        used_mb,
                        init_ms,
                        done,
                    )
                )
        else:
            self._platform(
                report.end_line(inv.request_id)
                + report.report_line(
                    inv.request_id,
                    duration_ms,
                    billed,
                    self.config.memory_mb,
                    used_mb,
                    init_ms,
                    status,
                )
            )
        if self._tail is not None:
            if self._tail_filter is not None:
                self._tail += self._tail_filter.end()
            result.log_tail = bytes(self._tail[-limits.LOG_TAIL_BYTES :])
        result.duration_ms = duration_ms
        result.init_duration_ms = init_ms
        result.trace_id = inv.trace_id
        result.caller_span_id = inv.caller_span_id
        self._tail = None
        self._start_logged = False
        self._dispatched_at = 0.0
        if self.state is State.BUSY:
            self.state = State.IDLE
        if not future.done():
            future.set_result(result)

    def _log_start(self, inv: Invocation) -> None:
        self._start_logged = True
        if not self._json_logs:
            self._platform(report.start_line(inv.request_id, self.config.version))
        elif self._system_rank <= _INFO:
            start = report.start_record(iso_ms(now_ms()), inv.request_id, self.config.version)
            self._platform(start)

    def _log_init_start(self) -> None:
        """INIT_START (text) or platform.initStart (JSON): the init phase begins."""
        c, region = self.config, self.ctx.scope.region
        if not self._json_logs:
            self._platform(report.init_start_line(c.runtime, region))
        elif self._system_rank <= _INFO:
            at, init_type = iso_ms(now_ms()), self.initialization_type
            record = report.init_start_record(at, init_type, c.runtime, region, c.name, c.version)
            self._platform(record)

    def _start_tail(self, inv: Invocation) -> None:
        self._tail = _tail_for(inv, self._tail)
        level = self._log.min_level
        self._tail_filter = LevelFilter(level) if self._tail is not None and level else None

    def _platform(self, line: bytes) -> None:
        self.ctx.logs.platform(self._log, line)
        if self._tail is not None:
            if self._tail_filter is not None:  # the output line before it, unfinished
                self._tail += self._tail_filter.end()
            self._tail += line
            del self._tail[: -limits.LOG_TAIL_BYTES]

    def _output(self, data: bytes) -> None:
        self.ctx.logs.output(self._log, data)
        if self._tail is not None:
            if self._tail_filter is not None:  # what the log store drops, the tail does too
                data = self._tail_filter.feed(data)
            self._tail += data
            del self._tail[: -limits.LOG_TAIL_BYTES]

    def _max_memory_used_mb(self, duration_ms: float) -> int:
        """The runtime's peak memory for REPORT. Reading it costs ~8 us (a /proc read), so
        an invocation shorter than 1 ms reuses a reading taken within the last second: in
        under 1 ms a handler touches at most a few MB, so the figure lags by no more."""
        now = time.monotonic()
        if self._process and (duration_ms >= 1.0 or now - self._memory_read_at > 1.0):
            self._memory_read_at = now
            used = self._process.max_memory_used_bytes()
            self._memory_used_mb = max(self._memory_used_mb, math.ceil(used / MIB))
        return self._memory_used_mb

    def _exit_result(self, inv: Invocation, detail: str) -> InvocationResult:
        return InvocationResult(exit_error(inv.request_id, detail), UNHANDLED)

    # ---- Runtime API callbacks (RuntimeApiHandler) --------------------------------

    def on_next(self, conn: RuntimeApiConnection) -> None:
        if self.state is State.STOPPED:
            conn.close()
            return
        if self._init_duration_ms is None:
            self._init_duration_ms = (time.perf_counter() - self._started_at) * 1000
            if self._json_logs and self._system_rank <= _INFO:
                at = iso_ms(now_ms())
                init_type = self.initialization_type
                self._platform(report.init_done_record(at, self._init_duration_ms, init_type))
            if self._init_timer:
                self._init_timer.cancel()
                self._init_timer = None
            self.state = State.IDLE
            self._ready_or_stopped.set()
            if self._process:
                self._process.initialized()
        self._parked = conn
        if self._pending is not None:
            self._dispatch()

    def _check_id(self, request_id: str) -> None:
        if self._current is not None and self._current.request_id == request_id:
            return
        if request_id == self._answered:
            raise RuntimeApiError(
                403,
                "InvalidStateTransition",
                f"Invocation {request_id} has already been answered",
            )
        raise RuntimeApiError(400, "InvalidRequestID", f"Invalid request ID: {request_id}")

    def on_response(self, request_id: str, body: bytes) -> None:
        self._check_id(request_id)
        self._finish(InvocationResult(body))

    def on_error(self, request_id: str, body: bytes, error_type: str) -> None:
        self._check_id(request_id)
        if not body:
            body = platform_error(error_type, "")
        self._finish(InvocationResult(body, UNHANDLED), status="error")

    def on_response_too_large(self, request_id: str) -> None:
        self._check_id(request_id)
        limit = self.response_limit_bytes
        self._finish(InvocationResult(response_too_large_error(limit), UNHANDLED), status="error")

    # ---- streamed responses (response_stream.StreamHandler) ----------------------------

    def on_stream_start(self, request_id: str, content_type: str, flow: FlowControl) -> None:
        self._check_id(request_id)
        if self._sink is None:
            self._sink = BufferedResponse(self.response_limit_bytes)
        self._sink.start(content_type, flow)

    def on_stream_data(self, request_id: str, data: bytes) -> None:
        # After a timeout or a crash ended the invocation, the rest of its stream is dropped.
        current = self._current
        if current is not None and current.request_id == request_id and self._sink is not None:
            self._sink.write(data)

    def on_stream_end(self, request_id: str, error: InvocationResult | None) -> None:
        current = self._current
        if current is None or current.request_id != request_id or self._sink is None:
            self._check_id(request_id)  # refuses: already answered, or not its own
            return
        result = error if error is not None else self._sink.end()
        self._finish(result, status="error" if result.function_error else None)

    def on_init_error(self, body: bytes, error_type: str) -> None:
        if self._init_duration_ms is not None:
            raise RuntimeApiError(403, "InvalidStateTransition", "Init has already completed")
        init_ms = (time.perf_counter() - self._started_at) * 1000
        # A failed init is still a cold start, with its Init Duration (and billed so).
        self._init_duration_ms = init_ms
        if self._json_logs:
            at = iso_ms(now_ms())
            line = report.init_report_record(at, init_ms, error_type, self.initialization_type)
        else:
            line = (
                f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: error\t"
                f"Error Type: {error_type}\n".encode()
            )
        self._platform(line)
        if self._pending is not None:
            self._current = self._pending
            result = InvocationResult(body or platform_error(error_type, ""), UNHANDLED)
            self._finish(result, status="error")
        self.stop()

    # ---- loop callbacks -----------------------------------------------------------

    def _on_output(self) -> None:
        self._drain_output()

    def _drain_output(self) -> None:
        process = self._process
        if process is None:
            return
        for _ in range(OUTPUT_READS_PER_WAKEUP):
            try:
                data = os.read(process.output_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(ValueError, OSError):
                    self._loop.remove_reader(process.output_fd)
                return
            self._output(data)

    def _on_exit(self) -> None:
        process = self._process
        if process is None or process.poll() is None:
            return
        status = process.returncode
        self._drain_output()
        if self._current is None and self._future is not None and self._init_duration_ms:
            future, self._pending, self._future = self._future, None, None
            future.set_exception(RuntimeGone())
        inv = self._current or self._pending
        if inv is not None:
            detail = (  # also during init, as Lambda: "Runtime exited with error: exit status 3"
                describe_exit(status)
                if self._current is not None or status != 0
                else "Runtime exited without providing a reason"
            )
            if self._current is None:
                self._current = inv
            if process.oom_killed():  # the memory cgroup's limit, not the runtime, ended it
                body = out_of_memory_error(inv.request_id, detail)
                self._finish(InvocationResult(body, UNHANDLED), status="error")
            else:
                self._finish(self._exit_result(inv, detail), status="error")
        if self.state is not State.STOPPED:
            log.info("environment %s of %s exited (%s)", self.id, self.config.name, status)
            self.stop()
        self._release_process()

    def _on_timeout(self) -> None:
        self._timer = None
        inv = self._current
        if inv is None:
            return
        if self._deadline > self._loop.time():  # armed for an earlier invocation
            self._timer = self._loop.call_at(self._deadline, self._on_timeout)
            return
        self._drain_output()
        if not self._json_logs:
            self._platform(report.timeout_line(_utc_stamp(), inv.request_id, inv.timeout_s))
        else:
            at = iso_ms(now_ms())
            self._platform(report.timeout_record(at, inv.request_id, inv.timeout_s))
        self._finish(
            InvocationResult(timeout_error(inv.request_id, inv.timeout_s), UNHANDLED),
            status="timeout",
        )
        self.stop()

    def _on_init_timeout(self) -> None:
        self._init_timer = None
        self._init_duration_ms = (time.perf_counter() - self._started_at) * 1000
        inv = self._pending
        if inv is not None:
            self._current = inv
            self._finish(
                InvocationResult(timeout_error(inv.request_id, INIT_TIMEOUT_S), UNHANDLED),
                status="timeout",
            )
        self.stop()


def _tail_for(inv: Invocation, gathered: bytearray | None) -> bytearray | None:
    """An invocation's LogResult tail: what was gathered for it already (its init's
    output), else a new one, if it asked for one."""
    if not inv.want_tail:
        return None
    return gathered if gathered is not None else bytearray()
