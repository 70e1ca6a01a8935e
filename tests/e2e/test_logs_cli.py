"""Function logs through the AWS CLI: `aws logs tail --follow` (a CLI v2 command: Debian's
`awscli` package, /usr/bin/aws, installed by scripts/install-system-deps) and the
describe-log-streams, get-log-events and filter-log-events commands of the venv's CLI."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support import make_zip, wait_until

AWS_V1 = str(Path(sys.executable).with_name("aws"))
AWS_V2 = "/usr/bin/aws"
ROLE = "arn:aws:iam::000000000000:role/x"
_NONE_SUCH = ("--log-group-name", "/aws/lambda/none-such")
SOURCE = "def handler(event, context):\n    print(event['say'])\n    return 'ok'\n"


def _cli_v2() -> bool:
    try:
        out = subprocess.run([AWS_V2, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.startswith("aws-cli/2")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("aws-home")
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }


@pytest.fixture
def function(lam, corral_url):
    name = f"cli-logs-{uuid.uuid4().hex[:8]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": SOURCE})},
    )
    return name


def _invoke(lam, name: str, say: str) -> None:
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"say": say}).encode())
    assert "FunctionError" not in response


def _aws(cli_env, corral_url, *args: str) -> dict:
    result = subprocess.run(
        [AWS_V1, "logs", "--endpoint-url", corral_url, "--output", "json", *args],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def _streams(cli_env, corral_url, group: str) -> list[dict]:
    return _aws(cli_env, corral_url, "describe-log-streams", "--log-group-name", group)[
        "logStreams"
    ]


def test_cli_reads_streams_events_and_filters(lam, corral_url, cli_env, function):
    _invoke(lam, function, "needle in the haystack")
    _invoke(lam, function, "just hay")
    group = f"/aws/lambda/{function}"
    streams = wait_until(lambda: _streams(cli_env, corral_url, group), what="a log stream")
    stream = streams[0]["logStreamName"]

    def both_reports():
        events = _aws(
            cli_env,
            corral_url,
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            stream,
            "--start-from-head",
        )["events"]
        return events if sum(e["message"].startswith("REPORT") for e in events) == 2 else None

    events = wait_until(both_reports, what="two REPORT lines")
    assert [e["message"] for e in events][2] == "needle in the haystack"  # after INIT_START, START

    found = _aws(
        cli_env,
        corral_url,
        "filter-log-events",
        "--log-group-name",
        group,
        "--filter-pattern",
        "needle haystack",
    )["events"]
    assert [(e["message"], e["logStreamName"]) for e in found] == [
        ("needle in the haystack", stream)
    ]


def test_cli_error_for_unknown_group(corral_url, cli_env):
    result = subprocess.run(
        [AWS_V1, "logs", "--endpoint-url", corral_url, "describe-log-streams", *_NONE_SUCH],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr


@pytest.mark.skipif(not _cli_v2(), reason="`aws logs tail` needs AWS CLI v2 at /usr/bin/aws")
def test_aws_logs_tail_follow_prints_new_invocations(lam, corral_url, cli_env, function):
    _invoke(lam, function, "before tail")
    group = f"/aws/lambda/{function}"
    wait_until(lambda: _streams(cli_env, corral_url, group), what="the log group")
    tail = subprocess.Popen(
        [AWS_V2, "logs", "tail", group, "--follow", "--format", "short", *_at(corral_url)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in tail.stdout], daemon=True)
    reader.start()
    try:
        marker = f"tail-marker-{uuid.uuid4().hex[:8]}"
        seen = _read_until(lines, "before tail", tail)
        _invoke(lam, function, marker)
        seen += _read_until(lines, marker, tail)
        assert any(line.rstrip().endswith(marker) for line in seen)
        assert any("REPORT RequestId" in line for line in seen)
    finally:
        tail.kill()
        tail.wait(timeout=10)


def _at(url: str) -> tuple[str, str]:
    return ("--endpoint-url", url)


def _read_until(lines: queue.Queue[str], text: str, process: subprocess.Popen) -> list[str]:
    """Lines printed by `process` until one holds `text` (at most 60 s)."""
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                pytest.fail(f"aws logs tail exited: {process.stderr.read()}")
            continue
        seen.append(line)
        if text in line:
            return seen
    pytest.fail(f"{text!r} not printed by aws logs tail; got {seen}")
