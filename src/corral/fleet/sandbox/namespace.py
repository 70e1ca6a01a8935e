"""The `namespace` backend: bubblewrap namespaces, cgroup limits, an unprivileged uid.

Each environment is `setpriv` (host uid SANDBOX_HOST_UID, no groups) -> `bwrap` with new
user (nested ones disabled), pid, mount, ipc, uts, net and cgroup namespaces, all
capabilities dropped, a read-only root holding /usr, the interpreter prefixes and Corral's
runtimes, the code read-only at /var/task, a tmpfs /tmp of EphemeralStorage, and its
own cgroups (memory, CPU in proportion to memory, pids). The Runtime API listener is
created by this process inside the sandbox's network namespace, so the runtime reaches
127.0.0.1:9001 and nothing else. Decisions and their reasons: docs/adr/0002.

Spawning: bwrap writes the sandbox's pid to --info-fd and waits on --block-fd; in
between, both processes join the cgroups and the listener is made, so nothing runs
unconfined. Not owned here: timeouts and the Runtime API itself (the environment's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corral.fleet.sandbox import SandboxSpec
from corral.fleet.sandbox.cgroups import CgroupLayout, CgroupLimits, EnvironmentCgroup

log = logging.getLogger("corral.fleet")

SANDBOX_UID, SANDBOX_GID = 993, 990  # Lambda's sbx_user1051, as the runtime sees itself
SANDBOX_HOST_UID, SANDBOX_HOST_GID = 100993, 100990  # who it is on the host: nobody's
TASK_ROOT = "/var/task"
LOOPBACK_WAIT_S = 0.5
RUNTIME_API = ("127.0.0.1", 9001)
STAGING_ROOT = Path("/run/corral")
INFO_TIMEOUT_S = 5.0
_CLONE_NEWNET = 0x40000000
_MS_BIND, _MS_REC, _MNT_DETACH = 4096, 16384, 2
_PASSWD = f"sbx_user1051:x:{SANDBOX_UID}:{SANDBOX_GID}::/tmp:/sbin/nologin\n"
_GROUP = f"sbx_user1051:x:{SANDBOX_GID}:\n"
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
_ETC_TRY = ("/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/localtime")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _reachable_from(path: Path) -> Path | None:
    """The highest directory from which a uid with no special rights can reach `path`
    (every directory from it down is o+x), or None if `path` is reachable from `/`."""
    chain = [*reversed(path.parents), path]
    blocked = [i for i, d in enumerate(chain) if not _mode(d) & stat.S_IXOTH]
    if not blocked:
        return None
    return chain[min(blocked[-1] + 1, len(chain) - 1)]


def _mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def unsupported_reason() -> str | None:
    """Why this machine cannot run namespace sandboxes, or None if it can."""
    for tool in ("bwrap", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "the server is not root (cgroups and the setns listener need it)"
    argv = [*_privilege_drop(), "bwrap", "--unshare-user", "--disable-userns", "--unshare-all"]
    argv += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"]
    argv += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "/bin/true"]
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"bwrap does not work here: {probe.stderr.strip()[:200]}"
    return None


def _process_identity(pid: int) -> str:
    """`pid starttime`: names one process, even after its pid is reused ("" if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _abandon(pid: int) -> None:
    """Kill and reap a bwrap that never became an environment."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _privilege_drop() -> list[str]:
    return [
        "setpriv",
        f"--reuid={SANDBOX_HOST_UID}",
        f"--regid={SANDBOX_HOST_GID}",
        "--clear-groups",
        "--no-new-privs",
        # bwrap's --die-with-parent covers the sandbox, not bwrap itself: without this, a
        # killed server leaves a bwrap that was waiting on --block-fd behind
        "--pdeathsig=KILL",
    ]


class _Staging:
    """Read-only views of host directories the sandbox uid could not reach (an ancestor
    such as root's home is 0700), bind-mounted under /run/corral/<key>. bwrap runs as
    that uid, so its mount sources must be reachable; inside the sandbox none of this is."""

    def __init__(self, key: str) -> None:
        self.dir = STAGING_ROOT / key
        self._views: dict[Path, Path] = {}

    def source(self, path: Path) -> Path:
        """Where bwrap finds `path`: itself, or the same directory through a view. One
        view serves everything below it (all code directories share one)."""
        top = _reachable_from(path)
        if top is None:
            return path
        view = self._views.get(top)
        if view is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for directory in (STAGING_ROOT, self.dir):
                os.chmod(directory, 0o711)
            # Written whole (rename), as other servers read it in cleanup_stale.
            partial = self.dir / f"owner.{os.getpid()}"
            partial.write_text(_process_identity(os.getpid()))
            partial.replace(self.dir / "owner")
            view = self.dir / str(len(self._views))
            view.mkdir(exist_ok=True)
            flags = _MS_BIND | _MS_REC
            _check(_libc.mount(str(top).encode(), str(view).encode(), None, flags, None))
            self._views[top] = view
        return view / path.relative_to(top)

    def clear(self) -> int:
        """Unmount and remove every view, this run's and a killed server's."""
        removed = 0
        if not self.dir.is_dir():
            return 0
        for view in self.dir.iterdir():
            if view.name.startswith("owner"):
                view.unlink()
            elif _libc.umount2(str(view).encode(), _MNT_DETACH) == 0:
                removed += 1
            with contextlib.suppress(OSError):
                view.rmdir()
        with contextlib.suppress(OSError):
            self.dir.rmdir()
        self._views.clear()
        return removed


def _check_entry_point(spec: SandboxSpec) -> None:
    """Raise the OSError exec would give for an entry point in the code that cannot run,
    naming it as the function sees it (under /var/task), never by its host path."""
    entry, code_dir = spec.argv[0], str(spec.code_dir)
    if entry.startswith(code_dir + "/") and not os.access(entry, os.X_OK):
        seen = TASK_ROOT + entry[len(code_dir) :]
        if os.path.lexists(entry):
            raise PermissionError(errno.EACCES, "permission denied", seen)
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", seen)


class NamespaceSandboxProcess:
    __slots__ = (
        "_cgroup",
        "_init_fd",
        "_sandbox",
        "exit_fd",
        "listener",
        "output_fd",
        "pid",
        "returncode",
    )

    def __init__(
        self,
        sandbox: NamespaceSandbox,
        pid: int,
        init_fd: int,
        output_fd: int,
        cgroup: EnvironmentCgroup,
        listener: socket.socket,
    ) -> None:
        self._sandbox = sandbox
        self.pid = pid  # the bwrap outside, our child
        self._init_fd = init_fd  # a pidfd of the sandbox's pid 1 (bwrap's init inside)
        self.output_fd = output_fd
        self.exit_fd = os.pidfd_open(pid)
        self.listener = listener
        self._cgroup = cgroup
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                code = os.waitstatus_to_exitcode(status)
                # bwrap reports its child's death by signal N as exit status 128+N
                if 128 < code <= 128 + signal.NSIG:
                    code = 128 - code
                self.returncode = code
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the sandbox's pid 1: the kernel ends its whole pid namespace, and the
        outer bwrap reaps it and exits. (Killing the outer one first, or the cgroup at
        once, would leave pid 1 a zombie for the host's init.)"""
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
            except ProcessLookupError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)

    def initialized(self) -> None:
        with contextlib.suppress(OSError):
            self._cgroup.apply_cpu_share()

    def oom_killed(self) -> bool:
        return self._cgroup.oom_killed()

    def max_memory_used_bytes(self) -> int:
        return self._cgroup.max_memory_used_bytes()

    def close(self) -> None:
        for fd in (self.exit_fd, self.output_fd, self._init_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._sandbox.release(self._cgroup)


class NamespaceSandbox:
    name = "namespace"
    mounts_opt = True  # a function's layers are at /opt (SandboxSpec.opt_dir)
    task_root = TASK_ROOT  # where the function sees its code

    def __init__(self, run_dir: Path, exposed: list[Path]) -> None:
        """`exposed`: host directories every runtime may read (interpreter prefixes,
        Corral's runtimes directory), mounted read-only at the same path."""
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
        self.cgroups = CgroupLayout(key)
        self._staging = _Staging(key)
        self._exposed = sorted({p.resolve() for p in exposed if p.is_dir()})
        self._leftover: list[EnvironmentCgroup] = []
        self._etc = run_dir / "etc"
        self._etc.mkdir(exist_ok=True)
        for name, content in (("passwd", _PASSWD), ("group", _GROUP), ("hosts", _HOSTS)):
            (self._etc / name).write_text(content)
        # cgroup migration and setns block (6-12 ms measured): off the event loop, and
        # in one thread, so a thread that changed its network namespace is never shared.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="corral-sandbox")
        self._base_args: list[str] | None = None
        self._exposed_args: list[str] = []

    def _common_args(self) -> list[str]:
        if self._base_args is None:
            args = [*_privilege_drop(), "bwrap", "--unshare-user", "--disable-userns"]
            args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]
            args += ["--unshare-cgroup", "--die-with-parent", "--new-session"]
            args += ["--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)]
            args += ["--ro-bind", "/usr", "/usr"]
            for name in ("bin", "lib", "lib64", "sbin"):
                target = Path("/", name)
                if target.is_symlink():
                    args += ["--symlink", os.readlink(target), f"/{name}"]
                elif target.is_dir():
                    args += ["--ro-bind", str(target), f"/{name}"]
            self._base_args = args
            # after /tmp and /var/task, so that an exposed path below them stays visible
            exposed = []
            for path in self._exposed:
                if not path.is_relative_to("/usr"):
                    exposed += ["--ro-bind", str(self._staging.source(path)), str(path)]
            for path in _ETC_TRY:
                exposed += ["--ro-bind-try", path, path]
            etc = self._staging.source(self._etc)
            for name in ("passwd", "group", "hosts"):
                exposed += ["--ro-bind", str(etc / name), f"/etc/{name}"]
            exposed += [
                "--dir",
                "/opt",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--hostname",
                "sandbox",
            ]
            exposed += ["--chdir", TASK_ROOT, "--clearenv"]
            self._exposed_args = exposed
        return self._base_args

    def _argv(self, spec: SandboxSpec, info_fd: int, block_fd: int) -> list[str]:
        code = str(spec.code_dir)
        args = [*self._common_args(), "--info-fd", str(info_fd), "--block-fd", str(block_fd)]
        args += ["--ro-bind", str(self._staging.source(spec.code_dir)), TASK_ROOT]
        args += ["--size", str(spec.ephemeral_storage_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        args += self._exposed_args
        if spec.opt_dir is not None:  # the layers, over the empty /opt made above
            args += ["--ro-bind", str(self._staging.source(spec.opt_dir)), "/opt"]
        env = {**spec.env, "LAMBDA_TASK_ROOT": TASK_ROOT}
        env["AWS_LAMBDA_RUNTIME_API"] = f"{RUNTIME_API[0]}:{RUNTIME_API[1]}"
        for name, value in env.items():
            args += ["--setenv", name, value]
        args.append("--")
        # the function's own entry point (custom runtimes) is named by its host path
        args += [TASK_ROOT + a[len(code) :] if a.startswith(code + "/") else a for a in spec.argv]
        return args

    async def spawn(self, spec: SandboxSpec) -> NamespaceSandboxProcess:
        self._retry_leftover()
        limits = CgroupLimits.for_memory(spec.memory_mb, spec.ephemeral_storage_mb)
        cgroup = self.cgroups.create(spec.env_id, limits)
        try:
            return await self._spawn(spec, cgroup)
        except BaseException:
            cgroup.kill()
            self.release(cgroup)
            raise

    async def _spawn(self, spec: SandboxSpec, cgroup: EnvironmentCgroup) -> NamespaceSandboxProcess:
        _check_entry_point(spec)
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        block_r, block_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid, out_r = self._start(self._argv(spec, info_w, block_r), (info_w, block_r))
        except BaseException:
            os.close(info_r)
            os.close(block_w)
            raise
        finally:
            os.close(info_w)
            os.close(block_r)
        loop = asyncio.get_running_loop()
        # bwrap's first steps overlap the migration stall (6-12 ms, see ADR 0002): the
        # sandbox it then clones starts in the groups; _confine joins it again anyway.
        early_join = loop.run_in_executor(self._worker, cgroup.join, pid)
        try:
            child = await self._read_info(info_r)
            init_fd = os.pidfd_open(child)
            await early_join
            try:
                listener = await loop.run_in_executor(
                    self._worker, self._confine, cgroup, pid, child
                )
            except BaseException:
                os.close(init_fd)
                raise
            os.write(block_w, b"1")
        except BaseException:
            _abandon(pid)
            os.close(out_r)
            with contextlib.suppress(BaseException):
                await early_join
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        os.set_blocking(out_r, False)
        return NamespaceSandboxProcess(self, pid, init_fd, out_r, cgroup, listener)

    @staticmethod
    def _start(argv: list[str], pass_fds: tuple[int, ...]) -> tuple[int, int]:
        """Start bwrap (vfork: no Python runs in the child); its pid and output pipe."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                pass_fds=pass_fds,
                start_new_session=True,
                restore_signals=True,
            )
        except BaseException:
            os.close(out_r)
            raise
        finally:
            os.close(out_w)
        popen.returncode = 0  # reaping is ours (pidfd + waitpid); Popen must not try
        return popen.pid, out_r

    async def _read_info(self, fd: int) -> int:
        """The sandbox's pid from bwrap's --info-fd JSON, which may come in several writes."""
        loop = asyncio.get_running_loop()
        buf = b""
        os.set_blocking(fd, False)
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, ready)
            try:
                await asyncio.wait_for(ready, INFO_TIMEOUT_S)
            finally:
                loop.remove_reader(fd)
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError(errno.ECHILD, "bwrap exited before starting the sandbox")
            buf += chunk
            with contextlib.suppress(ValueError):
                return int(json.loads(buf)["child-pid"])

    def _confine(self, cgroup: EnvironmentCgroup, pid: int, child: int) -> socket.socket:
        """In the worker thread: join the cgroups, make the listener in the sandbox's netns."""
        cgroup.join(child)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{child}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(target, _CLONE_NEWNET))
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    _bind_when_loopback_is_up(sock)
                    sock.listen(16)
                    sock.setblocking(False)
                except BaseException:
                    sock.close()
                    raise
            finally:
                # a thread left in the sandbox's netns would poison every later spawn
                if _libc.setns(own, _CLONE_NEWNET) != 0:
                    os.abort()
        finally:
            os.close(own)
            os.close(target)
        return sock

    def release(self, cgroup: EnvironmentCgroup) -> None:
        """Remove an ended environment's cgroups; a group whose last process is still
        exiting is retried at the next spawn and at cleanup."""
        if not cgroup.remove():
            self._leftover.append(cgroup)

    def _retry_leftover(self) -> None:
        if self._leftover:
            self._leftover = [g for g in self._leftover if not g.remove()]

    def cleanup_stale(self) -> int:
        """This server's groups and views, and those of servers that were killed and never
        restarted on their data directory (their owner process is gone)."""
        removed = self.cgroups.cleanup_stale()
        self._leftover.clear()
        self._staging.clear()
        self._base_args = None
        for other in STAGING_ROOT.glob("*/owner"):
            with contextlib.suppress(OSError):
                identity = other.read_text()
                pid = (identity.split() or [""])[0]
                if pid.isdigit() and identity != _process_identity(int(pid)):
                    key = other.parent.name
                    removed += CgroupLayout(key).cleanup_stale()
                    _Staging(key).clear()
        return removed


def _bind_when_loopback_is_up(sock: socket.socket) -> None:
    """Bind the Runtime API address in the sandbox's netns. bwrap brings `lo` up in the
    child concurrently with reporting its pid, so the first bind can meet EADDRNOTAVAIL
    (seen in CI); wait for it, in this worker thread, for up to LOOPBACK_WAIT_S."""
    deadline = time.monotonic() + LOOPBACK_WAIT_S
    while True:
        try:
            sock.bind(RUNTIME_API)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                raise
            time.sleep(0.0005)
