"""Execution environments: keep-alive reaping, draining on update, memory limits."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support import CorralProcess, lambda_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
VERSIONED = """
import time
VERSION = {version!r}
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return VERSION
"""


def _environments(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/corral/v1/health", timeout=5) as response:
        return json.load(response)["environments"]


def _create(client, source: str, **kw) -> str:
    name = f"env-{uuid.uuid4().hex[:10]}"
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        **kw,
    )
    return name


def _invoke(client, name: str, payload: dict) -> tuple[dict, object]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return response, json.loads(response["Payload"].read())


def test_idle_environments_are_reaped_after_keep_alive(tmp_path):
    with CorralProcess(tmp_path, "--keep-alive", "0.5") as server:
        client = lambda_client(server.url)
        name = _create(client, VERSIONED.format(version="v1"))
        _invoke(client, name, {})
        assert _environments(server.url).get("idle") == 1
        wait_until(lambda: not _environments(server.url), what="the idle environment reaped")
        _, body = _invoke(client, name, {})  # scale from zero again
        assert body == "v1"


def test_update_drains_running_invocation_on_old_code(lam):
    name = _create(lam, VERSIONED.format(version="v1"), Timeout=10)
    with ThreadPoolExecutor(1) as pool:
        old = pool.submit(_invoke, lam, name, {"sleep": 1.5})
        endpoint = lam.meta.endpoint_url
        wait_until(lambda: _environments(endpoint).get("busy", 0) >= 1, what="v1 running")
        lam.update_function_code(
            FunctionName=name, ZipFile=make_zip({"app.py": VERSIONED.format(version="v2")})
        )
        _, new_body = _invoke(lam, name, {})
        _, old_body = old.result(30)
    assert old_body == "v1"
    assert new_body == "v2"


def test_concurrent_invocations_scale_out_to_separate_environments(lam):
    source = (
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(0.5)\n"
        "    return context.log_stream_name\n"
    )
    name = _create(lam, source)
    with ThreadPoolExecutor(4) as pool:
        streams = list(pool.map(lambda _: _invoke(lam, name, {})[1], range(4)))
    assert len(set(streams)) == 4


def test_memory_beyond_memory_size_fails_the_invocation_not_the_next_one(lam, corral):
    # process: RLIMIT_AS makes the allocation fail in the handler; namespace: the memory
    # cgroup kills the runtime, and the next invocation gets a fresh environment.
    namespace = "sandbox: namespace" in corral.log()
    source = (
        "def handler(event, context):\n"
        "    if event.get('hog'):\n"
        "        block = bytearray(1024 * 1024 * 1024)\n"
        "        return len(block)\n"
        "    return 'fine'\n"
    )
    name = _create(lam, source, MemorySize=128, Timeout=30)
    response, body = _invoke(lam, name, {"hog": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == ("Runtime.OutOfMemory" if namespace else "MemoryError")
    assert _invoke(lam, name, {})[1] == "fine"


def test_report_measures_max_memory_used(lam):
    source = (
        "def handler(event, context):\n"
        "    block = bytearray(64 * 1024 * 1024)\n"
        "    return len(block)\n"
    )
    name = _create(lam, source, MemorySize=256)
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    used = int(tail.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 64 <= used <= 256


def test_output_printed_before_the_answer_is_logged_inside_the_invocation(lam, corral_url):
    # Output reaches the server through a pipe and the answer through a socket; whichever
    # the server sees first, the lines belong between this invocation's START and END.
    source = (
        "def handler(event, context):\n"
        "    for i in range(event['lines']):\n"
        "        print(f'line {i:04d} ' + 'x' * 1000)\n"
        "    return 'done'\n"
    )
    name = _create(lam, source)
    for _ in range(5):
        response = lam.invoke(FunctionName=name, Payload=b'{"lines": 100}', LogType="Tail")
        assert b"line 0099" in base64.b64decode(response["LogResult"])

    def complete_log():
        url = f"{corral_url}/corral/v1/functions/{name}/logs?offset=0"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        return text if text.count("REPORT RequestId") == 5 else None

    log = wait_until(complete_log, what="five REPORT lines")
    for block in log.split("START RequestId: ")[1:]:
        body, _, _ = block.partition("END RequestId: ")
        assert body.count("line 0") == 100
