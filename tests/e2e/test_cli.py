"""The `corral` client commands, run as a subprocess against a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import vendored_awslambdaric, wait_until

HELLO = 'def handler(event, context):\n    return {"hello": event.get("name")}\n'


def corral_cli(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CORRAL_ENDPOINT": url}
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ok(url: str, *args: str, stdin: str | None = None) -> str:
    result = corral_cli(url, *args, stdin=stdin)
    assert result.returncode == 0, f"corral {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_app(folder: Path, source: str = HELLO, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(source)
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def deploy(url: str, folder: Path, name: str, *extra: str) -> str:
    args = ["deploy", str(folder), "--name", name, "--handler", "app.handler"]
    return ok(url, *args, "--runtime", "python3.11", *extra)


@pytest.fixture(scope="module")
def hello(corral_url, tmp_path_factory) -> str:
    """A deployed hello function shared by the tests that only invoke it."""
    name = unique("cli-hello")
    deploy(corral_url, write_app(tmp_path_factory.mktemp("hello")), name)
    return name


def test_deploy_creates_function_and_prints_summary(corral_url, tmp_path):
    name = unique("cli-deploy")
    out = deploy(corral_url, write_app(tmp_path / "fn"), name, "--memory", "256")
    assert out.startswith(f"created {name}")
    assert "CodeSha256" in out
    assert "State Active" in out
    assert len(out.strip().splitlines()) == 1


def test_deploy_sets_environment_variables(corral_url, tmp_path):
    source = (
        "import os\ndef handler(event, context):\n    return [os.environ['AA'], os.environ['BB']]\n"
    )
    name = unique("cli-env")
    deploy(corral_url, write_app(tmp_path / "fn", source), name, "--env", "AA=1", "--env", "BB=x=y")
    assert json.loads(ok(corral_url, "invoke", name)) == ["1", "x=y"]


def test_deploy_without_name_uses_folder_name(corral_url, tmp_path):
    name = unique("cli-folder")
    folder = write_app(tmp_path / name)
    ok(corral_url, "deploy", str(folder), "--handler", "app.handler", "--runtime", "python3.11")
    assert json.loads(ok(corral_url, "invoke", name, '{"name": "f"}')) == {"hello": "f"}


def test_deploy_keeps_executable_bit(corral_url, tmp_path):
    # a custom runtime only starts if its `bootstrap` is still executable after the zip
    folder = write_app(tmp_path / "fn")
    script, client = vendored_awslambdaric()
    for relative, content in client.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    bootstrap = folder / "bootstrap"
    bootstrap.write_text(script)
    bootstrap.chmod(0o755)
    name = unique("cli-provided")
    args = ["deploy", str(folder), "--name", name, "--handler", "app.handler"]
    ok(corral_url, *args, "--runtime", "provided.al2023", "--timeout", "10")
    assert json.loads(ok(corral_url, "invoke", name, '{"name": "rie"}')) == {"hello": "rie"}


def test_deploy_of_same_folder_gives_same_code_sha(corral_url, tmp_path):
    folder = write_app(tmp_path / "fn")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"stale")
    first = deploy(corral_url, folder, unique("cli-sha"))
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"other")
    (folder / "app.pyc").write_bytes(b"skipped too")
    second = deploy(corral_url, folder, unique("cli-sha"))
    assert first.split("CodeSha256 ")[1].split()[0] == second.split("CodeSha256 ")[1].split()[0]


def test_invoke_prints_result_of_payload_argument(corral_url, hello):
    out = ok(corral_url, "invoke", hello, '{"name": "arg"}')
    assert json.loads(out) == {"hello": "arg"}


def test_invoke_reads_payload_from_stdin(corral_url, hello):
    out = ok(corral_url, "invoke", hello, "-", stdin='{"name": "stdin"}')
    assert json.loads(out) == {"hello": "stdin"}


def test_invoke_without_payload_sends_empty_object(corral_url, hello):
    assert json.loads(ok(corral_url, "invoke", hello)) == {"hello": None}


def test_invoke_log_prints_tail_to_stderr(corral_url, hello):
    result = corral_cli(corral_url, "invoke", hello, "--log")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"hello": None}
    assert "REPORT RequestId:" in result.stderr


def test_invoke_event_prints_nothing(corral_url, hello):
    result = corral_cli(corral_url, "invoke", hello, '{"name": "async"}', "--event")
    assert (result.returncode, result.stdout) == (0, "")


def test_invoke_of_raising_handler_exits_1_with_error_body(corral_url, tmp_path):
    source = "def handler(event, context):\n    raise ValueError('boom')\n"
    name = unique("cli-raise")
    deploy(corral_url, write_app(tmp_path / "fn", source), name)
    result = corral_cli(corral_url, "invoke", name)
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"


def test_ls_lists_deployed_function(corral_url, hello):
    lines = ok(corral_url, "ls").splitlines()
    assert lines[0].split() == ["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST", "MODIFIED"]
    row = next(line.split() for line in lines if line.split()[0] == hello)
    assert row[1:4] == ["python3.11", "128", "3"]


def test_deploy_again_updates_code_and_configuration(corral_url, tmp_path):
    name = unique("cli-update")
    folder = write_app(tmp_path / "fn")
    deploy(corral_url, folder, name, "--env", "KEEP=yes")
    assert json.loads(ok(corral_url, "invoke", name, '{"name": "v1"}')) == {"hello": "v1"}
    source = "import os\ndef handler(event, context):\n    return {'v2': os.environ['KEEP']}\n"
    write_app(folder, source)
    out = deploy(corral_url, folder, name, "--memory", "512")
    assert out.startswith(f"updated {name}")
    assert json.loads(ok(corral_url, "invoke", name)) == {"v2": "yes"}
    row = next(line.split() for line in ok(corral_url, "ls").splitlines() if name in line)
    assert row[2] == "512"


def test_logs_show_invocation_lines_and_output(corral_url, tmp_path):
    source = "def handler(event, context):\n    print('printed', event['n'])\n    return 1\n"
    name = unique("cli-logs")
    deploy(corral_url, write_app(tmp_path / "fn", source), name)
    ok(corral_url, "invoke", name, '{"n": 42}')

    def complete_log() -> str | None:
        out = ok(corral_url, "logs", name)
        return out if "REPORT RequestId:" in out else None

    log = wait_until(complete_log, timeout_s=10, what="the REPORT line in `corral logs`")
    assert "START RequestId:" in log
    assert "printed 42" in log
    assert "END RequestId:" in log


def test_logs_follow_prints_new_output(corral_url, tmp_path):
    source = "def handler(event, context):\n    print('followed', event['n'])\n"
    name = unique("cli-follow")
    deploy(corral_url, write_app(tmp_path / "fn", source), name)
    follower = subprocess.Popen(
        [sys.executable, "-m", "corral", "logs", name, "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CORRAL_ENDPOINT": corral_url},
    )
    try:
        ok(corral_url, "invoke", name, '{"n": 7}')
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:  # blocks on the pipe; pytest-timeout bounds it
            seen.append(line)
            if "REPORT RequestId:" in line:
                break
        assert any("followed 7" in line for line in seen)
    finally:
        follower.terminate()
        follower.wait(10)


def test_rm_removes_function(corral_url, tmp_path):
    name = unique("cli-rm")
    deploy(corral_url, write_app(tmp_path / "fn"), name)
    ok(corral_url, "rm", name)
    result = corral_cli(corral_url, "invoke", name)
    assert result.returncode == 2
    assert "ResourceNotFoundException" in result.stderr
    assert name not in ok(corral_url, "ls")


@pytest.mark.parametrize("command", [["invoke"], ["rm"], ["logs"]])
def test_unknown_function_exits_2_with_error_type(corral_url, command):
    result = corral_cli(corral_url, *command, unique("cli-missing"))
    assert result.returncode == 2
    assert result.stderr.startswith("corral: ResourceNotFoundException: ")
    assert result.stdout == ""


def test_invalid_configuration_exits_2_with_error_type(corral_url, tmp_path):
    folder = str(write_app(tmp_path / "fn"))
    args = ["--name", unique("cli-bad"), "--handler", "app.handler", "--runtime", "python3.11"]
    result = corral_cli(corral_url, "deploy", folder, *args, "--memory", "64")
    assert result.returncode == 2
    assert result.stderr.startswith("corral: ValidationException: ")


def test_runtimes_lists_python(corral_url):
    rows = [line.split(None, 1) for line in ok(corral_url, "runtimes").splitlines()]
    assert rows[0] == ["RUNTIME", "RUNS ON"]
    assert "python3.11" in {row[0] for row in rows}


def test_queue_shows_depth_running_and_age(corral_url):
    header, values = (line.split() for line in ok(corral_url, "queue").splitlines())
    assert header[:2] == ["DEPTH", "RUNNING"]
    assert all(value.replace(".", "").isdigit() for value in values)


def test_connection_refused_exits_2_with_message():
    # a bound socket that never listens refuses connections, and holding it keeps the port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = corral_cli(url, "ls")
    assert result.returncode == 2
    assert result.stderr.startswith(f"corral: cannot connect to Corral at {url}")
