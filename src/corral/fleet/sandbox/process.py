"""The `process` backend: the runtime is a child process in its own session, with rlimits.

The Runtime API listener is on host loopback (a free port): reachable by anything on this
host, which is why this backend is for development. No isolation beyond what Unix users
and rlimits give: the development baseline and the
fastest path. Spawning uses vfork (no Python runs between fork and exec), so limits are
applied with prlimit right after the exec; the window is the interpreter's first
instructions, before any user code runs.

A pid file per environment (`<run-dir>/<pid>`) lets a restarted server kill runtimes that
a killed server left behind; the environment id in the process's environ guards against
pid reuse.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
from pathlib import Path

from corral.fleet.runtime_api import listening_socket
from corral.fleet.sandbox import SandboxSpec

MIB = 1024 * 1024
# Address space beyond MemorySize that an interpreter needs for its own mappings (shared
# libraries, thread stacks, malloc arenas). RLIMIT_AS counts virtual, not resident, memory.
ADDRESS_SPACE_SLACK_MB = 256
NOFILE = 1024  # Lambda's file descriptor quota
ENV_MARKER = "CORRAL_ENVIRONMENT_ID"


class ProcessSandboxProcess:
    __slots__ = (
        "_pid_file",
        "_popen",
        "_status_fd",
        "exit_fd",
        "listener",
        "output_fd",
        "pid",
        "returncode",
    )

    def __init__(
        self, popen: subprocess.Popen, output_fd: int, pid_file: Path, listener: socket.socket
    ) -> None:
        self._popen = popen  # only for its pid; reaping is ours (pidfd + waitpid)
        self.listener = listener
        pid = self.pid = popen.pid
        self.output_fd = output_fd
        self.exit_fd = os.pidfd_open(pid)
        self.returncode: int | None = None
        self._pid_file = pid_file
        try:
            self._status_fd: int | None = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        except OSError:
            self._status_fd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                self.returncode = self._popen.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def max_memory_used_bytes(self) -> int:
        if self._status_fd is None:
            return 0
        try:
            status = os.pread(self._status_fd, 4096, 0)
        except OSError:
            return 0
        start = status.find(b"VmHWM:")
        if start < 0:
            return 0
        end = status.find(b"kB", start)
        return int(status[start + 6 : end]) * 1024

    def initialized(self) -> None:
        pass

    def oom_killed(self) -> bool:
        return False  # RLIMIT_AS makes allocations fail (MemoryError) instead

    def close(self) -> None:
        for fd in (self.exit_fd, self.output_fd, self._status_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._status_fd = None
        self._pid_file.unlink(missing_ok=True)


class ProcessSandbox:
    name = "process"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)

    async def spawn(self, spec: SandboxSpec) -> ProcessSandboxProcess:
        listener = listening_socket()
        try:
            return self._spawn(spec, listener)
        except BaseException:
            listener.close()
            raise

    def _spawn(self, spec: SandboxSpec, listener: socket.socket) -> ProcessSandboxProcess:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        port = listener.getsockname()[1]
        env = {**spec.env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}", ENV_MARKER: spec.env_id}
        try:
            # subprocess uses vfork (no preexec_fn is given), and unlike posix_spawn it can
            # set the working directory: runtimes such as awslambdaric import from cwd.
            popen = subprocess.Popen(
                spec.argv,
                cwd=spec.code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                restore_signals=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        pid = popen.pid
        self._limit(pid, spec)
        pid_file = self.run_dir / str(pid)
        pid_file.write_text(spec.env_id)
        os.set_blocking(read_fd, False)
        return ProcessSandboxProcess(popen, read_fd, pid_file, listener)

    def _limit(self, pid: int, spec: SandboxSpec) -> None:
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
            resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))
            if spec.address_space_limited:
                limit = (spec.memory_mb + ADDRESS_SPACE_SLACK_MB) * MIB
                resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))

    def cleanup_stale(self) -> int:
        killed = 0
        for pid_file in self.run_dir.iterdir():
            with contextlib.suppress(ValueError, OSError):
                pid, env_id = int(pid_file.name), pid_file.read_text()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                if f"{ENV_MARKER}={env_id}".encode() in environ.split(b"\0"):
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
            pid_file.unlink(missing_ok=True)
        return killed
