"""The Python bootstrap, black-box: a subprocess talking to a fake Runtime API in a thread."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corral.fleet.runtimes import PYTHON_BOOTSTRAP_DIR, PYTHON_BOOTSTRAP_MODULE, python_argv

BOOTSTRAP = PYTHON_BOOTSTRAP_DIR / f"{PYTHON_BOOTSTRAP_MODULE}.py"
# The interpreter itself, never a pyenv shim or a venv with a polluted site.
PYTHON = os.path.join(
    sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"
)
API = "/2018-06-01/runtime"


@dataclass
class Invocation:
    body: bytes
    headers: dict[str, str]


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def invocation(event=None, request_id="req-1", body: bytes | None = None, **headers) -> Invocation:
    base = {
        "Lambda-Runtime-Aws-Request-Id": request_id,
        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:f",
        "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    }
    body = json.dumps(event if event is not None else {}).encode() if body is None else body
    return Invocation(body, {**base, **headers})


class FakeRuntimeApi:
    """Hands out queued invocations on GET /next and records every POST.

    When the queue is empty, the next GET /next shuts the API down: the listener closes
    first, so the bootstrap's reconnect is refused, then the connection closes.
    """

    def __init__(self, invocations: list[Invocation], close_each: bool = False):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._pending = list(invocations)
        self._close_each = close_each
        self.posts: list[Post] = []
        self.next_requests = 0
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does. It
        # fails harmlessly if the API already shut itself down.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if not self._serve_connection(conn):
                    return

    def _serve_connection(self, conn: socket.socket) -> bool:
        reader = conn.makefile("rb")
        while request_line := reader.readline():
            method, path, _ = request_line.decode().split(" ", 2)
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", 0)))
            if method == "GET":
                self.next_requests += 1
                if not self._pending:
                    self._listener.close()
                    return False
                queued = self._pending.pop(0)
                self._respond(conn, "200 OK", queued.body, queued.headers)
            else:
                self.posts.append(Post(path, headers, body))
                self._respond(conn, "202 Accepted", b'{"status":"OK"}', {})
            if self._close_each:
                return True
        return True

    def _respond(self, conn, status: str, body: bytes, headers: dict[str, str]) -> None:
        head = [f"HTTP/1.1 {status}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        if self._close_each:
            head.append("Connection: close")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    api: FakeRuntimeApi
    task_root: Path = field(repr=False)

    def post(self, index: int = 0) -> Post:
        assert len(self.posts) > index, f"no POST #{index}; stderr:\n{self.stderr}"
        return self.posts[index]

    @property
    def posts(self) -> list[Post]:
        return self.api.posts


@pytest.fixture
def run_bootstrap(tmp_path):
    apis: list[FakeRuntimeApi] = []

    def run(files, handler, invocations=(), close_each=False, env=None) -> Run:
        task_root = tmp_path / "task"
        task_root.mkdir()
        for name, source in files.items():
            path = task_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        api = FakeRuntimeApi(list(invocations), close_each)
        apis.append(api)
        proc = subprocess.run(
            list(python_argv(PYTHON)),
            cwd=task_root,
            env={
                "AWS_LAMBDA_RUNTIME_API": api.address,
                "_HANDLER": handler,
                "LAMBDA_TASK_ROOT": str(task_root),
                "AWS_LAMBDA_FUNCTION_NAME": "f",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
                "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]abc",
                "AWS_REGION": "us-east-1",
                "PYTHONDONTWRITEBYTECODE": "1",
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, api, task_root)

    yield run
    for api in apis:
        api.close()


ECHO = {"app.py": "def handler(event, context):\n    return {'got': event}\n"}


def test_result_is_posted_as_json_response(run_bootstrap):
    run = run_bootstrap(ECHO, "app.handler", [invocation({"x": [1, "é"]})])

    post = run.post()
    assert post.path == f"{API}/invocation/req-1/response"
    assert post.json() == {"got": {"x": [1, "é"]}}
    assert post.body == b'{"got": {"x": [1, "\\u00e9"]}}'  # json.dumps' default spelling


def test_python312_and_later_write_non_ascii_unescaped(run_bootstrap):
    env = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}
    run = run_bootstrap(ECHO, "app.handler", [invocation("é")], env=env)

    assert run.post().body == '{"got": "é"}'.encode()


def test_none_result_is_null(run_bootstrap):
    files = {"app.py": "def handler(event, context):\n    return None\n"}
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert run.post().body == b"null"


def test_empty_event_body_is_an_empty_dict(run_bootstrap):
    run = run_bootstrap(ECHO, "app.handler", [invocation(body=b"")])

    assert run.post().json() == {"got": {}}


def test_decimal_result_is_written_exactly(run_bootstrap):
    files = {
        "app.py": """
            from decimal import Decimal
            def handler(event, context):
                return {"price": Decimal("1.10"), "big": Decimal("12345678901234567890.123")}
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert run.post().body == b'{"price": 1.10, "big": 12345678901234567890.123}'


def test_handler_exception_posts_error_with_user_frames(run_bootstrap):
    files = {
        "app.py": """
            def handler(event, context):
                return helper()

            def helper():
                raise ValueError("boom")
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    post = run.post()
    error = post.json()
    assert post.path == f"{API}/invocation/req-1/error"
    assert post.headers["lambda-runtime-function-error-type"] == "ValueError"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "boom"
    assert error["requestId"] == "req-1"
    app = run.task_root / "app.py"
    assert error["stackTrace"] == [
        f'  File "{app}", line 3, in handler\n    return helper()\n',
        f'  File "{app}", line 6, in helper\n    raise ValueError("boom")\n',
    ]
    assert "[ERROR] ValueError: boom\nTraceback (most recent call last):\n" in run.stderr


def test_bad_event_json_is_unmarshal_error(run_bootstrap):
    run = run_bootstrap(ECHO, "app.handler", [invocation(body=b"{not json")])

    error = run.post().json()
    assert error["errorType"] == "Runtime.UnmarshalError"
    assert error["errorMessage"] == (
        "Unable to unmarshal input: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )


def test_unserialisable_result_is_marshal_error(run_bootstrap):
    files = {"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"}
    run = run_bootstrap(files, "app.handler", [invocation()])

    post = run.post()
    assert post.path == f"{API}/invocation/req-1/error"
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert post.json()["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        pytest.param(
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
            id="import-error",
        ),
        pytest.param(
            {"app.py": "def handler(event, context)\n    return 1\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app': expected ':' (app.py, line 1)",
            id="syntax-error",
        ),
        pytest.param(
            ECHO,
            "app.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
            id="handler-missing",
        ),
        pytest.param(
            ECHO,
            "apphandler",
            "Runtime.MalformedHandlerName",
            "Bad handler 'apphandler': not enough values to unpack (expected 2, got 1)",
            id="malformed-name",
        ),
        pytest.param(
            {},
            "sys.handler",
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module sys as a handler module",
            id="built-in-module",
        ),
        pytest.param(
            {"app.py": "raise RuntimeError('no config')\n"},
            "app.handler",
            "RuntimeError",
            "no config",
            id="module-raises",
        ),
    ],
)
def test_init_failure_posts_init_error_and_exits(
    run_bootstrap, files, handler, error_type, message
):
    run = run_bootstrap(files, handler, [invocation()])

    post = run.post()
    assert post.path == f"{API}/init/error"
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.json()["errorType"] == error_type
    assert post.json()["errorMessage"] == message
    assert post.json()["requestId"] == ""
    assert run.returncode == 1
    assert run.api.next_requests == 0
    assert f"[ERROR] {error_type}: {message}" in run.stderr


def test_context_carries_invocation_and_function_fields(run_bootstrap):
    files = {
        "app.py": """
            import os

            def handler(event, context):
                cc = context.client_context
                return {
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "aws_request_id": context.aws_request_id,
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                    "identity": [
                        context.identity.cognito_identity_id,
                        context.identity.cognito_identity_pool_id,
                    ],
                    "client": [cc.client.installation_id, cc.client.app_title,
                               cc.client.app_version_name, cc.client.app_version_code,
                               cc.client.app_package_name],
                    "custom": cc.custom,
                    "env": cc.env,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                    "trace_id": os.environ["_X_AMZN_TRACE_ID"],
                }
        """
    }
    client_context = {
        "client": {
            "installation_id": "inst",
            "app_title": "title",
            "app_version_name": "1.0",
            "app_version_code": "100",
            "app_package_name": "com.example",
        },
        "custom": {"k": "v"},
        "env": {"platform": "android"},
    }
    cognito = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    run = run_bootstrap(
        files,
        "app.handler",
        [
            invocation(
                request_id="req-ctx",
                **{
                    "Lambda-Runtime-Client-Context": json.dumps(client_context),
                    "Lambda-Runtime-Cognito-Identity": json.dumps(cognito),
                },
            )
        ],
    )

    fields = run.post().json()
    remaining_ms = fields.pop("remaining_ms")
    assert 0 < remaining_ms <= 60_000
    assert fields == {
        "function_name": "f",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:f",
        "memory_limit_in_mb": "256",  # a string, as awslambdaric gives it
        "aws_request_id": "req-ctx",
        "log_group_name": "/aws/lambda/f",
        "log_stream_name": "2026/01/01/[$LATEST]abc",
        "identity": ["id-1", "pool-1"],
        "client": ["inst", "title", "1.0", "100", "com.example"],
        "custom": {"k": "v"},
        "env": {"platform": "android"},
        "trace_id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    }


def test_bad_client_context_is_context_unmarshal_error(run_bootstrap):
    bad = invocation(**{"Lambda-Runtime-Client-Context": "{oops"})
    run = run_bootstrap(ECHO, "app.handler", [bad])

    error = run.post().json()
    assert error["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert error["errorMessage"].startswith("Unable to parse Client Context JSON: Expecting")


def test_context_without_optional_headers_has_empty_identity(run_bootstrap):
    files = {
        "app.py": """
            def handler(event, context):
                identity = context.identity
                return [identity.cognito_identity_id, identity.cognito_identity_pool_id,
                        context.client_context]
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert run.post().json() == [None, None, None]


@pytest.mark.parametrize("handler", ["pkg/sub/mod.handler", "pkg.sub.mod.handler"])
def test_nested_module_path(run_bootstrap, handler):
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mod.py": "def handler(event, context):\n    return __name__\n",
    }
    run = run_bootstrap(files, handler, [invocation()])

    assert run.post().json() == "pkg.sub.mod"


def test_task_root_leads_sys_path_without_bootstrap_dir(run_bootstrap):
    files = {"app.py": "import sys\ndef handler(event, context):\n    return sys.path\n"}
    run = run_bootstrap(files, "app.handler", [invocation()])

    path = run.post().json()
    assert path[0] == str(run.task_root)
    assert str(BOOTSTRAP.parent) not in path


def test_layer_directories_follow_the_task_root(run_bootstrap, tmp_path):
    # CORRAL_OPT_DIR is where the layers are (/opt in the namespace sandbox); only the
    # directories that exist are added, site-packages first, as in Lambda.
    opt = tmp_path / "opt"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = opt / "python" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (site / "from_site.py").write_text("WHERE = 'site'\n")
    (opt / "python" / "from_python.py").write_text("WHERE = 'python'\n")
    files = {
        "app.py": """
            import sys, from_site, from_python
            def handler(event, context):
                return [sys.path[:3], from_site.WHERE, from_python.WHERE]
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()], env={"CORRAL_OPT_DIR": str(opt)})

    path, *found = run.post().json()
    assert path == [str(run.task_root), str(site), str(opt / "python")]
    assert found == ["site", "python"]


def test_warm_invocations_reuse_one_connection(run_bootstrap):
    files = {
        "app.py": """
            calls = 0
            def handler(event, context):
                global calls
                calls += 1
                return [calls, context.aws_request_id]
        """
    }
    run = run_bootstrap(
        files, "app.handler", [invocation(request_id="a"), invocation(request_id="b")]
    )

    assert [p.json() for p in run.posts] == [[1, "a"], [2, "b"]]
    assert [p.path for p in run.posts] == [
        f"{API}/invocation/a/response",
        f"{API}/invocation/b/response",
    ]
    assert run.api.connections == 1


def test_connection_close_from_the_api_is_followed_by_a_reconnect(run_bootstrap):
    invocations = [invocation(request_id="a"), invocation(request_id="b")]
    run = run_bootstrap(ECHO, "app.handler", invocations, close_each=True)

    assert [p.path for p in run.posts] == [
        f"{API}/invocation/a/response",
        f"{API}/invocation/b/response",
    ]
    assert run.api.connections == 5  # next, response, next, response, final next


def test_bootstrap_exits_when_the_runtime_api_goes_away(run_bootstrap):
    run = run_bootstrap(ECHO, "app.handler", [])

    assert run.returncode != 0
    assert run.api.next_requests == 1
    assert "Runtime API gone" in run.stderr


LOG_LINE = r"\[WARNING\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-1\t"


def test_logging_uses_lambda_format_with_request_id(run_bootstrap):
    files = {
        "app.py": """
            import logging
            def handler(event, context):
                logging.getLogger("app").warning("hello %s", "there")
                return 1
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert re.fullmatch(LOG_LINE + r"hello there\n", run.stdout)


def test_logging_imported_inside_handler_is_configured(run_bootstrap):
    files = {
        "app.py": """
            def handler(event, context):
                import logging
                logging.warning("late")
                return 1
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert re.fullmatch(LOG_LINE + r"late\n", run.stdout)


def test_user_basic_config_is_a_no_op_as_in_lambda(run_bootstrap):
    files = {
        "app.py": """
            import logging
            logging.basicConfig(level=logging.INFO)
            def handler(event, context):
                logging.info("hidden")
                logging.warning("shown")
                return 1
        """
    }
    run = run_bootstrap(files, "app.handler", [invocation()])

    assert re.fullmatch(LOG_LINE + r"shown\n", run.stdout)
    assert "shown" not in run.stderr


def test_unused_heavy_modules_are_never_imported(run_bootstrap):
    files = {"app.py": "import sys\ndef handler(event, context):\n    return sorted(sys.modules)\n"}
    run = run_bootstrap(files, "app.handler", [invocation()])

    loaded = set(run.post().json())
    assert not loaded & {"os", "socket", "json", "re", "logging", "http.client", "traceback"}
