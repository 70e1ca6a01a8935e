"""The client commands of `corral`: deploy, invoke, ls, rm, logs, runtimes, queue, stats,
usage.

They speak HTTP to a running server: Lambda's REST API (2015-03-31) for functions and
invocations, Corral's own `/corral/v1/...` for logs and runtimes. API errors (status +
`x-amzn-ErrorType` + `{"Type", "message"}`) become `corral: <Type>: <message>` on stderr
and exit code 2; a function's own error exits 1. `serve` lives in `serve.py`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import stat
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from urllib.parse import quote

import typer

from corral.cli import app

if TYPE_CHECKING:
    import httpx

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/corral"
FUNCTIONS = "/2015-03-31/functions"
LOG_FOLLOW_WAIT_S = 20

# Lambda's wire headers (botocore lambda/2015-03-31 InvocationRequest / InvocationResponse).
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"
INVOCATION_TYPE_HEADER = "X-Amz-Invocation-Type"
LOG_TYPE_HEADER = "X-Amz-Log-Type"
LOG_RESULT_HEADER = "X-Amz-Log-Result"
NEXT_OFFSET_HEADER = "X-Corral-Next-Offset"

# Zip entries get a fixed timestamp so the same folder always gives the same CodeSha256.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3

Endpoint = Annotated[
    str, typer.Option(envvar="CORRAL_ENDPOINT", help="Corral's URL.", show_envvar=True)
]


class ApiError(Exception):
    """An error answer of the server: its `x-amzn-ErrorType` and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def _fail(message: str) -> NoReturn:
    typer.echo(f"corral: {message}", err=True)
    raise typer.Exit(2)


def _api_error(response: httpx.Response) -> ApiError:
    response.read()
    error_type = response.headers.get(ERROR_TYPE_HEADER, "")
    message = ""
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            error_type = error_type or str(body.get("Type", ""))
            message = str(body.get("message") or body.get("Message") or "")
    error_type = error_type.split(":", 1)[0] or f"HTTP {response.status_code}"
    return ApiError(error_type, message or response.reason_phrase)


class _Api:
    """httpx against one endpoint; any status >= 400 raises ApiError."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response


@contextlib.contextmanager
def _api(endpoint: str, read_timeout_s: float | None = 60) -> Iterator[_Api]:
    """A client for `endpoint`; API and connection errors end the command with exit 2."""
    import httpx  # lazily: `corral serve` imports this module and never needs httpx

    timeout = httpx.Timeout(10, read=read_timeout_s)
    try:
        with httpx.Client(base_url=endpoint.rstrip("/"), timeout=timeout) as client:
            yield _Api(client)
    except ApiError as exc:
        _fail(f"{exc.error_type}: {exc.message}")
    except httpx.ConnectError as exc:
        _fail(f"cannot connect to Corral at {endpoint} ({exc}); is `corral serve` running?")
    except httpx.TimeoutException:
        _fail(f"Corral at {endpoint} did not answer in time")
    except httpx.HTTPError as exc:
        _fail(f"request to {endpoint} failed: {exc}")


def _function_path(name: str, suffix: str = "") -> str:
    return f"{FUNCTIONS}/{quote(name, safe=':')}{suffix}"


def _is_terminal() -> bool:
    return sys.stdout.isatty()


@contextlib.contextmanager
def _progress(message: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner on a terminal, nothing otherwise; yields a function to relabel it."""
    if not _is_terminal():
        yield lambda _message: None
        return
    from rich.console import Console

    with Console().status(message) as status:
        yield status.update


# ---- deploy -------------------------------------------------------------------------


def zip_folder(folder: Path) -> bytes:
    """The folder as a zip, byte-for-byte the same for the same content.

    Entries are sorted with a fixed timestamp; the Unix mode (executable bit included) is
    kept in `external_attr`. `__pycache__` folders and `.pyc` files are left out.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _package_files(folder):
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _ZIP_UNIX
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, path.read_bytes(), compresslevel=6)
    return buf.getvalue()


def _package_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files += [Path(root, n) for n in names if not n.endswith(".pyc")]
    return sorted((p for p in files if p.is_file()), key=lambda p: p.relative_to(folder).parts)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        variables[key] = value
    return variables


def _settled(api: _Api, name: str, config: dict) -> dict:
    """Wait while the function is Pending or its last update InProgress, as boto3's
    function_active_v2 / function_updated_v2 waiters do (Lambda offers nothing to wait on)."""
    deadline = time.monotonic() + 300
    delay = 0.05
    while config.get("State") == "Pending" or config.get("LastUpdateStatus") == "InProgress":
        if time.monotonic() > deadline:
            _fail(f"{name} is still {config.get('State')}/{config.get('LastUpdateStatus')}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
        config = api.request("GET", _function_path(name, "/configuration")).json()
    return config


def _exists(api: _Api, name: str) -> bool:
    try:
        api.request("GET", _function_path(name))
    except ApiError as exc:
        if exc.error_type == "ResourceNotFoundException":
            return False
        raise
    return True


@app.command()
def deploy(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder with the function code.")
    ],
    handler: Annotated[str, typer.Option(help="Handler, e.g. app.handler.")],
    runtime: Annotated[str, typer.Option(help="Runtime, e.g. python3.11.")],
    name: Annotated[
        str | None, typer.Option(help="Function name (default: the folder's name).")
    ] = None,
    memory: Annotated[int | None, typer.Option(help="Memory size in MB.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Environment variable KEY=VALUE; repeat.")
    ] = None,
    role: Annotated[str | None, typer.Option(help="Execution role ARN.")] = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Create a function from a folder, or update its code and configuration.

    On update, options not given keep the function's current values.
    """
    name = name or folder.resolve().name
    config: dict = {"Handler": handler, "Runtime": runtime}
    if memory is not None:
        config["MemorySize"] = memory
    if timeout is not None:
        config["Timeout"] = timeout
    if env:
        config["Environment"] = {"Variables": _parse_env(env)}
    if role:
        config["Role"] = role
    with _progress(f"Packaging {folder}") as status:
        zipped = base64.b64encode(zip_folder(folder)).decode()
        with _api(endpoint) as api:
            if _exists(api, name):
                status(f"Updating {name}")
                path = _function_path(name, "/code")
                result = api.request("PUT", path, json={"ZipFile": zipped}).json()
                _settled(api, name, result)
                path = _function_path(name, "/configuration")
                result = api.request("PUT", path, json=config).json()
                action = "updated"
            else:
                status(f"Creating {name}")
                body = {
                    "FunctionName": name,
                    "Role": DEFAULT_ROLE,
                    **config,
                    "Code": {"ZipFile": zipped},
                }
                result = api.request("POST", FUNCTIONS, json=body).json()
                action = "created"
            status(f"Waiting for {name} to be ready")
            result = _settled(api, name, result)
    typer.echo(
        f"{action} {result.get('FunctionName', name)}  CodeSha256 {result.get('CodeSha256')}"
        f"  State {result.get('State')}"
    )


# ---- invoke -------------------------------------------------------------------------


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="Function name or ARN.")],
    payload: Annotated[str, typer.Argument(help="JSON event, or - to read stdin.")] = "{}",
    log: Annotated[bool, typer.Option("--log", help="Print the log tail to stderr.")] = False,
    event: Annotated[
        bool, typer.Option("--event", help="Invoke asynchronously (InvocationType Event).")
    ] = False,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Invoke a function and print its result; exit 1 if the function failed."""
    body = sys.stdin.buffer.read() if payload == "-" else payload.encode()
    headers = {}
    if log:
        headers[LOG_TYPE_HEADER] = "Tail"
    if event:
        headers[INVOCATION_TYPE_HEADER] = "Event"
    # a synchronous invoke may run for the function's whole timeout (up to 900 s)
    with _api(endpoint, read_timeout_s=None) as api:
        response = api.request(
            "POST", _function_path(name, "/invocations"), content=body, headers=headers
        )
    if log and (tail := response.headers.get(LOG_RESULT_HEADER)):
        sys.stderr.write(base64.b64decode(tail).decode("utf-8", "replace"))
        sys.stderr.flush()
    if response.status_code == 202:
        return
    out = sys.stdout.buffer
    out.write(response.content)
    if _is_terminal() and not response.content.endswith(b"\n"):
        out.write(b"\n")
    out.flush()
    if FUNCTION_ERROR_HEADER in response.headers:
        raise typer.Exit(1)


# ---- ls, rm -------------------------------------------------------------------------


def _list_functions(api: _Api) -> list[dict]:
    functions: list[dict] = []
    params: dict[str, str] = {}
    while True:
        page = api.request("GET", f"{FUNCTIONS}/", params=params).json()
        functions += page.get("Functions", [])
        marker = page.get("NextMarker")
        if not marker:
            return functions
        params = {"Marker": marker}


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    if _is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command("ls")
def list_functions(endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """List functions."""
    with _api(endpoint) as api:
        functions = _list_functions(api)
    rows = [
        [
            f.get("FunctionName", ""),
            f.get("Runtime", ""),
            str(f.get("MemorySize", "")),
            str(f.get("Timeout", "")),
            f.get("LastModified", ""),
        ]
        for f in sorted(functions, key=lambda f: f.get("FunctionName", ""))
    ]
    _print_table(["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST MODIFIED"], rows)


@app.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="Function name or ARN.")],
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Delete a function."""
    with _api(endpoint) as api:
        api.request("DELETE", _function_path(name))


# ---- logs, runtimes -----------------------------------------------------------------


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Function name.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until Ctrl-C.")
    ] = False,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Print a function's log: its output and the START/END/REPORT lines."""
    path = f"/corral/v1/functions/{quote(name, safe='')}/logs"
    offset = 0
    out = sys.stdout.buffer
    with contextlib.suppress(KeyboardInterrupt), _api(endpoint, LOG_FOLLOW_WAIT_S + 30) as api:
        while True:
            params = {"offset": str(offset)}
            if follow:
                params["wait_s"] = str(LOG_FOLLOW_WAIT_S)
            response = api.request("GET", path, params=params)
            out.write(response.content)
            out.flush()
            offset = int(response.headers.get(NEXT_OFFSET_HEADER, offset + len(response.content)))
            if not response.content and not follow:
                return


@app.command()
def runtimes(endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """List the runtimes this server can run, and what runs each."""
    with _api(endpoint) as api:
        described = api.request("GET", "/corral/v1/runtimes").json()
    _print_table(["RUNTIME", "RUNS ON"], [[k, str(v)] for k, v in sorted(described.items())])


@app.command()
def queue(endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """Show the asynchronous invocation queue: events waiting or running, and the age of
    the oldest."""
    with _api(endpoint) as api:
        stats = api.request("GET", "/corral/v1/queue").json()
    _print_table(
        ["DEPTH", "RUNNING", "OLDEST AGE (s)"],
        [[str(stats["depth"]), str(stats["running"]), f"{stats['oldest_age_s']:.3f}"]],
    )


# ---- stats, usage -------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command()
def stats(
    name: Annotated[str, typer.Argument(help="Function name.")],
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Show a function's last hour: invocations, errors, p50/p99 duration, cold starts."""
    with _api(endpoint) as api:
        s = api.request("GET", f"/corral/v1/functions/{quote(name, safe='')}/stats").json()
    ratio = s["cold_start_ratio"]
    _print_table(
        ["INVOCATIONS", "ERRORS", "P50 (ms)", "P99 (ms)", "COLD STARTS"],
        [
            [
                str(s["invocations"]),
                str(s["errors"]),
                _ms(s["p50_ms"]),
                _ms(s["p99_ms"]),
                f"{s['cold_starts']} ({ratio:.1%})" if ratio is not None else "0",
            ]
        ],
    )


@app.command()
def usage(
    since: Annotated[
        str | None, typer.Option(help="From this ISO 8601 time (UTC if no zone); default: all.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time; default: now.")] = None,
    function: Annotated[str | None, typer.Option(help="Only this function.")] = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Print what functions used and cost: requests, billed time, GB-seconds, USD."""
    params = {k: v for k, v in (("since", since), ("until", until), ("function", function)) if v}
    with _api(endpoint) as api:
        bill = api.request("GET", "/corral/v1/usage", params=params).json()

    def row(label: str, line: dict) -> list[str]:
        return [
            label,
            str(line["requests"]),
            str(line["billed_ms"]),
            f"{line['gb_seconds']:.6f}",
            f"{line['cost_usd']:.8f}",
        ]

    rows = [row(f["function"], f) for f in bill["functions"]]
    rows.append(row("TOTAL", bill["totals"]))
    _print_table(["FUNCTION", "REQUESTS", "BILLED MS", "GB-SECONDS", "COST (USD)"], rows)
