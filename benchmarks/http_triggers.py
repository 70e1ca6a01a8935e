"""HTTP triggers benchmark (issue #9): the same no-op function called three ways in one run,
through the direct Invoke API, through its function URL (host-based) and through an HTTP
API route (`/api/bench`): warm latency from one sequential client (p50/p99) and requests/s
with wrk at 1 and 16 connections.

The handler returns a constant small object, so all three answer about the same bytes;
the URL and the route add the front door's work: building the payload 2.0 event (about
1 KB instead of the 15-byte Invoke payload) and reading the result as an HTTP response.

Latency: the three paths interleaved request by request on one client, so the machine's
other load affects them alike. Server CPU per request: 2,000 sequential requests each.
Run by `make bench` after run.py; writes benchmarks/results/http-triggers-latest.{json,md}.
Runs with run.py's sandbox only (BENCH_SANDBOX, `process` by default, not `namespace`):
the front door's cost is the server's, which the sandbox does not change.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from run import (  # run.py puts the repository root on sys.path
    HOST,
    INVOKE_PATH,
    RESULTS,
    SANDBOX,
    CorralProcess,
    CpuMeter,
    RawClient,
    call,
    create_function,
    git_commit,
    log,
    machine,
    run_wrk,
    summary_ms,
    wrk_script,
)

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
EVENT = b'{"bench": true}'
SAMPLES = int(os.environ.get("BENCH_HTTP_N", "5000"))
THROUGHPUT_S = int(os.environ.get("BENCH_DURATION_S", "8"))
CONCURRENCY = (1, 16)


class Target:
    """One way to reach the function: a request line, a Host header, a body."""

    def __init__(self, label: str, method: str, path: str, host: str, body: bytes) -> None:
        self.label, self.method, self.path, self.host, self.body = label, method, path, host, body

    def raw(self) -> bytes:
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode() + self.body


def measure_latency(targets: list[Target], port: int) -> dict[str, dict]:
    """Sequential requests, the three paths interleaved (one connection each), so that
    the machine's other load, which moves from second to second here, hits them alike."""
    clients = [RawClient(port) for _ in targets]
    raws = [t.raw() for t in targets]
    errors = [0] * len(targets)
    for _ in range(500):  # warm-up
        for i, (client, raw) in enumerate(zip(clients, raws, strict=True)):
            errors[i] += client.request(raw)[0] != 200
    samples: list[list[int]] = [[] for _ in targets]
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(SAMPLES):
            for i, (client, raw) in enumerate(zip(clients, raws, strict=True)):
                t0 = clock()
                status, _ = client.request(raw)
                samples[i].append(clock() - t0)
                errors[i] += status != 200
    finally:
        gc.enable()
        for client in clients:
            client.close()
    return {t.label: summary_ms(samples[i]) | {"errors": errors[i]} for i, t in enumerate(targets)}


def measure_cpu(server_pid: int, port: int, target: Target, n: int = 2000) -> dict:
    """Server (and environment) CPU time per request over `n` sequential requests: moves
    much less with the machine's load than wall-clock figures."""
    client = RawClient(port)
    raw = target.raw()
    meter = CpuMeter(server_pid)
    for _ in range(n):
        client.request(raw)
    client.close()
    return meter.stop(n)


def measure_throughput(wrk: str, workdir: Path, port: int, target: Target) -> dict:
    script = workdir / f"{target.label}.lua"
    body = target.body.decode()
    script.write_text(wrk_script(body, target.method, {"Host": target.host}))
    url = f"http://{HOST}:{port}{target.path}"
    runs = {}
    for conns in CONCURRENCY:
        run_wrk(wrk, script, url, conns, 1)  # settle the pool at this load
        result = run_wrk(wrk, script, url, conns, THROUGHPUT_S)
        runs[str(conns)] = {
            "requests_per_s": result["invokes_per_s"],
            "non_2xx": result["non_2xx"],
            "mean_latency_ms": result["mean_latency_ms"],
            "socket_errors": result["socket_errors"],
        }
        log(f"{target.label} c={conns}: {result['invokes_per_s']}/s")
    return runs


def setup(port: int) -> list[Target]:
    client = RawClient(port)
    name = f"bench-http-{os.getpid()}"
    status, body = create_function(client, name, HANDLER)
    if status != 201:
        raise RuntimeError(f"CreateFunction: {status} {body[:200]!r}")
    spec = json.dumps({"AuthType": "NONE"}).encode()
    status, body = call(client, "POST", f"/2021-10-31/functions/{name}/url", spec)
    if status != 201:
        raise RuntimeError(f"CreateFunctionUrlConfig: {status} {body[:200]!r}")
    url_host = json.loads(body)["FunctionUrl"].split("//", 1)[1].rstrip("/")
    route = json.dumps({"RouteKey": "ANY /bench", "FunctionName": name}).encode()
    status, body = call(client, "POST", "/corral/v1/routes", route)
    if status != 201:
        raise RuntimeError(f"route: {status} {body[:200]!r}")
    client.close()
    direct = f"{HOST}:{port}"
    return [
        Target("invoke", "POST", INVOKE_PATH.format(name), direct, EVENT),
        Target("function_url", "POST", "/", url_host, EVENT),
        Target("http_route", "POST", "/api/bench", direct, EVENT),
    ]


def markdown(results: dict, stamp: str) -> str:
    lines = [
        f"Corral HTTP triggers vs direct Invoke, {stamp}, commit {results['commit']}, "
        f"sandbox {results['sandbox']}, {results['machine']['nproc']} CPUs",
        "",
        "| Path | p50 | p99 | server CPU/request | req/s, 1 conn | req/s, 16 conns |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in results["targets"].items():
        lat, tp, cpu = row["latency"], row["throughput"], row["cpu"]
        lines.append(
            f"| {label} | {lat['p50_ms']} ms | {lat['p99_ms']} ms "
            f"| {cpu['server_us_per_invoke']} µs "
            f"| {tp['1']['requests_per_s']:,.0f} | {tp['16']['requests_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    wrk = shutil.which("wrk")
    if not wrk:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="corral-bench-http-") as tmp:
        args = ("--keep-alive", "600", "--sandbox", SANDBOX)
        server = CorralProcess(Path(tmp) / "data", *args)
        port = int(server.start().rsplit(":", 1)[1])
        try:
            targets = setup(port)
            latency = measure_latency(targets, port)
            measured = {}
            for target in targets:
                cpu = measure_cpu(server.proc.pid, port, target)
                measured[target.label] = {"latency": latency[target.label], "cpu": cpu}
                log(f"{target.label}: p50 {latency[target.label]['p50_ms']} ms")
            for target in targets:
                runs = measure_throughput(wrk, Path(tmp), port, target)
                measured[target.label]["throughput"] = runs
        finally:
            server.stop()
    results = {
        "machine": machine(),
        **git_commit(),
        "sandbox": SANDBOX,
        "samples": SAMPLES,
        "throughput_s": THROUGHPUT_S,
        "targets": measured,
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "http-triggers-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, stamp)
    (RESULTS / "http-triggers-latest.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
