"""Function URLs end to end: plain HTTP clients against the real server, host-based and
path-based, with the function's view of the request checked as it arrives and, through
aws-lambda-powertools' event classes, as a real Lambda handler reads it."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest

from tests.conformance import ROLE, create_python_function, unique_name, wait_active
from tests.support import http_request, make_zip, vendored_powertools

APP = """
import base64, json, time

def handler(event, context):
    path = event["rawPath"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/sleep":
        time.sleep(5)
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": event.get("body", ""), "isBase64Encoded": event["isBase64Encoded"]}
    if path == "/cookies":
        return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"],
                "headers": {"x-custom": "v", "access-control-allow-origin": "https://fn.example"},
                "body": "made"}
    if path == "/string":
        return "Hello, world!"
    if path == "/bad":
        return {"statusCode": "teapot"}
    if path == "/odd":
        return {"statusCode": 299, "body": "?"}
    if path == "/interim":
        return {"statusCode": 101, "body": "?"}
    if path == "/nocontent":
        return {"statusCode": 204, "body": "dropped"}
    if path == "/split":
        return {"statusCode": 200, "headers": {"x-evil": "a\\r\\nx-injected: 1"}, "body": ""}
    return event
"""

POWERTOOLS_APP = """
import json
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent, APIGatewayProxyEventV2)

def handler(event, context):
    if event.get("version") == "1.0":
        e = APIGatewayProxyEvent(event)
        out = {
            "format": "1.0", "path": e.path, "method": e.http_method, "resource": e.resource,
            "pathParameters": e.path_parameters, "query": e.query_string_parameters,
            "multiQuery": e.multi_value_query_string_parameters,
            "multiHeaders": e.multi_value_headers, "body": e.decoded_body,
            "sourceIp": e.request_context.identity.source_ip,
            "stage": e.request_context.stage, "requestId": e.request_context.request_id,
        }
    else:
        e = APIGatewayProxyEventV2(event)
        http = e.request_context.http
        out = {
            "format": "2.0", "rawPath": e.raw_path, "path": e.path, "method": http.method,
            "routeKey": e.route_key, "pathParameters": e.path_parameters,
            "cookies": e.cookies, "query": e.query_string_parameters,
            "header": e.headers.get("x-r"), "body": e.decoded_body,
            "json": e.json_body if "json" in e.headers.get("content-type", "") else None,
            "sourceIp": http.source_ip,
            "userAgent": http.user_agent, "stage": e.request_context.stage,
            "apiId": e.request_context.api_id,
            "domainPrefix": e.request_context.domain_prefix,
        }
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(out)}
"""


def url_id_of(config: dict) -> str:
    return config["FunctionUrl"].split("//", 1)[1].split(".", 1)[0]


def url_host(config: dict) -> str:
    return config["FunctionUrl"].split("//", 1)[1].rstrip("/")


@pytest.fixture(scope="module")
def echo_url(lam):
    name = unique_name("url")
    create_python_function(lam, name, APP, Timeout=2)
    config = lam.create_function_url_config(
        FunctionName=name,
        AuthType="NONE",
        Cors={
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["content-type", "x-h"],
            "ExposeHeaders": ["x-custom"],
            "MaxAge": 600,
        },
    )
    return name, config


@pytest.fixture(scope="module")
def powertools_function(lam):
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
    return name


def _get(corral_url, config, path, **kw):
    return http_request(corral_url, kw.pop("method", "GET"), path, host=url_host(config), **kw)


def test_host_based_get_event(corral_url, echo_url):
    _, config = echo_url
    status, headers, body = _get(
        corral_url,
        config,
        "/some/path?a=1&a=2&b=x%20y",
        headers=[
            ("X-R", "one"),
            ("X-R", "two"),
            ("Cookie", "c1=v1; c2=v2"),
            ("User-Agent", "tests/1"),
        ],
    )
    assert status == 200, body
    assert ("content-type", "application/json") in headers
    request_id = dict(headers)["x-amzn-requestid"]
    event = json.loads(body)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-r"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-")
    assert event["isBase64Encoded"] is False and "body" not in event
    context = event["requestContext"]
    url_id = url_id_of(config)
    assert context["apiId"] == url_id == context["domainPrefix"]
    assert context["domainName"] == f"{url_id}.lambda-url.us-east-1.localhost"
    assert context["http"]["method"] == "GET"
    assert context["http"]["path"] == "/some/path"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["userAgent"] == "tests/1"
    assert context["requestId"] == request_id
    assert context["stage"] == "$default" and context["routeKey"] == "$default"
    assert isinstance(context["timeEpoch"], int)


def test_path_based_post_json(corral_url, echo_url):
    _, config = echo_url
    payload = b'{"hello": "world"}'
    status, _, body = http_request(
        corral_url,
        "POST",
        f"/url/{url_id_of(config)}/items?x=1",
        headers=[("Content-Type", "application/json")],
        body=payload,
    )
    assert status == 200, body
    event = json.loads(body)
    assert event["rawPath"] == "/items"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == payload.decode() and event["isBase64Encoded"] is False


def test_invoke_like_path_goes_to_the_function(corral_url, echo_url):
    _, config = echo_url
    path = "/2015-03-31/functions/anything/invocations"
    status, _, body = _get(corral_url, config, path, method="POST", body=b"{}")
    assert status == 200
    assert json.loads(body)["rawPath"] == path


def test_binary_round_trip(corral_url, echo_url):
    _, config = echo_url
    payload = bytes(range(256)) * 64
    status, headers, body = _get(
        corral_url,
        config,
        "/binary",
        method="POST",
        headers=[("Content-Type", "application/octet-stream")],
        body=payload,
    )
    assert status == 200
    assert body == payload
    assert ("content-type", "application/octet-stream") in headers


def test_cookies_headers_and_cors_on_responses(corral_url, echo_url):
    _, config = echo_url
    status, headers, body = _get(
        corral_url, config, "/cookies", headers=[("Origin", "https://app.example")]
    )
    assert status == 201 and body == b"made"
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]
    found = dict(headers)
    assert found["x-custom"] == "v"
    # the configuration's CORS headers replace the function's own
    assert found["access-control-allow-origin"] == "https://app.example"
    assert found["access-control-expose-headers"] == "x-custom"
    status, headers, _ = _get(
        corral_url, config, "/cookies", headers=[("Origin", "https://other.example")]
    )
    assert "access-control-allow-origin" not in dict(headers)


def test_cors_preflight_is_answered_without_invoking(corral_url, echo_url):
    _, config = echo_url
    # /boom would fail if it were invoked
    status, headers, body = _get(
        corral_url,
        config,
        "/boom",
        method="OPTIONS",
        headers=[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-h"),
        ],
    )
    assert status == 200 and body == b""
    found = dict(headers)
    assert found["access-control-allow-origin"] == "https://app.example"
    assert found["access-control-allow-methods"] == "GET,POST"
    assert found["access-control-allow-headers"] == "content-type,x-h"
    assert found["access-control-max-age"] == "600"


def test_string_and_json_results(corral_url, echo_url):
    _, config = echo_url
    status, headers, body = _get(corral_url, config, "/string")
    assert status == 200 and body == b'"Hello, world!"'
    assert ("content-type", "application/json") in headers


def test_function_errors(corral_url, echo_url):
    _, config = echo_url
    for path in ("/boom", "/bad", "/interim", "/sleep"):  # raised, malformed, timed out (2 s)
        status, _, body = _get(corral_url, config, path)
        assert status == 502, path
        assert json.loads(body) == {"message": "Internal Server Error"}


def test_unnamed_final_statuses_pass_through(corral_url, echo_url):
    _, config = echo_url
    status, _, body = _get(corral_url, config, "/odd")
    assert (status, body) == (299, b"?")


def _raw_exchange(corral_url: str, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    where = urlsplit(corral_url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_upgrade_requests_are_answered_on_http_1_1(corral_url, echo_url):
    """What `curl --http2 http://...` sends (an h2c upgrade), and a websocket handshake:
    the upgrade is ignored, both are answered, the connection goes on."""
    _, config = echo_url
    host = url_host(config).encode()
    raw = (
        b"GET /string HTTP/1.1\r\nHost: " + host + b"\r\nConnection: Upgrade, HTTP2-Settings"
        b"\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        b"POST /ws HTTP/1.1\r\nHost: " + host + b"\r\nConnection: Upgrade\r\nUpgrade: websocket"
        b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 7\r\n\r\npayload"
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    )
    data = _raw_exchange(corral_url, raw)
    first, _, rest = data.partition(b'"Hello, world!"')
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    second, _, third = rest.partition(b"HTTP/1.1 501 Not Implemented")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n")
    event = json.loads(second.partition(b"\r\n\r\n")[2])
    assert event["rawPath"] == "/ws" and event["body"] == "payload"
    assert event["headers"]["upgrade"] == "websocket"  # passed on to the function
    assert third.startswith(b"\r\n")  # the connection closed after CONNECT's answer


def test_host_names_are_case_insensitive(corral_url, echo_url):
    name, config = echo_url
    assert _get(corral_url, config, "/string")[0] == 200  # warm: the Invoke fast path would take it
    path = f"/2015-03-31/functions/{name}/invocations"  # an Invoke on any other host
    status, _, body = http_request(
        corral_url, "POST", path, host=url_host(config).upper(), body=b"{}"
    )
    assert status == 200, body
    assert json.loads(body)["rawPath"] == path


def test_a_percent_encoded_url_id_keeps_the_raw_path(corral_url, echo_url):
    _, config = echo_url
    url_id = url_id_of(config)
    encoded = "".join(f"%{ord(c):02x}" for c in url_id[:3]) + url_id[3:]
    status, _, body = http_request(corral_url, "GET", f"/url/{encoded}/a%2Fb/c?x=1")
    assert status == 200, body
    event = json.loads(body)
    assert event["rawPath"] == "/a%2Fb/c"
    assert event["rawQueryString"] == "x=1"


def test_response_splitting_is_refused(corral_url, echo_url):
    _, config = echo_url
    status, headers, _ = _get(corral_url, config, "/split")
    assert status == 200
    names = [k for k, _ in headers]
    assert "x-injected" not in names and "x-evil" not in names


def test_unknown_url_id_is_forbidden(corral_url):
    status, _, body = http_request(corral_url, "GET", "/url/" + "a" * 32 + "/")
    assert status == 403 and json.loads(body) == {"Message": "Forbidden"}
    host = "b" * 32 + ".lambda-url.us-east-1.localhost"
    status, _, _ = http_request(corral_url, "GET", "/", host=host)
    assert status == 403


def test_request_over_6_mb(corral_url, echo_url):
    _, config = echo_url
    status, _, body = _get(
        corral_url, config, "/binary", method="POST", body=b"x" * (6 * 1024 * 1024 + 1)
    )
    assert status == 413
    assert "6291456 bytes" in json.loads(body)["message"]


def test_base64_growth_past_the_limit_is_lambdas_error(corral_url, echo_url):
    # 5 MB of binary is 6.7 MB as base64 in the event: Lambda's invoke limit refuses it
    _, config = echo_url
    status, _, _ = _get(
        corral_url,
        config,
        "/binary",
        method="POST",
        headers=[("Content-Type", "application/octet-stream")],
        body=b"\x00" * (5 * 1024 * 1024),
    )
    assert status == 413


def test_throttled(corral_url, lam):
    name = unique_name("thr")
    create_python_function(lam, name)
    config = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    status, _, body = _get(corral_url, config, "/")
    assert status == 429
    assert json.loads(body) == {"message": "Rate Exceeded."}


def test_alias_url_runs_the_alias(corral_url, lam):
    name = unique_name("alias")
    create_python_function(lam, name, APP, Publish=True)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    config = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert config["FunctionArn"].endswith(f":{name}:live")
    status, _, body = _get(corral_url, config, "/x")
    assert status == 200 and json.loads(body)["rawPath"] == "/x"
    lam.delete_alias(FunctionName=name, Name="live")
    status, _, _ = _get(corral_url, config, "/x")
    assert status == 403
    # as in Lambda, the URL configuration outlives the alias
    kept = lam.get_function_url_config(FunctionName=name, Qualifier="live")
    assert kept["FunctionUrl"] == config["FunctionUrl"]
    lam.delete_function_url_config(FunctionName=name, Qualifier="live")


def test_response_stream_mode_serves_a_buffered_function_by_the_response_rules(corral_url, lam):
    name = unique_name("stream")
    create_python_function(lam, name, APP)
    config = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    assert config["InvokeMode"] == "RESPONSE_STREAM"
    status, _, body = _get(corral_url, config, "/cookies")
    assert status == 201 and body == b"made"


def test_powertools_reads_the_url_event(corral_url, lam, powertools_function):
    config = lam.create_function_url_config(FunctionName=powertools_function, AuthType="NONE")
    status, _, body = _get(
        corral_url,
        config,
        "/p/q?k=1&k=2",
        method="POST",
        headers=[
            ("Content-Type", "application/json"),
            ("Cookie", "s=1"),
            ("X-R", "a"),
            ("X-R", "b"),
            ("User-Agent", "ua/1"),
        ],
        body=b'{"n": 5}',
    )
    assert status == 200, body
    seen = json.loads(body)
    assert seen == {
        "format": "2.0",
        "rawPath": "/p/q",
        "path": "/p/q",
        "method": "POST",
        "routeKey": "$default",
        "pathParameters": {},
        "cookies": ["s=1"],
        "query": {"k": "1,2"},
        "header": "a,b",
        "body": '{"n": 5}',
        "json": {"n": 5},
        "sourceIp": "127.0.0.1",
        "userAgent": "ua/1",
        "stage": "$default",
        "apiId": url_id_of(config),
        "domainPrefix": url_id_of(config),
    }


def test_head_and_no_content_keep_the_connection_usable(corral_url, echo_url):
    _, config = echo_url
    where = urlsplit(corral_url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        answers = []
        for method, path in [("HEAD", "/string"), ("GET", "/nocontent"), ("GET", "/string")]:
            conn.request(method, path, headers={"Host": url_host(config)})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("content-length"), response.read()))
    finally:
        conn.close()
    assert answers == [
        (200, "15", b""),
        (204, None, b""),
        (200, "15", b'"Hello, world!"'),
    ]


def test_cli(corral_url, lam):
    name = unique_name("cli")
    create_python_function(lam, name, APP)

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "corral", "url", *args, "--endpoint", corral_url]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    created = corral("create", name, "--cors-origin", "*", "--cors-method", "GET")
    assert created.returncode == 0, created.stderr
    function_url = created.stdout.split()[0]
    config = lam.get_function_url_config(FunctionName=name)
    assert config["FunctionUrl"] == function_url
    assert config["Cors"] == {"AllowOrigins": ["*"], "AllowMethods": ["GET"]}
    shown = corral("show", name)
    assert shown.returncode == 0 and function_url in shown.stdout
    url_id = url_id_of(config)
    assert f"/url/{url_id}/" in shown.stdout
    assert corral("rm", name).returncode == 0
    missing = corral("show", name)
    assert missing.returncode == 2 and "ResourceNotFoundException" in missing.stderr
