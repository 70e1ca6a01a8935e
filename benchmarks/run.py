"""`make bench`: measure one Corral server against the targets of DESIGN.md section 6.

Starts its own server (tests/support.py), creates a no-op Python function, and measures
warm invoke latency (1 raw-socket client), throughput (wrk, 1/4/16 connections), cold
starts and CreateFunction, and memory. Writes benchmarks/results/<UTC stamp>.json,
latest.json and latest.md, and prints the Markdown table. A missed target is reported,
never a failure: the exit status is 1 only when the server or the harness broke.
What each number means: benchmarks/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import CorralProcess, children_by_parent, make_zip  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"
WARM_N = int(os.environ.get("BENCH_WARM_N", "10000"))
WARM_MAX_S = 20.0  # stop sampling early on a slow server, to keep the run short
THROUGHPUT_S = int(os.environ.get("BENCH_DURATION_S", "8"))
CONCURRENCY = (1, 4, 16)
COLD_N = int(os.environ.get("BENCH_COLD_N", "40"))
SANDBOX = os.environ.get("BENCH_SANDBOX", "process")  # then namespace again, compared
KEEP_ALIVE_S = "600"  # no environment is reaped while the run lasts
IO_TIMEOUT_S = 30.0

HANDLER = "def handler(event, context):\n    return event\n"
EVENT = b'{"bench": true}'
ROLE = "arn:aws:iam::000000000000:role/x"
INVOKE_PATH = "/2015-03-31/functions/{}/invocations"
INIT_DURATION = re.compile(rb"Init Duration: ([0-9.]+) ms")
HZ = os.sysconf("SC_CLK_TCK")

# DESIGN.md section 6, by the keys of headline()
TARGETS = {
    "warm_p50_ms": ("<=", 0.3),
    "warm_p99_ms": ("<=", 1.0),
    "rps_16": (">=", 7000),
    "cold_p50_ms": ("<=", 20.0 if SANDBOX == "process" else 35.0),
    "create_p50_ms": ("<=", 10.0),
    "idle_env_pss_mb": ("<=", 10.0),
    "server_rss_mb": ("<=", 150.0),
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- raw HTTP client


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + body


class RawClient:
    """One keep-alive HTTP/1.1 connection over a plain socket with TCP_NODELAY.

    http.client costs tens of microseconds per request in Python, a large share of a
    0.3 ms target; this loop does only what a Content-Length response needs.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=IO_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, bytearray()
        return sock

    def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request, read its response; reconnect once if an idle connection died."""
        if self.sock is not None:
            try:
                self.sock.sendall(raw)
                return self._response(self.sock)
            except ConnectionError:  # the server closed it while it was idle
                self.close()
        sock = self._connect()
        sock.sendall(raw)
        return self._response(sock)

    def _fill(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _response(self, sock: socket.socket) -> tuple[int, bytes]:
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            self._fill(sock)
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ValueError(f"response without Content-Length: {head[:200]!r}")
        eol = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17 : eol if eol > 0 else len(head)])
        while len(buf) < total:
            self._fill(sock)
        body = bytes(buf[end + 4 : total])
        del buf[:total]
        if b"\r\nconnection: close" in head:
            self.close()
        return status, body

    def close(self) -> None:
        if self.sock:
            self.sock.close()
        self.sock = None


def call(client: RawClient, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    return client.request(http_request(method, path, body))


def create_function(
    client: RawClient, name: str, source: str, memory_mb: int = 128
) -> tuple[int, bytes]:
    code = base64.b64encode(make_zip({"app.py": source})).decode()
    spec = {"FunctionName": name, "Runtime": "python3.11", "Role": ROLE}
    spec |= {"Handler": "app.handler", "Code": {"ZipFile": code}, "MemorySize": memory_mb}
    return call(client, "POST", "/2015-03-31/functions", json.dumps(spec).encode())


def health(client: RawClient) -> dict:
    status, body = call(client, "GET", "/corral/v1/health")
    return json.loads(body).get("environments", {}) if status == 200 else {"error": status}


# --------------------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure is a real sample)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary_ms(samples_ns: list[int]) -> dict:
    ms = [s / 1e6 for s in samples_ns]
    out = {"samples": len(ms)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        out[f"{name}_ms"] = round(percentile(ms, p), 3) if ms else None
    out["max_ms"] = round(max(ms), 3) if ms else None
    out["mean_ms"] = round(sum(ms) / len(ms), 3) if ms else None
    return out


# --------------------------------------------------------------------------- phases


def measure_warm(server_pid: int, port: int, path: str) -> dict:
    """Sequential invokes on one connection; each timed from send to the last body byte."""
    client = RawClient(port)
    raw = http_request("POST", path, EVENT)
    errors = 0
    warmup_until = time.monotonic() + 1.0
    for _ in range(1000):
        errors += not call_ok(client, raw)
        if time.monotonic() > warmup_until:
            break
    samples: list[int] = []
    stop_at = time.monotonic() + WARM_MAX_S
    clock = time.perf_counter_ns
    meter = CpuMeter(server_pid)
    gc.disable()  # a collection in the client is not the server's latency
    try:
        for _ in range(WARM_N):
            t0 = clock()
            status, _ = client.request(raw)
            samples.append(clock() - t0)
            errors += status != 200
            if len(samples) % 500 == 0 and time.monotonic() > stop_at:
                break
    finally:
        gc.enable()
        client.close()
    cpu = meter.stop(len(samples))
    return summary_ms(samples) | {"errors": errors, "warmup": "1 s or 1,000 invokes", "cpu": cpu}


def call_ok(client: RawClient, raw: bytes) -> bool:
    status, body = client.request(raw)
    return status == 200 and json.loads(body) == json.loads(EVENT)


def concurrent_warmup(port: int, path: str, conns: int, rounds: int = 3) -> int:
    """`conns` simultaneous invokes, `rounds` times: the pool scales to `conns` environments."""
    raw = http_request("POST", path, EVENT)
    barrier = threading.Barrier(conns)
    failures: list[str] = []

    def worker() -> None:
        client = RawClient(port)
        try:
            for _ in range(rounds):
                barrier.wait(IO_TIMEOUT_S)
                if not call_ok(client, raw):
                    failures.append("bad response")
        except (OSError, ValueError, threading.BrokenBarrierError) as exc:
            failures.append(repr(exc))
            barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(failures)


_WRK_DONE = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}\\n', summary.requests, summary.duration, e.connect, e.read,
    e.write, e.status, e.timeout))
end
"""


def wrk_script(body: str, method: str = "POST", headers: dict[str, str] | None = None) -> str:
    """A wrk script sending one request over and over and ending with the BENCH_WRK line
    that run_wrk reads."""
    lines = [
        f'wrk.method = "{method}"',
        f"wrk.body = '{body}'",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items()),
    ]
    return "\n".join(lines) + "\n" + _WRK_DONE


def run_wrk(wrk: str, script: Path, url: str, conns: int, seconds: int) -> dict:
    # One wrk thread: it drives 16 connections easily and leaves the second core to the
    # server and its environments, which are what is measured.
    cmd = [wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk rc={out.returncode}: {(out.stdout + out.stderr)[-400:]}")
    w = json.loads(line.removeprefix("BENCH_WRK "))
    secs = w["duration_us"] / 1e6
    ok = w["requests"] - w["status"]
    return {
        "connections": conns,
        "seconds": round(secs, 2),
        "requests": w["requests"],
        "invokes_per_s": round(ok / secs, 1),
        "non_2xx": w["status"],
        "socket_errors": {k: w[k] for k in ("connect", "read", "write", "timeout")},
        # closed loop, so Little's law gives the mean latency without wrk's correction
        "mean_latency_ms": round(conns * secs / w["requests"] * 1e3, 3) if w["requests"] else None,
    }


def measure_throughput(server: CorralProcess, port: int, path: str, workdir: Path) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = workdir / "invoke.lua"
    script.write_text(wrk_script(EVENT.decode()))
    url = f"http://{HOST}:{port}{path}"
    probe = RawClient(port)
    runs: dict[str, dict] = {}
    for conns in CONCURRENCY:
        warm_failures = concurrent_warmup(port, path, conns)
        run_wrk(wrk, script, url, conns, 1)  # settle the pool and the loop at this load
        before = health(probe)
        meter = CpuMeter(server.proc.pid)
        result = run_wrk(wrk, script, url, conns, THROUGHPUT_S)
        result["cpu"] = meter.stop(result["requests"])
        result["memory"] = measure_memory(server.proc.pid)
        result |= {"environments_before": before, "environments_after": health(probe)}
        result["warmup_failures"] = warm_failures
        runs[str(conns)] = result
        log(
            f"c={conns}: {result['invokes_per_s']}/s, non-2xx {result['non_2xx']}, "
            f"environments {result['environments_after']}"
        )
    probe.close()
    return {"runs": runs, "wrk": wrk_version(wrk)}


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stdout + out.stderr).splitlines()[0].strip()


def measure_cold(port: int, memory_mb: int = 128) -> dict:
    """A new function per sample: CreateFunction, then its first invoke, each timed alone.

    Each zip differs by a comment, so every sample stores and unpacks new code as a real
    deployment would.
    """
    client = RawClient(port)
    creates, firsts, failures, names = [], [], [], []
    pending_retries = 0
    stamp = os.getpid()
    for i in range(COLD_N):
        name = f"bench-cold-{stamp}-{i}"
        t0 = time.perf_counter_ns()
        status, body = create_function(client, name, f"# {name}\n{HANDLER}", memory_mb)
        t1 = time.perf_counter_ns()
        if status != 201:
            failures.append(f"create {status}: {body[:200]!r}")
            continue
        raw = http_request("POST", INVOKE_PATH.format(name), EVENT)
        for _ in range(100):  # a Pending function answers 409 ResourceConflictException
            t2 = time.perf_counter_ns()
            status, body = client.request(raw)
            t3 = time.perf_counter_ns()
            if status != 409:
                break
            pending_retries += 1
        if status != 200:
            failures.append(f"invoke {status}: {body[:200]!r}")
            continue
        creates.append(t1 - t0)
        firsts.append(t3 - t2)
        names.append(name)
    inits = [init_duration_ms(client, name) for name in names]
    client.close()
    return {
        "first_invoke": summary_ms(firsts),
        "create_function": summary_ms(creates),
        "init_duration_p50_ms": percentile([i for i in inits if i is not None], 50),
        "pending_retries": pending_retries,
        "failures": failures[:5],
        "failure_count": len(failures),
    }


def init_duration_ms(client: RawClient, name: str) -> float | None:
    """The Init Duration of the function's REPORT line: environment start to first /next."""
    status, body = call(client, "GET", f"/corral/v1/functions/{name}/logs?offset=0&wait_s=1")
    m = INIT_DURATION.search(body) if status == 200 else None
    return float(m.group(1)) if m else None


# --------------------------------------------------------------------------- CPU time


def _cpu_s(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / HZ, sum(values) / HZ


class CpuMeter:
    """CPU time over one measured interval: the server, its environments, the client
    (this process and the wrk it ran) and, by difference, every other process here.

    Where an invoke's CPU goes, and how much of the machine others took meanwhile (the
    box is shared; wall-clock figures move with it, CPU per invoke much less).
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, total = _machine_cpu_s()
        return {
            "server": _cpu_s(self.server_pid),
            "environments": sum(_cpu_s(p) for t in environment_trees(self.server_pid) for p in t),
            "client": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "busy": busy,
            "total": total,
        }

    def stop(self, invokes: int) -> dict:
        end = self._snapshot()
        d = {k: end[k] - self.start[k] for k in end}
        per = 1e6 / invokes if invokes else 0.0
        others = max(0.0, d["busy"] - d["server"] - d["environments"] - d["client"])
        total = d["total"] or 1.0
        return {
            "server_us_per_invoke": round(d["server"] * per),
            "environments_us_per_invoke": round(d["environments"] * per),
            "client_us_per_invoke": round(d["client"] * per),
            "machine_busy_pct": round(100 * d["busy"] / total, 1),
            "other_processes_pct": round(100 * others / total, 1),
        }


# --------------------------------------------------------------------------- memory


def environment_trees(server_pid: int) -> list[list[int]]:
    """Each child of the server (an environment) with all its descendants."""
    kids = children_by_parent()
    trees = []
    for child in kids.get(server_pid, []):
        pids, todo = [], [child]
        while todo:
            pids.append(todo.pop())
            todo.extend(kids.get(pids[-1], []))
        trees.append(pids)
    return trees


def _kb(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mb(pids: list[int]) -> dict:
    pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
    return {"pss_mb": round(pss / 1024, 2), "rss_mb": round(rss / 1024, 2), "processes": len(pids)}


def measure_memory(server_pid: int) -> dict:
    """The server process alone, and each child (one environment with its descendants)."""
    server = {
        "rss_mb": round(_kb(f"/proc/{server_pid}/status", "VmRSS:") / 1024, 2),
        "pss_mb": round(_kb(f"/proc/{server_pid}/smaps_rollup", "Pss:") / 1024, 2),
    }
    envs = [tree_memory_mb(pids) for pids in environment_trees(server_pid)]
    envs = [e for e in envs if e["rss_mb"]]
    pss = [e["pss_mb"] for e in envs]
    return {
        "server": server,
        "environments": len(envs),
        "environment_pss_mb": {"median": percentile(pss, 50), "max": max(pss, default=None)},
        "environment_rss_mb": {"median": percentile([e["rss_mb"] for e in envs], 50)},
        "processes_per_environment": max((e["processes"] for e in envs), default=0),
    }


# --------------------------------------------------------------------------- machine, report


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "memory_mb": _kb("/proc/meminfo", "MemTotal:") // 1024,
        "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
    }


def git_commit() -> dict:
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode:
        return {"commit": "uncommitted", "dirty": True}
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    return {"commit": head.stdout.strip(), "dirty": dirty}


def headline(results: dict) -> dict:
    """The figures that have targets, flat, by the keys of TARGETS."""
    warm = results.get("warm", {})
    runs = results.get("throughput", {}).get("runs", {})
    memory = runs.get(str(CONCURRENCY[-1]), {}).get("memory", {})
    cold = results.get("cold", {})
    return {
        "warm_p50_ms": warm.get("p50_ms"),
        "warm_p99_ms": warm.get("p99_ms"),
        "rps_16": runs.get(str(CONCURRENCY[-1]), {}).get("invokes_per_s"),
        "cold_p50_ms": cold.get("first_invoke", {}).get("p50_ms"),
        "create_p50_ms": cold.get("create_function", {}).get("p50_ms"),
        "idle_env_pss_mb": memory.get("environment_pss_mb", {}).get("median"),
        "server_rss_mb": memory.get("server", {}).get("rss_mb"),
    }


def verdict(key: str, value: float | None) -> str:
    if key not in TARGETS:
        return ""
    if value is None:
        return "n/a"
    op, target = TARGETS[key]
    ok = value <= target if op == "<=" else value >= target
    return "pass" if ok else "miss"


def _fmt(value: object, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value} {unit}".strip()


def _rows(results: dict) -> list[tuple[str, object, str, str]]:
    """(label, value, unit, key in TARGETS or "") for each line of the table."""
    h = headline(results)
    warm = results.get("warm", {})
    runs = results.get("throughput", {}).get("runs", {})
    memory = runs.get(str(CONCURRENCY[-1]), {}).get("memory", {})
    cold = results.get("cold", {})
    rows: list[tuple[str, object, str, str]] = [
        ("Warm invoke p50, 1 client", h["warm_p50_ms"], "ms", "warm_p50_ms"),
        ("Warm invoke p90, 1 client", warm.get("p90_ms"), "ms", ""),
        ("Warm invoke p99, 1 client", h["warm_p99_ms"], "ms", "warm_p99_ms"),
        ("Warm invoke max, 1 client", warm.get("max_ms"), "ms", ""),
    ]
    for conns in CONCURRENCY:
        run = runs.get(str(conns), {})
        envs = sum(v for v in run.get("environments_after", {}).values() if isinstance(v, int))
        label = f"Throughput, {conns} connection{'s' if conns > 1 else ''}"
        label += f" ({run.get('non_2xx', 'n/a')} non-2xx, {envs} environments)"
        rows.append((label, run.get("invokes_per_s"), "/s", "rps_16" if conns == 16 else ""))
    first = cold.get("first_invoke", {})
    env_rss = memory.get("environment_rss_mb", {}).get("median")
    alone = runs.get("1", {}).get("memory", {}).get("environment_pss_mb", {}).get("median")
    rows += [
        ("Cold start p50 (first invoke of a new function)", h["cold_p50_ms"], "ms", "cold_p50_ms"),
        ("Cold start p99", first.get("p99_ms"), "ms", ""),
        ("Init Duration p50 (server's REPORT line)", cold.get("init_duration_p50_ms"), "ms", ""),
        ("CreateFunction p50 (small zip)", h["create_p50_ms"], "ms", "create_p50_ms"),
        ("Idle environment PSS (median)", h["idle_env_pss_mb"], "MB", "idle_env_pss_mb"),
        ("Idle environment RSS (median)", env_rss, "MB", ""),
        ("Idle environment PSS, alone (after the 1-connection run)", alone, "MB", ""),
        ("Server RSS after the 16-connection run", h["server_rss_mb"], "MB", "server_rss_mb"),
    ]
    return rows


def _cpu_note(results: dict) -> list[str]:
    phases = [("1 client, sequential", results.get("warm", {}).get("cpu"))]
    for conns, run in results.get("throughput", {}).get("runs", {}).items():
        plural = "s" if conns != "1" else ""
        phases.append((f"wrk, {conns} connection{plural}", run.get("cpu")))
    lines = ["", "| CPU per invoke (µs) | server | environments | client | others' share |"]
    lines.append("|---|---:|---:|---:|---:|")
    for label, cpu in phases:
        if cpu:
            lines.append(
                f"| {label} | {cpu['server_us_per_invoke']} | {cpu['environments_us_per_invoke']} "
                f"| {cpu['client_us_per_invoke']} | {cpu['other_processes_pct']}% |"
            )
    return lines if len(lines) > 3 else []


def markdown(results: dict) -> str:
    m, g = results["machine"], results["git"]
    lines = [
        f"Corral benchmarks, {results['timestamp']}, commit {g['commit']}"
        + (" (dirty)" if g.get("dirty") and g["commit"] != "uncommitted" else "")
        + f", sandbox `{SANDBOX}`",
        f"{m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, kernel {m['kernel']}, "
        f"load average {m['loadavg_1m']} at the start",
        "",
        "| Measure | Result | Target | |",
        "|---|---:|---:|---|",
    ]
    for label, value, unit, key in _rows(results):
        target = ""
        if key:
            op, t = TARGETS[key]
            target = f"{'≤' if op == '<=' else '≥'} {t:,}{'' if unit == '/s' else ' '}{unit}"
        lines.append(f"| {label} | {_fmt(value, unit)} | {target} | {verdict(key, value)} |")
    lines += _cpu_note(results)
    lines += _namespace_rows(results)
    if results.get("errors"):
        lines += ["", "Errors: " + "; ".join(results["errors"])]
    return "\n".join(lines) + "\n"


def write_results(results: dict) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    table = markdown(results)
    for name, content in (
        (f"{results['timestamp']}.json", text),
        ("latest.json", text),
        ("latest.md", table),
    ):
        tmp = RESULTS / f"{name}.tmp"
        tmp.write_text(content)
        tmp.replace(RESULTS / name)
    return table


# --------------------------------------------------------------------------- main


def run_phase(results: dict, name: str, server: CorralProcess, phase: Callable[[], dict]) -> None:
    """A phase that breaks is recorded, and the others still run while the server lives."""
    if server.proc is None or server.proc.poll() is not None:
        results["errors"].append(f"{name}: skipped, the server is not running")
        return
    t0 = time.monotonic()
    try:
        results[name] = phase()
    except Exception as exc:
        results["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        log(f"{name} failed: {exc!r}\n{server.log()[-2000:]}")
    log(f"{name}: {time.monotonic() - t0:.1f} s")


def benchmark(server: CorralProcess, port: int, workdir: Path) -> dict:
    results: dict = {
        "timestamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "git": git_commit(),
        "sandbox": SANDBOX,
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
        "errors": [],
    }
    client = RawClient(port)
    t0 = time.perf_counter_ns()
    status, body = create_function(client, "bench-noop", HANDLER)
    if status != 201:
        raise RuntimeError(f"CreateFunction answered {status}: {body[:300]!r}")
    path = INVOKE_PATH.format("bench-noop")
    raw = http_request("POST", path, EVENT)
    for _ in range(100):
        status, body = client.request(raw)
        if status != 409:
            break
    if status != 200 or json.loads(body) != json.loads(EVENT):
        raise RuntimeError(f"Invoke answered {status}: {body[:300]!r}")
    results["first_function_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 3)
    client.close()
    run_phase(results, "warm", server, lambda: measure_warm(server.proc.pid, port, path))
    run_phase(
        results, "throughput", server, lambda: measure_throughput(server, port, path, workdir)
    )
    run_phase(results, "cold", server, lambda: measure_cold(port))
    results["headline"] = headline(results)
    results["verdicts"] = {k: verdict(k, v) for k, v in results["headline"].items()}
    return results


# --------------------------------------------------------------------------- sandboxes

# The namespace sandbox caps CPU in proportion to memory after init (1,769 MB = one vCPU,
# as in Lambda): a 128 MB function gets 7 % of a CPU, which a benchmark loop exhausts.
# One vCPU measures the sandbox's own cost rather than the quota's.
NAMESPACE_MEMORY_MB = 1769


def compare_namespace(workdir: Path) -> dict:
    """Warm, cold and idle memory again, on a second server with `--sandbox namespace`."""
    args = ("--keep-alive", KEEP_ALIVE_S, "--sandbox", "namespace")
    server = CorralProcess(workdir / "data-namespace", *args)
    try:
        url = server.start()
    except RuntimeError as exc:
        return {"error": str(exc).splitlines()[-1][:300]}
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    out: dict = {"memory_mb": NAMESPACE_MEMORY_MB}
    try:
        client = RawClient(port)
        status, body = create_function(client, "bench-ns", HANDLER, NAMESPACE_MEMORY_MB)
        path = INVOKE_PATH.format("bench-ns")
        if status != 201 or not call_ok(client, http_request("POST", path, EVENT)):
            return {"error": f"bench-ns: {status} {body[:200]!r}"}
        client.close()
        out["warm"] = measure_warm(server.proc.pid, port, path)
        out["memory"] = measure_memory(server.proc.pid)
        out["cold"] = measure_cold(port, NAMESPACE_MEMORY_MB)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_server(server)
    return out


def _namespace_rows(results: dict) -> list[str]:
    ns = results.get("namespace")
    if not ns:
        return []
    if "warm" not in ns:
        return ["", f"Namespace sandbox not measured: {ns.get('error')}"]
    runs = results.get("throughput", {}).get("runs", {})
    process = {
        "warm": results.get("warm", {}).get("p50_ms"),
        "cold": results.get("cold", {}).get("first_invoke", {}).get("p50_ms"),
        "pss": runs.get("1", {}).get("memory", {}).get("environment_pss_mb", {}).get("median"),
    }
    namespace = {
        "warm": ns["warm"].get("p50_ms"),
        "cold": ns.get("cold", {}).get("first_invoke", {}).get("p50_ms"),
        "pss": ns.get("memory", {}).get("environment_pss_mb", {}).get("median"),
    }
    init = ns.get("cold", {}).get("init_duration_p50_ms")
    overhead = (
        f"{100 * (namespace['warm'] / process['warm'] - 1):+.0f} % (target within 10 %)"
        if namespace["warm"] and process["warm"]
        else "n/a"
    )
    return [
        "",
        f"| Same run: `{SANDBOX}` vs `namespace` ({ns['memory_mb']} MB) | {SANDBOX} | namespace "
        "| Target (namespace) |",
        "|---|---:|---:|---:|",
        f"| Warm invoke p50 | {process['warm']} ms | {namespace['warm']} ms | {overhead} |",
        f"| Cold start p50 (first result) | {process['cold']} ms | {namespace['cold']} ms "
        "| ≤ 35 ms |",
        f"| Init Duration p50 | {results.get('cold', {}).get('init_duration_p50_ms')} ms "
        f"| {init} ms | |",
        f"| Idle environment PSS (one environment) | {process['pss']} MB | {namespace['pss']} MB "
        "| ≤ 10 MB |",
    ]


def stop_server(server: CorralProcess) -> None:
    """Stop the server; report and kill environments it left behind (a server bug)."""
    trees = environment_trees(server.proc.pid) if server.proc else []
    before = {p: _start_time(p) for pids in trees for p in pids}
    server.stop()
    leaked = [p for p, started in before.items() if started and _start_time(p) == started]
    for p in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    if leaked:
        log(f"the server left {len(leaked)} environment process(es) running after SIGTERM")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[19]


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        workdir = Path(tmp)
        args = ("--keep-alive", KEEP_ALIVE_S, "--sandbox", SANDBOX)
        server = CorralProcess(workdir / "data", *args)
        try:
            url = server.start()
        except RuntimeError as exc:
            log(str(exc))
            return 1
        log(f"server at {url}, pid {server.proc.pid}")
        try:
            results = benchmark(server, int(url.rsplit(":", 1)[1].rstrip("/")), workdir)
        except Exception as exc:
            log(f"benchmark failed: {exc!r}\n--- server log ---\n{server.log()[-4000:]}")
            return 1
        finally:
            stop_server(server)
        if SANDBOX != "namespace" and os.environ.get("BENCH_COMPARE_NAMESPACE", "1") == "1":
            log("namespace sandbox: warm, memory, cold")
            results["namespace"] = compare_namespace(workdir)
    results["run_seconds"] = round(time.monotonic() - started, 1)
    table = write_results(results)
    print(table, flush=True)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
