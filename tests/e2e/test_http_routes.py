"""HTTP API routes end to end: the route table through Corral's REST API and the CLI,
requests through `/api/...` and `Host: api.localhost`, API Gateway's route choice and
errors, and both payload formats as aws-lambda-powertools reads them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.conformance import ROLE, create_python_function, unique_name, wait_active
from tests.e2e.test_function_urls import POWERTOOLS_APP
from tests.support import CorralProcess, http_request, lambda_client, make_zip, vendored_powertools

ROUTED = """
import json, time

def handler(event, context):
    tag = "{tag}"
    path = event.get("rawPath") or event.get("path")
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    if path.endswith("/slow"):
        time.sleep(3)
    return {{"statusCode": 200, "body": json.dumps({{"tag": tag, "event": event}})}}
"""


def _function(lam, tag: str, **kwargs) -> str:
    name = unique_name(tag)
    create_python_function(lam, name, ROUTED.format(tag=tag), **kwargs)
    return name


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Routes are per deployment: this module has its own server and route table."""
    with CorralProcess(tmp_path_factory.mktemp("routes")) as proc:
        yield proc


@pytest.fixture(scope="module")
def lam(server):
    return lambda_client(server.url)


def _add(url: str, key: str, function: str, **extra) -> httpx.Response:
    body = {"RouteKey": key, "FunctionName": function, **extra}
    return httpx.post(f"{url}/corral/v1/routes", json=body)


def _call(url: str, method: str, path: str, **kw):
    status, headers, body = http_request(url, method, path, **kw)
    return status, dict(headers), (json.loads(body) if body else None)


@pytest.fixture(scope="module")
def routed(server, lam):
    url = server.url
    names = {tag: _function(lam, tag, Timeout=10) for tag in ("exact", "param", "greedy", "any")}
    names["default"] = _function(lam, "default")
    for key, tag in [
        ("GET /items/special", "exact"),
        ("GET /items/{id}", "param"),
        ("GET /items/{proxy+}", "greedy"),
        ("ANY /things", "any"),
        ("$default", "default"),
    ]:
        assert _add(url, key, names[tag]).status_code == 201
    assert _add(url, "POST /slow", names["exact"], TimeoutInMillis=300).status_code == 201
    assert _add(url, "GET /boom", names["exact"]).status_code == 201
    return names


def test_route_choice(server, routed):
    url = server.url
    cases = [
        ("GET", "/api/items/special", "exact", None),
        ("GET", "/api/items/42", "param", {"id": "42"}),
        ("GET", "/api/items/42/parts/7", "greedy", {"proxy": "42/parts/7"}),
        ("DELETE", "/api/things", "any", None),
        ("POST", "/api/items/42", "default", None),
        ("GET", "/api/elsewhere", "default", None),
        ("GET", "/api/items/", "default", None),  # {proxy+} needs a child resource
    ]
    for method, path, tag, params in cases:
        status, _, body = _call(url, method, path)
        assert status == 200, (method, path, body)
        assert body["tag"] == tag, (method, path)
        event = body["event"]
        assert event["version"] == "2.0"
        assert event["rawPath"] == path
        assert event["requestContext"]["stage"] == "api"
        assert event.get("pathParameters") == params


def test_route_key_in_event(server, routed):
    _, _, body = _call(server.url, "GET", "/api/items/7?a=1&a=2")
    event = body["event"]
    assert event["routeKey"] == "GET /items/{id}"
    assert event["requestContext"]["routeKey"] == "GET /items/{id}"
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_default_stage_by_host(server, routed):
    status, headers, body = _call(server.url, "GET", "/items/9", host="api.localhost")
    assert status == 200
    assert "apigw-requestid" in headers
    event = body["event"]
    assert event["rawPath"] == "/items/9"
    assert event["requestContext"]["stage"] == "$default"
    assert event["pathParameters"] == {"id": "9"}


def test_errors(server, routed):
    url = server.url
    status, _, body = _call(url, "GET", "/api/boom")
    assert (status, body) == (502, {"message": "Internal Server Error"})
    status, _, body = _call(url, "POST", "/api/slow", body=b"{}")  # 300 ms integration timeout
    assert (status, body) == (503, {"message": "Service Unavailable"})


def test_no_route_is_404(tmp_path):
    with CorralProcess(tmp_path) as proc:
        status, _, body = _call(proc.url, "GET", "/api/anything")
        assert (status, body) == (404, {"message": "Not Found"})


def test_route_api_bad_input(server, routed):
    url = server.url
    name = routed["exact"]
    cases = [
        ({"RouteKey": "FETCH /x", "FunctionName": name}, 400, "InvalidParameterValueException"),
        ({"RouteKey": "GET /x", "FunctionName": name, "PayloadFormatVersion": "3.0"}, 400, None),
        ({"RouteKey": "GET /x", "FunctionName": name, "TimeoutInMillis": 10}, 400, None),
        ({"RouteKey": "GET /x", "FunctionName": "nope-" + name}, 404, "ResourceNotFoundException"),
        ({"RouteKey": "GET /x", "FunctionName": name + ":nope"}, 404, "ResourceNotFoundException"),
        ({"RouteKey": "GET /x", "FunctionName": name + ":7"}, 404, "ResourceNotFoundException"),
        ({"RouteKey": "GET /items/{id}", "FunctionName": name}, 409, "ResourceConflictException"),
    ]
    for body, status, error_type in cases:
        response = httpx.post(f"{url}/corral/v1/routes", json=body)
        assert response.status_code == status, body
        if error_type:
            assert response.headers["x-amzn-errortype"] == error_type
    response = httpx.post(f"{url}/corral/v1/routes", content=b"[1]")
    assert response.status_code == 400
    assert httpx.delete(f"{url}/corral/v1/routes/nothere").status_code == 404


def test_payload_formats_through_powertools(server, lam):
    url = server.url
    name = unique_name("pt")
    files = {"app.py": textwrap.dedent(POWERTOOLS_APP), **vendored_powertools()}
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip(files)},
        Timeout=30,
        MemorySize=256,
    )
    wait_active(lam, name)
    assert _add(url, "POST /v2/{kind}", name).status_code == 201
    assert _add(url, "POST /v1/{kind}", name, PayloadFormatVersion="1.0").status_code == 201
    headers = [("Content-Type", "text/plain"), ("X-R", "a"), ("X-R", "b"), ("Cookie", "s=1")]

    status, _, seen = _call(url, "POST", "/api/v2/cats?k=1&k=2", headers=headers, body=b"hi")
    assert status == 200, seen
    assert seen["format"] == "2.0"
    assert seen["rawPath"] == "/api/v2/cats"
    assert seen["path"] == "/v2/cats"  # powertools strips the named stage
    assert seen["routeKey"] == "POST /v2/{kind}"
    assert seen["pathParameters"] == {"kind": "cats"}
    assert seen["query"] == {"k": "1,2"}
    assert seen["header"] == "a,b" and seen["cookies"] == ["s=1"]
    assert seen["body"] == "hi" and seen["stage"] == "api"

    status, _, seen = _call(url, "POST", "/api/v1/dogs?k=1&k=2", headers=headers, body=b"hi")
    assert status == 200, seen
    assert seen["format"] == "1.0"
    assert seen["path"] == "/api/v1/dogs"
    assert seen["method"] == "POST"
    assert seen["resource"] == "/v1/{kind}"
    assert seen["pathParameters"] == {"kind": "dogs"}
    assert seen["query"] == {"k": "2"}
    assert seen["multiQuery"] == {"k": ["1", "2"]}
    assert seen["multiHeaders"]["x-r"] == ["a", "b"]
    assert seen["body"] == "hi"
    assert seen["sourceIp"] == "127.0.0.1" and seen["stage"] == "api"


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args, "--endpoint", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_and_persistence(tmp_path):
    proc = CorralProcess(tmp_path)
    url = proc.start()
    try:
        lam = lambda_client(url)
        name = _function(lam, "cli")
        added = _cli(url, "route", "add", "GET /hello/{who}", name, "--payload-format", "1.0")
        assert added.returncode == 0, added.stderr
        assert "GET /hello/{who}" in added.stdout
        again = _cli(url, "route", "add", "GET /hello/{who}", name)
        assert again.returncode == 2 and "ResourceConflictException" in again.stderr
        function_url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    finally:
        proc.stop()
    url = proc.start()
    try:
        listed = _cli(url, "route", "ls")
        assert listed.returncode == 0 and "GET /hello/{who}" in listed.stdout
        assert "1.0" in listed.stdout
        status, _, body = _call(url, "GET", "/api/hello/you")
        assert status == 200 and body["event"]["pathParameters"] == {"who": "you"}
        assert body["event"]["version"] == "1.0"
        lam = lambda_client(url)
        after = lam.get_function_url_config(FunctionName=name)
        url_id = function_url["FunctionUrl"].split("//")[1].split(".")[0]
        assert after["FunctionUrl"].split("//")[1].split(".")[0] == url_id
        assert after["CreationTime"] == function_url["CreationTime"]
        status, _, _ = http_request(url, "GET", f"/url/{url_id}/x")
        assert status == 200
        removed = _cli(url, "route", "rm", "GET /hello/{who}")
        assert removed.returncode == 0, removed.stderr
        status, _, _ = _call(url, "GET", "/api/hello/you")
        assert status == 404
        missing = _cli(url, "route", "rm", "GET /hello/{who}")
        assert missing.returncode == 2
    finally:
        proc.stop()
