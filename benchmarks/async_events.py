"""Asynchronous invocation benchmark (issue #6): how many Event invokes per second Corral
accepts (each committed to the durable queue before its 202), and, at low load, the time
from the 202 to the handler's first line.

Run by `make bench` after run.py; writes benchmarks/results/async-latest.{json,md}.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from run import (  # run.py puts the repository root on sys.path
    HOST,
    RESULTS,
    CorralProcess,
    RawClient,
    call,
    create_function,
    git_commit,
    log,
    machine,
    percentile,
    run_wrk,
    wrk_script,
)

HANDLER = (
    "import time\n"
    "def handler(event, context):\n"
    "    return {'id': event.get('id'), 'start': time.time()}\n"
)
LATENCY_N = 60
LATENCY_GAP_S = 0.02
THROUGHPUT_S = 5
# run.py's script (POST, result line), plus the header that makes it an Event invoke
WRK_EVENT = wrk_script('{"id": "wrk"}', headers={"X-Amz-Invocation-Type": "Event"})


class Collector:
    """Receives OnSuccess records; notes when each arrived."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                record = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with collector.lock:
                    collector.records[record["requestPayload"]["id"]] = record
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.arn = f"arn:aws:webhook:::http://{HOST}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def measure(port: int, workdir: Path) -> dict:
    client = RawClient(port)
    collector = Collector()
    status, body = create_function(client, "bench-async", HANDLER)
    if status != 201:
        raise RuntimeError(f"CreateFunction: {status} {body[:200]!r}")
    config = json.dumps(
        {"DestinationConfig": {"OnSuccess": {"Destination": collector.arn}}}
    ).encode()
    call(client, "PUT", "/2019-09-25/functions/bench-async/event-invoke-config", config)
    path = "/2015-03-31/functions/bench-async/invocations"

    accepted_at: dict[str, float] = {}
    for i in range(LATENCY_N):
        event_id = f"lat-{i}"
        raw = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Amz-Invocation-Type: Event\r\n"
            f'Content-Length: {len(event_id) + 10}\r\n\r\n{{"id": "{event_id}"}}'
        ).encode()
        status, _ = client.request(raw)
        accepted_at[event_id] = time.time()
        if status != 202:
            raise RuntimeError(f"Event invoke answered {status}")
        time.sleep(LATENCY_GAP_S)
    deadline = time.time() + 30
    while len(collector.records) < LATENCY_N and time.time() < deadline:
        time.sleep(0.05)
    delays_ms = sorted(
        (collector.records[k]["responsePayload"]["start"] - accepted_at[k]) * 1000
        for k in accepted_at
        if k in collector.records
    )
    latency = {
        "samples": len(delays_ms),
        "max_ms": round(delays_ms[-1], 3) if delays_ms else None,
        "first_ms": round(
            (collector.records["lat-0"]["responsePayload"]["start"] - accepted_at["lat-0"]) * 1000,
            3,
        )
        if "lat-0" in collector.records
        else None,
        "p50_ms": round(percentile(delays_ms, 50), 3) if delays_ms else None,
        "p99_ms": round(percentile(delays_ms, 99), 3) if delays_ms else None,
    }
    log(f"202 -> handler start: {latency}")

    # Acceptance is measured without a destination: each event is committed, then run.
    call(client, "DELETE", "/2019-09-25/functions/bench-async/event-invoke-config")
    wrk = shutil.which("wrk")
    throughput = {}
    if wrk:
        script = workdir / "event.lua"
        script.write_text(WRK_EVENT)
        for conns in (1, 16):
            result = run_wrk(wrk, script, f"http://{HOST}:{port}{path}", conns, THROUGHPUT_S)
            throughput[str(conns)] = {
                "accepted_per_s": result["invokes_per_s"],
                "non_2xx": result["non_2xx"],
            }
            log(f"c={conns}: {result['invokes_per_s']} Event invokes accepted/s")
    collector.server.shutdown()
    client.close()
    return {"latency_202_to_start": latency, "accepted": throughput}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="corral-bench-async-") as tmp:
        server = CorralProcess(Path(tmp) / "data", "--keep-alive", "600")
        port = int(server.start().rsplit(":", 1)[1])
        try:
            results = {"machine": machine(), **git_commit(), **measure(port, Path(tmp))}
        finally:
            server.stop()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "async-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    latency, accepted = results["latency_202_to_start"], results["accepted"]
    lines = [
        f"Corral asynchronous invocation, {stamp}, commit {results['commit']}",
        "",
        "| Measure | Result |",
        "|---|---:|",
        f"| 202 -> handler start p50 (low load) | {latency['p50_ms']} ms |",
        f"| 202 -> handler start p99 (low load) | {latency['p99_ms']} ms |",
    ]
    for conns, run in accepted.items():
        lines.append(
            f"| Event invokes accepted/s, {conns} connection(s) | {run['accepted_per_s']:,} |"
        )
    (RESULTS / "async-latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
