"""Control groups of namespace environments: limits, joining, OOM and peak memory, removal.

Owns the cgroup directories of one server (`<hierarchy>/<own path>/corral/<key>/<env>`);
not the processes in them (the sandbox spawns and reaps those). Detected at start-up,
never assumed: resource controllers may be on cgroup v1 (this machine: memory, cpu, pids
on v1, plus a controller-less v2 mount that still gives `cgroup.kill`), on v2 alone, or
missing. Each group is nested under the server's own group of its hierarchy, so the
host's accounting of the server covers its environments.
Files used, v1: memory.limit_in_bytes, memory.memsw.limit_in_bytes, memory.oom_control
(`oom_kill N`), memory.max_usage_in_bytes, cpu.cfs_quota_us/period/burst, pids.max.
v2: memory.max, memory.swap.max, memory.events, memory.peak, cpu.max, pids.max, cgroup.kill.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769  # Lambda: 1,769 MB of memory = one vCPU
# Init runs with one full vCPU whatever the memory: at 128 MB (7 % of a CPU) a Python
# start would take ~10x longer; the proportional share applies from the first /next.
INIT_CPU_QUOTA_US = CPU_PERIOD_US
PIDS_MAX = 1024  # Lambda's limit on processes and threads per environment
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    memory_bytes: int
    cpu_quota_us: int  # per CPU_PERIOD_US after init; also the burst an idle one accrues
    pids_max: int = PIDS_MAX

    @classmethod
    def for_memory(cls, memory_mb: int, extra_memory_mb: int = 0) -> CgroupLimits:
        quota = max(1000, CPU_PERIOD_US * memory_mb // MB_PER_VCPU)
        return cls((memory_mb + extra_memory_mb) * MIB, quota)


def _own_paths() -> dict[str, str]:
    """Controller name (or "" for v2) -> this process's group path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _mounts() -> tuple[dict[str, Path], Path | None]:
    """v1 controller -> mount point, and the v2 mount point, from /proc/self/mountinfo."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            v2 = v2 or Path(fields[4])
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in ("memory", "cpu", "pids"):
                    v1.setdefault(option, Path(fields[4]))
    return v1, v2


class CgroupLayout:
    """Where this server's environment groups live. `problem` says why limits cannot be
    applied on this machine (None when memory, cpu and pids are all available)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.v1: dict[str, Path] = {}  # controller -> this server's base directory
        self.v2: Path | None = None  # base directory on the v2 hierarchy
        self.v2_controllers: set[str] = set()
        self.problem: str | None = None
        try:
            self._detect()
        except OSError as exc:
            self.problem = f"cannot read the cgroup layout: {exc}"

    def _detect(self) -> None:
        own = _own_paths()
        v1_mounts, v2_mount = _mounts()
        if v2_mount is not None:
            root = v2_mount / own.get("", "/").lstrip("/")
            with contextlib.suppress(OSError):
                self.v2_controllers = set((root / "cgroup.controllers").read_text().split())
            self.v2 = root / "corral" / self.key
        for name in ("memory", "cpu", "pids"):
            if name in v1_mounts:
                self.v1[name] = (
                    v1_mounts[name] / own.get(name, "/").lstrip("/") / "corral" / self.key
                )
        missing = [
            name
            for name in ("memory", "cpu", "pids")
            if name not in self.v1 and not self._on_v2(name)
        ]
        if missing:
            self.problem = f"no cgroup controller for {', '.join(missing)}"
            return
        try:
            self.ensure()
        except OSError as exc:
            self.problem = f"cannot create cgroups: {exc}"

    def ensure(self) -> None:
        """Create the server's base groups (again after a clean-up). Raises OSError."""
        if self.v2 and self._uses_v2():
            self._enable_v2_controllers()
        for base in self._bases():
            base.mkdir(parents=True, exist_ok=True)

    def _on_v2(self, name: str) -> bool:
        return name in self.v2_controllers

    def _uses_v2(self) -> bool:
        return any(self._on_v2(n) and n not in self.v1 for n in ("memory", "cpu", "pids"))

    def _enable_v2_controllers(self) -> None:
        """On a v2 hierarchy, controllers must be enabled in every ancestor's subtree_control."""
        assert self.v2 is not None
        wanted = " ".join(f"+{n}" for n in ("memory", "cpu", "pids") if n not in self.v1)
        self.v2.mkdir(parents=True, exist_ok=True)
        for directory in (self.v2.parent, self.v2):
            (directory / "cgroup.subtree_control").write_text(wanted)

    def _bases(self) -> list[Path]:
        bases = list(self.v1.values())
        if self.v2 is not None:
            bases.append(self.v2)
        return bases

    def create(self, env_id: str, limits: CgroupLimits) -> EnvironmentCgroup:
        """Make the environment's groups and set their limits. Raises OSError."""
        group = EnvironmentCgroup(self, env_id)
        try:
            group.create(limits)
        except BaseException:
            group.remove()
            raise
        return group

    def cleanup_stale(self) -> int:
        """Kill whatever is left in this server's groups and remove them; the count removed."""
        removed = 0
        names = {
            p.name for base in self._bases() if base.is_dir() for p in base.iterdir() if p.is_dir()
        }
        for name in names:
            group = EnvironmentCgroup(self, name)
            group.kill()
            if group.remove(wait_s=2.0):
                removed += 1
        for base in self._bases():  # created again by the next environment
            with contextlib.suppress(OSError):
                base.rmdir()
        return removed


class EnvironmentCgroup:
    """One environment's groups, one per hierarchy in use."""

    def __init__(self, layout: CgroupLayout, env_id: str) -> None:
        self.layout = layout
        self.dirs = [base / env_id for base in layout._bases()]
        self.v2 = layout.v2 / env_id if layout.v2 is not None else None
        self.v1_memory = "memory" in layout.v1
        # a layout without a problem has memory on v1 or on v2
        self.memory: Path = layout.v1["memory"] / env_id if self.v1_memory else self.v2  # type: ignore[assignment]
        self._cpu_quota_us = INIT_CPU_QUOTA_US

    def create(self, limits: CgroupLimits) -> None:
        if not self.dirs[0].parent.is_dir():
            self.layout.ensure()
        for directory in self.dirs:
            directory.mkdir(exist_ok=True)
        layout, memory = self.layout, str(limits.memory_bytes)
        if self.v1_memory:
            _write(self.memory / "memory.limit_in_bytes", memory)
            with contextlib.suppress(FileNotFoundError):  # absent without swap accounting
                _write(self.memory / "memory.memsw.limit_in_bytes", memory)
        else:
            _write(self.memory / "memory.max", memory)
            with contextlib.suppress(FileNotFoundError):
                _write(self.memory / "memory.swap.max", "0")
        env_id = self.memory.name
        if "cpu" in layout.v1:
            cpu = layout.v1["cpu"] / env_id
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(INIT_CPU_QUOTA_US))
        elif self.v2 is not None:
            _write(self.v2 / "cpu.max", f"{INIT_CPU_QUOTA_US} {CPU_PERIOD_US}")
        self._cpu_quota_us = limits.cpu_quota_us
        pids = layout.v1["pids"] / env_id if "pids" in layout.v1 else self.v2
        _write(pids / "pids.max", str(limits.pids_max))  # type: ignore[operator]

    def apply_cpu_share(self) -> None:
        """From init's one vCPU to the steady share in proportion to memory, with a burst
        of one period's quota that an idle environment accrues. Raises OSError."""
        env_id, quota = self.memory.name, self._cpu_quota_us
        if "cpu" in self.layout.v1:
            cpu = self.layout.v1["cpu"] / env_id
            _write(cpu / "cpu.cfs_quota_us", str(quota))
            with contextlib.suppress(OSError):  # kernels before 5.14 have no burst
                _write(cpu / "cpu.cfs_burst_us", str(quota))
        elif self.v2 is not None:
            _write(self.v2 / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            with contextlib.suppress(OSError):
                _write(self.v2 / "cpu.max.burst", str(quota))

    def join(self, *pids: int) -> None:
        """Move processes into every group of the environment. Raises OSError."""
        for directory in self.dirs:
            for pid in pids:
                _write(directory / "cgroup.procs", str(pid))

    def oom_killed(self) -> bool:
        name = "memory.oom_control" if self.v1_memory else "memory.events"
        try:
            for line in (self.memory / name).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1]) > 0
        except (OSError, ValueError):
            pass
        return False

    def max_memory_used_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.v1_memory else "memory.peak"
        try:
            return int((self.memory / name).read_text())
        except (OSError, ValueError):
            return 0

    def kill(self) -> None:
        """SIGKILL every process in the groups. Never waits."""
        if self.v2 is not None and (self.v2 / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.v2 / "cgroup.kill", "1")
                return
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self, wait_s: float = 0.0) -> bool:
        """rmdir every group; True when all are gone. A group still holding a dying process
        answers EBUSY: with `wait_s` (start-up clean-up only), kill and retry until then."""
        deadline = time.monotonic() + wait_s
        while True:
            busy = False
            for directory in self.dirs:
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    busy = True
            if not busy or time.monotonic() >= deadline:
                return not busy
            self.kill()
            time.sleep(0.01)


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
