"""The sandbox interface: how an environment's runtime process is started and stopped.

Backends live side by side (`process`, `namespace`, later `microvm`) and are
chosen by configuration in `corral.app`. Everything above this package sees only
`Sandbox` and `SandboxProcess`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What to run and within which limits. `env` is the complete environment but for
    AWS_LAMBDA_RUNTIME_API, which the sandbox sets to where its listener is reachable."""

    env_id: str
    argv: tuple[str, ...]
    env: dict[str, str]
    code_dir: Path
    memory_mb: int
    ephemeral_storage_mb: int
    address_space_limited: bool  # whether RLIMIT_AS may be applied (runtimes that reserve
    # large virtual ranges, such as V8 or Go, break under it)
    opt_dir: Path | None = None  # the function's layers merged, to be seen at /opt


class SandboxProcess(Protocol):
    pid: int
    output_fd: int  # non-blocking read end of the runtime's stdout and stderr
    exit_fd: int  # readable once the process has exited (a pidfd)
    listener: socket.socket  # the Runtime API's listening socket, reachable by this runtime only

    def poll(self) -> int | None:
        """Reap the process if it has exited: the exit status, negative for a signal."""

    def kill(self) -> None:
        """SIGKILL everything the runtime started. Never waits."""

    def max_memory_used_bytes(self) -> int:
        """Peak memory of the runtime so far (0 if unknown)."""

    def initialized(self) -> None:
        """The runtime finished its init (first /next): steady-state limits apply now."""

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process of this runtime (False if unknown)."""

    def close(self) -> None:
        """Release file descriptors and other resources after the process is reaped."""


class Sandbox(Protocol):
    name: str

    async def spawn(self, spec: SandboxSpec) -> SandboxProcess:
        """Start the runtime with a Runtime API listener of its own (listening already,
        non-blocking, TCP_NODELAY-capable). Raises OSError when the entry point cannot be
        executed."""

    def cleanup_stale(self) -> int:
        """Remove what an earlier, killed server left behind; the count of things removed."""
