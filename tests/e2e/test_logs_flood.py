"""A function that floods its log: the rate guard drops the excess and says so, the group
stays under its byte cap, the disk use stays bounded, and the server and other functions'
logs are unaffected. Its own server, with small limits."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid

import pytest

from tests.support import CorralProcess, lambda_client, logs_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
GROUP_CAP = 1_000_000
RATE = 256 * 1024
FLOOD_MB = 40
FLOOD = """
import sys

def handler(event, context):
    chunk = ("x" * 199 + "\\n") * 5000  # 1 MB
    for _ in range(event["mb"]):
        sys.stdout.write(chunk)
    return "flooded"
"""
QUIET = "def handler(event, context):\n    print('quiet', event['n'])\n    return event['n']\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("flood")
    limits = ("--log-group-max-bytes", str(GROUP_CAP), "--log-rate-limit", str(RATE))
    with CorralProcess(data, *limits) as proc:
        yield proc


def _create(lam, source: str, memory_mb: int = 128) -> str:
    name = f"flood-{uuid.uuid4().hex[:8]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        MemorySize=memory_mb,
        Timeout=60,
    )
    return name


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/corral/v1/health", timeout=10) as reply:
        return reply.status == 200


def test_flood_is_capped_and_server_stays_healthy(server):
    lam, logs = lambda_client(server.url), logs_client(server.url)
    flood, quiet = _create(lam, FLOOD, memory_mb=1024), _create(lam, QUIET)
    result: dict = {}

    def run_flood():
        response = lam.invoke(FunctionName=flood, Payload=json.dumps({"mb": FLOOD_MB}).encode())
        result["payload"] = json.loads(response["Payload"].read())

    flooding = threading.Thread(target=run_flood)
    flooding.start()
    n = 0
    while flooding.is_alive() or n < 3:
        n += 1
        assert _healthy(server.url)
        payload = lam.invoke(FunctionName=quiet, Payload=json.dumps({"n": n}).encode())["Payload"]
        assert json.loads(payload.read()) == n
    flooding.join(timeout=120)
    assert result["payload"] == "flooded"

    def quiet_lines():
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{quiet}")["events"]
        lines = [e["message"] for e in events if e["message"].startswith("quiet ")]
        return lines if len(lines) == n else None

    assert wait_until(quiet_lines, what="every quiet line") == [
        f"quiet {i}" for i in range(1, n + 1)
    ]

    group = f"/aws/lambda/{flood}"

    def dropped_reported():
        events = logs.filter_log_events(logGroupName=group, filterPattern='"was dropped"')
        return events["events"] or None

    (marker, *_) = wait_until(dropped_reported, what="the dropped-output line")
    assert marker["message"].startswith(f"[Corral] Function output over {RATE} bytes per second")
    (described,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert 0 < described["storedBytes"] <= GROUP_CAP
    on_disk = sum(f.stat().st_size for f in (server.data_dir / "logs").iterdir())
    assert on_disk < FLOOD_MB * 1024 * 1024 / 4
    assert _healthy(server.url)


def test_all_groups_together_stay_under_the_total_cap(tmp_path):
    """Many groups, each under its own cap, are bounded together: past the total cap the
    server's oldest events go, whatever their group."""
    total = 300_000
    limits = ("--log-group-max-bytes", "10000000", "--log-total-max-bytes", str(total))
    with CorralProcess(tmp_path, *limits) as proc:
        lam, logs = lambda_client(proc.url), logs_client(proc.url)
        source = "def handler(event, context):\n    print(('y' * 999 + '\\n') * 150)\n"
        names = [_create(lam, source) for _ in range(4)]
        for name in names:  # 150 KB each, 600 KB in all: under each group's cap, not the total
            assert "FunctionError" not in lam.invoke(FunctionName=name)
        last = names[-1]

        def settled():
            groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/flood-")
            sizes = {g["logGroupName"]: g["storedBytes"] for g in groups["logGroups"]}
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{last}")["events"]
            reported = any(e["message"].startswith("REPORT") for e in events)
            return sizes if reported else None

        sizes = wait_until(settled, what="the last invocation's REPORT")
    assert sum(sizes.values()) <= total
    assert sizes[f"/aws/lambda/{last}"] > 0
