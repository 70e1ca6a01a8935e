"""`make bench`, per runtime: cold start and warm invoke of a no-op function in each
runtime this host runs (Python, Node.js, Java, a Go and a shell custom runtime).

Starts its own server (the default sandbox, namespace where it works), and for each
runtime creates BENCH_RT_COLD_N new functions (each sample: the first invoke of a new
function, end to end, and its Init Duration), then times BENCH_RT_WARM_N sequential invokes
of one of them on one keep-alive connection. Writes benchmarks/results/runtimes-<stamp>.json,
runtimes-latest.json and runtimes-latest.md, and prints the table. A runtime that cannot
be built or run here is listed with the reason, never a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests.support import CorralProcess, make_zip  # noqa: E402

from corral.fleet.runtimes import RUNTIMES_DIR  # noqa: E402
from run import (  # noqa: E402
    INVOKE_PATH,
    RESULTS,
    RawClient,
    call,
    git_commit,
    http_request,
    init_duration_ms,
    log,
    machine,
    percentile,
    summary_ms,
)

COLD_N = int(os.environ.get("BENCH_RT_COLD_N", "10"))
WARM_N = int(os.environ.get("BENCH_RT_WARM_N", "1000"))
WARM_MAX_S = 10.0  # fewer warm samples for a slow runtime (sh + curl: ~50 ms each)
ROLE = "arn:aws:iam::000000000000:role/x"
EVENT = b'{"bench": true}'

JAVA_SOURCE = """
package bench;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
public class Echo implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        return event;
    }
}
"""

GO_SOURCE = """
package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			panic(err)
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewReader(event))
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	}
}
"""

SHELL_BOOTSTRAP = r"""#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
HEADERS=/tmp/headers
while true; do
  EVENT="$(curl -sS -D "$HEADERS" "$API/next")"
  ID="$(grep -i Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  curl -sS -o /dev/null -X POST "$API/$ID/response" -d "$EVENT"
done
"""


def java_package(workdir: Path) -> bytes:
    src = workdir / "java" / "bench" / "Echo.java"
    src.parent.mkdir(parents=True)
    src.write_text(JAVA_SOURCE)
    out = workdir / "java-classes"
    interfaces = str(RUNTIMES_DIR / "java" / "src")
    subprocess.run(
        ["javac", "--release", "17", "-sourcepath", interfaces, "-d", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(out / "bench" / "Echo.class", "bench/Echo.class")
    return buf.getvalue()


def go_package(workdir: Path) -> bytes:
    build = workdir / "go"
    build.mkdir()
    (build / "main.go").write_text(GO_SOURCE)
    env = {**os.environ, "CGO_ENABLED": "0", "GO111MODULE": "off", "GOFLAGS": ""}
    subprocess.run(["go", "build", "-o", "bootstrap", "main.go"], cwd=build, env=env, check=True)
    return make_zip({"bootstrap": (build / "bootstrap").read_bytes()}, {"bootstrap": 0o755})


def packages(workdir: Path, available: dict[str, str]) -> list[tuple[str, str, str, object]]:
    """(label, runtime, handler, zip bytes or the reason it cannot be measured)"""
    rows: list[tuple[str, str, str, object]] = []
    py = make_zip({"app.py": "def handler(event, context):\n    return event\n"})
    node = make_zip({"index.js": "exports.handler = async (event) => event;\n"})
    for runtime in sorted(available):
        if runtime.startswith("python"):
            rows.append((runtime, runtime, "app.handler", py))
        elif runtime.startswith("nodejs"):
            rows.append((runtime, runtime, "index.handler", node))
    java: object
    try:
        java = java_package(workdir)
    except (OSError, subprocess.SubprocessError) as exc:
        java = f"javac failed: {exc}"
    for runtime in sorted(r for r in available if r.startswith("java")):
        rows.append((runtime, runtime, "bench.Echo", java))
    go: object
    try:
        go = go_package(workdir) if shutil.which("go") else "no Go toolchain here"
    except (OSError, subprocess.SubprocessError) as exc:
        go = f"go build failed: {exc}"
    rows.append(("provided.al2023 (Go)", "provided.al2023", "bootstrap", go))
    shell = make_zip({"bootstrap": SHELL_BOOTSTRAP}, {"bootstrap": 0o755})
    rows.append(("provided.al2023 (sh + curl)", "provided.al2023", "bootstrap", shell))
    return rows


def create(client: RawClient, name: str, runtime: str, handler: str, code: bytes) -> None:
    spec = {"FunctionName": name, "Runtime": runtime, "Role": ROLE, "Handler": handler}
    spec |= {"Code": {"ZipFile": base64.b64encode(code).decode()}, "MemorySize": 512}
    status, body = call(client, "POST", "/2015-03-31/functions", json.dumps(spec).encode())
    if status != 201:
        raise RuntimeError(f"CreateFunction {status}: {body[:300]!r}")


def invoke(client: RawClient, name: str) -> int:
    raw = http_request("POST", INVOKE_PATH.format(name), EVENT)
    t0 = time.perf_counter_ns()
    status, body = client.request(raw)
    elapsed = time.perf_counter_ns() - t0
    if status != 200 or json.loads(body) != {"bench": True}:
        raise RuntimeError(f"invoke {status}: {body[:300]!r}")
    return elapsed


def measure(client: RawClient, label: str, runtime: str, handler: str, code: bytes) -> dict:
    stamp = os.getpid()
    slug = label.split(" ")[0].replace(".", "-") + ("-go" if "Go" in label else "")
    slug += "-sh" if "sh +" in label else ""
    colds, names = [], []
    for i in range(COLD_N):
        name = f"rt-{slug}-{stamp}-{i}"
        create(client, name, runtime, handler, code)
        colds.append(invoke(client, name))
        names.append(name)
    warms: list[int] = []
    stop_at = time.monotonic() + WARM_MAX_S
    while len(warms) < WARM_N and time.monotonic() < stop_at:
        warms.append(invoke(client, names[-1]))
    inits = [init_duration_ms(client, name) for name in names]
    for name in names:  # and their environments: the next runtime starts on a quiet host
        call(client, "DELETE", f"/2015-03-31/functions/{name}")
    return {
        "runtime": label,
        "cold": summary_ms(colds),
        "warm": summary_ms(warms),
        "init_duration_p50_ms": percentile([i for i in inits if i is not None], 50),
    }


def markdown(results: dict) -> str:
    m, g = results["machine"], results["git"]
    lines = [
        f"# Corral per-runtime benchmark ({results['stamp']})",
        "",
        f"commit {g.get('commit')}{' (dirty)' if g.get('dirty') else ''}, sandbox "
        f"{results['sandbox']}, {m['nproc']} cores, Python {m['python']}, load "
        f"{m['loadavg_1m']}; {COLD_N} cold starts (each a new function's first invoke, end "
        f"to end) and {WARM_N} warm invokes per runtime (fewer if that took over "
        f"{WARM_MAX_S:.0f} s), MemorySize 512, a no-op echo handler.",
        "",
        "| runtime | host program | cold p50 | init p50 | warm p50 | warm p99 |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["runtimes"]:
        if "error" in row:
            lines.append(f"| {row['runtime']} | {row.get('program', '')} | n/a: {row['error']} |||")
            continue
        init = row["init_duration_p50_ms"]
        lines.append(
            f"| {row['runtime']} | {row.get('program', '')} | {row['cold']['p50_ms']:.1f} ms | "
            f"{f'{init:.1f} ms' if init is not None else 'n/a'} | "
            f"{row['warm']['p50_ms']:.3f} ms | {row['warm']['p99_ms']:.3f} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="corral-bench-rt-") as tmp:
        workdir = Path(tmp)
        with CorralProcess(workdir / "data", "--keep-alive", "600") as server:
            log(f"server {server.url}")
            with urllib.request.urlopen(f"{server.url}/corral/v1/runtimes", timeout=10) as r:
                described = json.load(r)
            sandbox = next(
                (line.rsplit("sandbox: ", 1)[1].strip().rstrip(")") for line in server.output
                 if "sandbox: " in line),
                "?",
            )  # fmt: skip
            available = {k: v for k, v in described.items() if "unavailable" not in v}
            port = int(server.url.rsplit(":", 1)[1])
            client = RawClient(port)
            rows = []
            for label, runtime, handler, code in packages(workdir, available):
                log(f"measuring {label}")
                program = described.get(runtime, "")
                if not isinstance(code, bytes):
                    rows.append({"runtime": label, "program": program, "error": code})
                    continue
                try:
                    row = measure(client, label, runtime, handler, code)
                except (RuntimeError, OSError) as exc:
                    row = {"runtime": label, "error": str(exc)[:200]}
                row["program"] = program
                rows.append(row)
                if "error" in row:
                    log("server log:\n" + "".join(server.output[-30:]))
            client.close()
    results = {
        "stamp": stamp,
        "machine": machine(),
        "git": git_commit(),
        "sandbox": sandbox,
        "runtimes": rows,
        "unavailable": {k: v for k, v in described.items() if "unavailable" in v},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (RESULTS / f"runtimes-{stamp}.json").write_text(text)
    (RESULTS / "runtimes-latest.json").write_text(text)
    table = markdown(results)
    (RESULTS / "runtimes-latest.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
