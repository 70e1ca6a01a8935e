"""Environment state handling against a fake sandbox process: no runtime, no sleeps."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from corral.fleet.environment import Environment, FleetContext, State
from corral.fleet.runtime_api import listening_socket
from corral.fleet.runtimes import RuntimeCatalogue
from corral.model.arn import Scope
from corral.model.function import FunctionConfig
from corral.model.invocation import Invocation
from corral.telemetry.logs import FunctionLogs


class FakeProcess:
    def __init__(self) -> None:
        self.pid = 0
        self.output_fd, self.output_w = os.pipe()
        os.set_blocking(self.output_fd, False)
        self.exit_fd, self._exit_w = os.pipe()  # never readable: the process never exits
        self.returncode = None
        self.killed = False
        self.listener = listening_socket()

    def poll(self):
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        self.returncode = -9

    def max_memory_used_bytes(self) -> int:
        return 20 * 1024 * 1024

    def initialized(self) -> None:
        pass

    def oom_killed(self) -> bool:
        return False

    def close(self) -> None:
        for fd in (self.output_fd, self.output_w, self.exit_fd, self._exit_w):
            os.close(fd)
        self.listener.close()


class FakeSandbox:
    name = "fake"

    def __init__(self) -> None:
        self.process = FakeProcess()

    async def spawn(self, spec):
        self.spec = spec
        return self.process

    def cleanup_stale(self) -> int:
        return 0


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[Invocation] = []

    def send_invocation(self, inv: Invocation, deadline_ms: int) -> bool:
        self.sent.append(inv)
        return True

    def close(self) -> None:
        pass


CONFIG = FunctionConfig(
    name="f",
    role="arn:aws:iam::000000000000:role/x",
    runtime="provided.al2023",
    handler="h",
    code_sha256="x",
    code_hexdigest="0" * 64,
    code_size=1,
    revision_id="r1",
)


def _invocation(request_id: str, timeout_s: int = 3) -> Invocation:
    return Invocation(request_id, b"{}", "arn", timeout_s, "Root=1-x", want_tail=True)


async def _started(tmp_path: Path) -> tuple[Environment, FakeSandbox]:
    sandbox = FakeSandbox()
    ctx = FleetContext(sandbox, RuntimeCatalogue(), FunctionLogs(tmp_path / "logs"), Scope())
    env = Environment("e1", CONFIG, tmp_path, ctx, on_stopped=lambda env: None)
    await env.start()
    return env, sandbox


def test_output_already_in_the_pipe_belongs_to_the_invocation_it_precedes(tmp_path):
    async def main():
        env, sandbox = await _started(tmp_path)
        env.on_next(FakeConnection())
        future = env.invoke(_invocation("req-1"))
        os.write(sandbox.process.output_w, b"printed before answering\n")
        env.on_response("req-1", b'"ok"')  # before the loop ever ran the pipe's reader
        result = future.result()
        env.stop()
        return result

    result = asyncio.run(main())
    assert result.payload == b'"ok"'
    tail = result.log_tail.decode()
    assert tail.index("START RequestId: req-1") < tail.index("printed before answering")
    assert tail.index("printed before answering") < tail.index("END RequestId: req-1")
    assert "Max Memory Used: 20 MB" in tail


def test_invocation_waits_for_the_runtime_to_ask_for_work(tmp_path):
    async def main():
        env, _ = await _started(tmp_path)
        future = env.invoke(_invocation("req-1"))
        assert env.state is State.STARTING and not future.done()
        conn = FakeConnection()
        env.on_next(conn)
        assert [inv.request_id for inv in conn.sent] == ["req-1"]
        assert env.state is State.BUSY
        env.on_response("req-1", b"1")
        assert env.state is State.IDLE
        env.stop()
        return future.result()

    result = asyncio.run(main())
    assert result.init_duration_ms is not None


def test_timeout_stops_the_environment_with_sandbox_timedout(tmp_path):
    async def main():
        env, sandbox = await _started(tmp_path)
        env.on_next(FakeConnection())
        result = await env.invoke(_invocation("req-1", timeout_s=0))
        return env, sandbox, result

    env, sandbox, result = asyncio.run(main())
    assert result.function_error == "Unhandled"
    assert b'"errorType":"Sandbox.Timedout"' in result.payload
    assert b"Task timed out after 0.00 seconds" in result.log_tail
    assert env.state is State.STOPPED and sandbox.process.killed


def _with_layers(tmp_path: Path, mounts_opt: bool, runtime: str) -> tuple[Environment, Path]:
    from corral.model.layers import FunctionLayer

    opt = tmp_path / "merged"
    (opt / "bin").mkdir(parents=True)
    (opt / "bootstrap").write_text("#!/bin/sh\n")

    async def opt_dir(layers):
        return opt

    sandbox = FakeSandbox()
    if mounts_opt:
        sandbox.mounts_opt = True
        sandbox.task_root = "/var/task"
    ctx = FleetContext(
        sandbox, RuntimeCatalogue(), FunctionLogs(tmp_path / "logs"), Scope(), opt_dir=opt_dir
    )
    layer = FunctionLayer("arn:aws:lambda:us-east-1:000000000000:layer:l:1", 1, "a" * 64)
    config = CONFIG.replace(runtime=runtime, layers=(layer,))
    return Environment("e1", config, tmp_path / "code", ctx, on_stopped=lambda env: None), opt


def test_layers_are_seen_at_opt_where_the_sandbox_mounts_them(tmp_path):
    async def main():
        env, opt = _with_layers(tmp_path, mounts_opt=True, runtime="python3.11")
        await env.start()
        spec = env.ctx.sandbox.spec
        env.stop()
        return spec, opt

    spec, opt = asyncio.run(main())
    assert spec.opt_dir == opt
    assert spec.env["CORRAL_OPT_DIR"] == "/opt"
    assert spec.env["PATH"].endswith(":/opt/bin")
    assert "NODE_PATH" not in spec.env  # Node's only (tests/unit/model/test_layers.py)


def test_without_a_mount_the_host_path_is_used_and_a_layer_may_bring_bootstrap(tmp_path):
    async def main():
        env, opt = _with_layers(tmp_path, mounts_opt=False, runtime="provided.al2023")
        await env.start()
        spec = env.ctx.sandbox.spec
        env.stop()
        return spec, opt

    spec, opt = asyncio.run(main())
    assert spec.env["CORRAL_OPT_DIR"] == str(opt)
    assert spec.env["LD_LIBRARY_PATH"].endswith(f":{opt}/lib")
    assert spec.argv == (f"{opt}/bootstrap",)  # the code has no bootstrap of its own
