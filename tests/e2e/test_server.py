"""The server process itself: binding rules, readiness, clean shutdown, restart clean-up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import CorralProcess, alive, descendants, lambda_client, make_zip, wait_until

SLEEPER = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


def _busy(url: str) -> int:
    with urllib.request.urlopen(f"{url}/corral/v1/health", timeout=5) as response:
        return json.load(response)["environments"].get("busy", 0)


def _create_sleeper(client, name: str, timeout: int = 10) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/x",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": SLEEPER})},
        Timeout=timeout,
    )


def test_non_loopback_bind_is_refused_without_auth(tmp_path):
    cmd = [sys.executable, "-m", "corral", "serve", "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.run(
        [*cmd, "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr


def test_sigterm_finishes_running_invocation_and_leaves_no_processes(tmp_path):
    server = CorralProcess(tmp_path)
    url = server.start()
    client = lambda_client(url)
    name = f"sleeper-{uuid.uuid4().hex[:8]}"
    _create_sleeper(client, name)
    client.invoke(FunctionName=name, Payload=b'{"sleep": 0}')  # one warm environment
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.invoke, FunctionName=name, Payload=b'{"sleep": 1.5}')
        wait_until(lambda: _busy(url) == 1, what="the invocation to be running")
        runtimes = descendants(server.proc.pid)
        server.proc.send_signal(signal.SIGTERM)
        response = running.result(timeout=30)
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert server.proc.wait(30) == 0
    wait_until(lambda: not any(alive(pid) for pid in runtimes), what="runtimes to exit")


def test_restart_after_kill_9_cleans_up_orphaned_runtimes(tmp_path):
    server = CorralProcess(tmp_path)
    client = lambda_client(server.start())
    name = f"orphan-{uuid.uuid4().hex[:8]}"
    _create_sleeper(client, name)
    client.invoke(FunctionName=name, Payload=b'{"sleep": 0}')
    runtimes = descendants(server.proc.pid)
    assert runtimes
    server.kill()
    restarted = CorralProcess(tmp_path)
    try:
        client = lambda_client(restarted.start())
        wait_until(lambda: not any(alive(pid) for pid in runtimes), what="orphans killed")
        assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    finally:
        restarted.stop()


@pytest.mark.parametrize("limit", [2])
def test_account_concurrency_limit_throttles_with_429(tmp_path, limit):
    with CorralProcess(tmp_path, "--concurrency-limit", str(limit)) as server:
        client = lambda_client(server.url)
        name = f"throttle-{uuid.uuid4().hex[:8]}"
        _create_sleeper(client, name)
        with ThreadPoolExecutor(limit) as pool:
            busy = [
                pool.submit(client.invoke, FunctionName=name, Payload=b'{"sleep": 2}')
                for _ in range(limit)
            ]
            wait_until(lambda: len(descendants(server.proc.pid)) >= limit, what="environments busy")
            with pytest.raises(client.exceptions.TooManyRequestsException) as caught:
                client.invoke(FunctionName=name, Payload=b"{}")
            assert all(f.result(30)["StatusCode"] == 200 for f in busy)
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Reason"] == "ConcurrentInvocationLimitExceeded"


def test_relative_data_dir_works_as_in_make_serve(tmp_path):
    # `make serve` passes --data-dir .corral: every path handed to runtimes must be absolute.
    with CorralProcess(Path(".corral"), cwd=tmp_path) as server:
        client = lambda_client(server.url)
        name = f"rel-{uuid.uuid4().hex[:8]}"
        _create_sleeper(client, name)
        response = client.invoke(FunctionName=name, Payload=b"{}")
        assert "FunctionError" not in response, response["Payload"].read()
    assert (tmp_path / ".corral" / "corral.db").is_file()
