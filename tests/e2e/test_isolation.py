"""Abuse tests of the `namespace` sandbox: each misbehaving function is contained.

Every test runs against a real server started with `--sandbox namespace`; the module is
skipped only where this machine cannot run bubblewrap sandboxes at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest

from corral.fleet.sandbox.namespace import unsupported_reason
from tests.support import CorralProcess, alive, descendants, lambda_client, make_zip, wait_until

REASON = unsupported_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no namespace sandbox: {REASON}")

ROLE = "arn:aws:iam::000000000000:role/x"
ECHO = "def handler(event, context):\n    return event\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with CorralProcess(tmp_path_factory.mktemp("isolation"), "--sandbox", "namespace") as proc:
        assert "sandbox: namespace" in proc.log()
        yield proc


@pytest.fixture(scope="module")
def lam(server):
    return lambda_client(server.url)


def _create(lam, source: str, files: dict[str, str] | None = None, **kw) -> str:
    name = f"iso-{uuid.uuid4().hex[:10]}"
    runtime = kw.pop("Runtime", "python3.11")
    modes = {"bootstrap": 0o755} if files and "bootstrap" in files else None
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip(files or {"app.py": source}, modes)},
        **kw,
    )
    return name


def _invoke(lam, name: str, payload: object = None) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
    return response, json.loads(response["Payload"].read())


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/corral/v1/health", timeout=5) as response:
        return json.load(response)


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _leftovers(data_dir: Path) -> list[str]:
    """The server's cgroups and staging mounts that still exist."""
    key = hashlib.sha256(str((data_dir / "run").resolve()).encode()).hexdigest()[:16]
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    left = [str(p) for p in Path("/run/corral").glob(f"{key}/*")]
    for mount, controller in (("memory", "memory"), ("cpu", "cpu"), ("pids", "pids")):
        base = Path("/sys/fs/cgroup", mount, own.get(controller, "/").lstrip("/"), "corral", key)
        if base.is_dir():
            left += [str(p) for p in base.iterdir() if p.is_dir()]
    if Path("/sys/fs/cgroup/unified").is_dir():
        base = Path("/sys/fs/cgroup/unified", own.get("", "/").lstrip("/"), "corral", key)
        if base.is_dir():
            left += [str(p) for p in base.iterdir() if p.is_dir()]
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [line for line in mounts.splitlines() if f"/run/corral/{key}" in line]
    return left


def test_fork_bomb_hits_the_pids_limit_and_others_keep_working(lam, server):
    bomb = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    forked = 0\n"
        "    while True:\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError as e:\n"
        "            return {'errno': e.errno, 'forked': forked}\n"
        "        if pid == 0:\n"
        "            while True:\n"  # every child forks on, as a real bomb does
        "                try:\n"
        "                    os.fork()\n"
        "                except OSError:\n"
        "                    time.sleep(0.05)\n"
        "        forked += 1\n"
    )
    name = _create(lam, bomb, MemorySize=512, Timeout=30)
    other = _create(lam, ECHO)
    response, body = _invoke(lam, name)
    assert "FunctionError" not in response, body
    assert body["errno"] == 11  # EAGAIN: pids.max reached
    assert _invoke(lam, other, {"still": "working"})[1] == {"still": "working"}
    assert _health(server.url)["status"] == "ok"


def test_memory_bomb_is_out_of_memory_and_the_next_invoke_works(lam, server):
    source = (
        "def handler(event, context):\n"
        "    if event.get('hog'):\n"
        "        blocks = []\n"
        "        while True:\n"
        "            blocks.append(bytearray(16 * 1024 * 1024))\n"
        "    return 'fine'\n"
    )
    name = _create(lam, source, MemorySize=256, Timeout=30)
    response, body = _invoke(lam, name, {"hog": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert _invoke(lam, name)[1] == "fine"
    assert _health(server.url)["status"] == "ok"


def test_filling_tmp_is_enospc_inside_and_writes_nothing_outside(lam, server):
    marker = f"fill-{uuid.uuid4().hex}"
    source = (
        "def handler(event, context):\n"
        "    chunk, written = b'x' * (1024 * 1024), 0\n"
        f"    with open('/tmp/{marker}', 'wb') as f:\n"
        "        try:\n"
        "            while True:\n"
        "                f.write(chunk)\n"
        "                f.flush()\n"
        "                written += len(chunk)\n"
        "        except OSError as e:\n"
        "            return {'errno': e.errno, 'written_mb': written // (1024 * 1024)}\n"
    )
    name = _create(lam, source, MemorySize=512, Timeout=30, EphemeralStorage={"Size": 512})
    response, body = _invoke(lam, name)
    assert "FunctionError" not in response, body
    assert body["errno"] == 28  # ENOSPC
    assert 400 <= body["written_mb"] <= 512
    assert not Path("/tmp", marker).exists()
    assert not list(server.data_dir.rglob(marker))


def test_code_at_var_task_is_read_only(lam):
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    errors = {}\n"
        "    for path in ('/var/task/app.py', '/var/task/new.txt'):\n"
        "        try:\n"
        "            open(path, 'a').close()\n"
        "        except OSError as e:\n"
        "            errors[path] = e.errno\n"
        "    root = os.environ['LAMBDA_TASK_ROOT']\n"
        "    return {'errors': errors, 'root': root, 'cwd': os.getcwd()}\n"
    )
    _, body = _invoke(lam, _create(lam, source))
    # EROFS, or EACCES first for a file the sandbox uid does not own: refused either way
    assert body["errors"]["/var/task/new.txt"] == 30
    assert body["errors"]["/var/task/app.py"] in (13, 30)
    assert body["root"] == body["cwd"] == "/var/task"


def test_other_functions_code_and_the_data_directory_are_not_visible(lam, server):
    secret = f"secret_{uuid.uuid4().hex}"
    _create(lam, "", files={"app.py": ECHO, f"{secret}.py": "KEY = 1\n"})
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    seen = []\n"
        "    for top in ('/var', '/tmp', '/opt', '/etc', '/work', '/run', '/home'):\n"
        "        for dirpath, dirnames, filenames in os.walk(top):\n"
        "            seen += [n for n in filenames if n.startswith('secret_')]\n"
        "    return {'seen': seen, 'data_dir': os.path.exists(event['data_dir']),\n"
        "            'task': sorted(os.listdir('/var/task'))}\n"
    )
    name = _create(lam, source)
    _, body = _invoke(lam, name, {"data_dir": str(server.data_dir.resolve())})
    assert body == {"seen": [], "data_dir": False, "task": ["app.py"]}


def test_host_secrets_and_host_processes_are_not_visible(lam, server):
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    try:\n"
        "        open('/etc/shadow').read()\n"
        "        shadow = 'readable'\n"
        "    except OSError as e:\n"
        "        shadow = e.errno\n"
        "    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "    return {'shadow': shadow, 'pids': pids, 'uid': os.getuid(),\n"
        "            'server': os.path.exists(f\"/proc/{event['server']}/cmdline\")}\n"
    )
    _, body = _invoke(lam, _create(lam, source), {"server": server.proc.pid})
    assert body["shadow"] == 2  # ENOENT: no /etc/shadow in the sandbox
    assert body["pids"] == [1, 2]  # bwrap's init and the runtime
    assert body["uid"] == 993
    assert body["server"] is False


def test_control_plane_and_host_loopback_services_are_refused(lam, server):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        control_port = int(server.url.rsplit(":", 1)[1])
        source = (
            "import socket\n"
            "def handler(event, context):\n"
            "    out = {}\n"
            "    for port in event['ports'] + [9001]:\n"
            "        try:\n"
            "            socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
            "            out[str(port)] = 'connected'\n"
            "        except OSError as e:\n"
            "            out[str(port)] = e.errno\n"
            "    return out\n"
        )
        ports = [control_port, other.getsockname()[1]]
        _, body = _invoke(lam, _create(lam, source), {"ports": ports})
    finally:
        other.close()
    assert body == {str(ports[0]): 111, str(ports[1]): 111, "9001": "connected"}  # ECONNREFUSED


def test_runtime_that_never_asks_for_work_is_killed_at_init_timeout(lam, server):
    marker = f"never-{uuid.uuid4().hex[:8]}"
    bootstrap = f"#!/bin/sh\nexec /bin/sh -c 'sleep 1000; true' {marker}\n"
    name = _create(lam, "", files={"bootstrap": bootstrap}, Runtime="provided.al2023")
    response, body = _invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    wait_until(lambda: not _with_marker(marker), what="the runtime killed")


def test_handler_sleeping_past_its_timeout_is_killed_and_replaced(lam, server):
    source = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"
    )
    name = _create(lam, source, Timeout=1)
    _, first_stream = _invoke(lam, name)
    response, body = _invoke(lam, name, {"sleep": 30})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    _, next_stream = _invoke(lam, name)
    assert next_stream != first_stream


def test_closed_stdout_and_a_daemon_are_cleaned_up_with_the_environment(lam, server):
    marker = f"daemon-{uuid.uuid4().hex[:8]}"
    source = (
        "import os, subprocess\n"
        "def handler(event, context):\n"
        "    if event.get('daemon'):\n"
        f"        subprocess.Popen(['/bin/sh', '-c', 'sleep 1000; : {marker}'],\n"
        "                         start_new_session=True, stdout=subprocess.DEVNULL)\n"
        "        return 'spawned'\n"
        "    os.close(1)\n"
        "    os.close(2)\n"
        "    return 'closed'\n"
    )
    name = _create(lam, source)
    assert _invoke(lam, name, {"daemon": True})[1] == "spawned"
    assert _invoke(lam, name)[1] == "closed"
    assert _invoke(lam, name, {"daemon": True})[1] == "spawned"  # still working
    assert len(_with_marker(marker)) >= 2
    # a configuration change drains and ends the environment
    lam.update_function_configuration(FunctionName=name, Description="drain")
    wait_until(lambda: not _with_marker(marker), what="the daemons ended with the environment")


def test_nothing_is_left_after_stop_or_after_kill_9_and_restart(tmp_path):
    server = CorralProcess(tmp_path, "--sandbox", "namespace")
    client = lambda_client(server.start())
    name = f"iso-{uuid.uuid4().hex[:10]}"
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": ECHO})},
    )
    assert _invoke(client, name, {"a": 1})[1] == {"a": 1}
    sandboxes = descendants(server.proc.pid)
    assert sandboxes and _leftovers(tmp_path)
    server.kill()
    wait_until(lambda: not any(alive(p) for p in sandboxes), what="sandboxes die with the server")
    restarted = CorralProcess(tmp_path, "--sandbox", "namespace")
    try:
        client = lambda_client(restarted.start())
        assert _leftovers(tmp_path) == []  # the killed server's groups are gone at start
        assert _invoke(client, name, {"b": 2})[1] == {"b": 2}
        sandboxes = descendants(restarted.proc.pid)
    finally:
        restarted.stop()
    assert not any(alive(p) for p in sandboxes)
    assert _leftovers(tmp_path) == []
