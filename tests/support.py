"""Helpers shared by the test suites: a real Corral server in a subprocess, and waiting."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

READY = re.compile(r"corral listening on (http://\S+)")


class CorralProcess:
    """`python -m corral serve --port 0` in a subprocess, with its output kept for failures.

    Use as a context manager; `url` is set once the ready line has been read.
    """

    def __init__(
        self,
        data_dir: Path,
        *extra_args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.cwd = cwd
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = 20) -> str:
        cmd = [sys.executable, "-m", "corral", "serve", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--data-dir", str(self.data_dir), *self.extra_args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        self._ready.clear()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout_s) or not self.url:
            self.stop()
            raise RuntimeError("corral did not become ready:\n" + self.log())
        return self.url

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line)
            if not self.url and (m := READY.search(line)):
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole session if it did not exit."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._reader:
            self._reader.join(5)
        self.url = ""
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 the server alone (its children are left to prove clean-up at start)."""
        assert self.proc
        self.proc.kill()
        self.proc.wait(5)
        if self._reader:
            self._reader.join(5)
        self.url = ""

    def __enter__(self) -> CorralProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Callable[[], object], timeout_s: float = 10, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def children_by_parent() -> dict[int, list[int]]:
    """One pass over /proc: parent pid -> its children (live or zombie)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return parents


def descendants(pid: int) -> set[int]:
    """Every live or zombie descendant of `pid`, from /proc."""
    parents = children_by_parent()
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """A zip archive in memory; `modes` sets Unix permission bits (e.g. 0o755 for bootstrap)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def vendored_awslambdaric() -> tuple[str, dict[str, bytes]]:
    """A custom runtime's `bootstrap` running the official awslambdaric client, and the
    client with its dependencies as files for the function's zip: as in Lambda, a custom
    runtime brings its libraries; the interpreter is the host's Python 3.11 (the one a
    sandbox exposes), with -S so that nothing but the zip is importable."""
    site = Path(__import__("awslambdaric").__file__).parent.parent
    files: dict[str, bytes] = {}
    native = [p.name for p in site.glob("runtime_client*.so")]  # awslambdaric's C client
    for package in ("awslambdaric", "simplejson", "snapshot_restore_py.py", *native):
        root = site / package
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            if "__pycache__" not in path.parts:
                files[str(path.relative_to(site))] = path.read_bytes()
    python = os.path.join(
        sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}"
    )
    return f"#!/bin/sh\nexec {python} -S -m awslambdaric app.handler\n", files


def lambda_client(url: str, **kwargs):
    """A boto3 Lambda client pointed at Corral, with retries off so errors surface at once
    and no request is ever sent twice."""
    import boto3
    from botocore.config import Config

    retries = {"total_max_attempts": 1, "mode": "standard"}
    config = Config(retries=retries, read_timeout=60, **kwargs)
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )


def vendored_powertools() -> dict[str, bytes]:
    """aws-lambda-powertools and what it imports (typing_extensions, jmespath) as files for
    a function's zip: pure Python, importable by the python3.11 runtime (-S, only the zip
    on sys.path)."""
    import aws_lambda_powertools

    site = Path(aws_lambda_powertools.__file__).parent.parent
    files: dict[str, bytes] = {}
    for package in ("aws_lambda_powertools", "jmespath", "typing_extensions.py"):
        root = site / package
        paths = [root] if root.is_file() else [p for p in root.rglob("*.py")]
        for path in paths:
            if "__pycache__" not in path.parts:
                files[str(path.relative_to(site))] = path.read_bytes()
    return files


def http_request(
    base_url: str,
    method: str,
    path: str,
    *,
    host: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout_s: float = 60,
):
    """One plain HTTP/1.1 request with http.client (repeated headers kept as given, Host
    set explicitly: `*.localhost` names need not resolve here). Returns (status, headers
    as a list of (lower-case name, value), body)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(base_url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout_s)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or where.netloc)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
        return response.status, [(k.lower(), v) for k, v in response.getheaders()], data
    finally:
        conn.close()


AWS_LAMBDA_RIC_VERSION = "3.3.0"  # the official Node.js runtime interface client (npm)


def vendored_aws_lambda_ric() -> dict[str, bytes]:
    """The official `aws-lambda-ric` npm package as files for a function's zip
    (node_modules/aws-lambda-ric/...), built once per machine: its native part compiles
    aws-lambda-cpp and curl (~2 minutes; needs autoconf, automake, libtool, cmake, g++),
    so the build is kept under ~/.cache/corral-tests and shared by test workers (a lock).
    Raises RuntimeError with npm's output when it cannot be built."""
    import fcntl
    import shutil

    cache = Path.home() / ".cache" / "corral-tests" / f"aws-lambda-ric-{AWS_LAMBDA_RIC_VERSION}"
    package = cache / "node_modules" / "aws-lambda-ric"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (package / "dist" / "rapid-client.node").exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is not installed")
            (cache / "package.json").write_text('{"private": true}')
            build = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--foreground-scripts",
                 f"aws-lambda-ric@{AWS_LAMBDA_RIC_VERSION}"],
                cwd=cache, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if build.returncode != 0 or not (package / "dist" / "rapid-client.node").exists():
                raise RuntimeError(f"npm could not build aws-lambda-ric:\n{build.stderr[-3000:]}")
    files: dict[str, bytes] = {}
    for sub in ("package.json", "bin", "dist"):
        root = package / sub
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                files[f"node_modules/aws-lambda-ric/{path.relative_to(package)}"] = (
                    path.read_bytes()
                )
    return files


def logs_client(url: str):
    """A boto3 CloudWatch Logs client pointed at Corral (same endpoint as Lambda's API)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "logs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
